//! Recent failed requests per Function, for its `RequestsSucceeding` condition: a handler that
//! traps, answers nothing valid or runs past its timeout, or a request too large to take,
//! shows on the Function for a minute after it last happened, with what went wrong.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flotilla_controllers::informer::ObjectKey;
use flotilla_node::serving::ERROR_HEADER;
use http::StatusCode;

/// How long a failed request keeps the condition False.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The last failure of one Function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    at: Instant,
}

#[derive(Default)]
pub(crate) struct Failures {
    last: Mutex<HashMap<ObjectKey, Failure>>,
}

impl Failures {
    /// Notes the answer to a request, if it is a failure; returns whether the Function's
    /// condition changes (a first failure, or another kind of failure than the last).
    pub(crate) fn record(&self, key: &ObjectKey, response: &axum::response::Response) -> bool {
        let Some((reason, message)) = classify(response) else {
            return false;
        };
        let mut last = self.last.lock().expect("failures lock");
        let news = last
            .get(key)
            .is_none_or(|previous| previous.reason != reason || previous.at.elapsed() >= WINDOW);
        last.insert(
            key.clone(),
            Failure {
                reason,
                message,
                at: Instant::now(),
            },
        );
        news
    }

    /// The Function's last failure within the window.
    pub(crate) fn recent(&self, key: &ObjectKey) -> Option<Failure> {
        let mut last = self.last.lock().expect("failures lock");
        match last.get(key) {
            Some(failure) if failure.at.elapsed() < WINDOW => Some(failure.clone()),
            Some(_) => {
                last.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn forget(&self, key: &ObjectKey) {
        self.last.lock().expect("failures lock").remove(key);
    }
}

/// A failed request's reason and message, from its status and the node's error header;
/// `None` for an answer that is not a failure of the Function.
fn classify(response: &axum::response::Response) -> Option<(&'static str, String)> {
    let status = response.status();
    let code = response
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok());
    Some(match (status, code) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => (
            "RequestTooLarge",
            "a request body was over the gateway's limit (413)".into(),
        ),
        (_, Some("timeout")) => (
            "Timeout",
            "a request ran past timeoutSeconds and was cut off (504)".into(),
        ),
        (_, Some("no-response")) => (
            "InvalidResponse",
            "the handler returned no valid response to a request (502)".into(),
        ),
        (_, Some("handler-failed")) => (
            "HandlerFailed",
            "the handler failed on a request: it trapped, ran out of memory or could not start \
             (500); see flotilla function logs"
                .into(),
        ),
        (status, _) if status.is_server_error() => (
            "Unavailable",
            format!("a request got {status} from the gateway: no instance could take it"),
        ),
        _ => return None,
    })
}
