//! Serving one HTTP request with an HTTP component (`wasi:http/proxy`): a fresh instance per
//! request, from the component's `ProxyPre`, in its own store with the pod's sandbox, memory
//! limit and CPU meter, cut off when the request's time is up.
//!
//! An instance per request is what makes a component safe to share between requests and
//! cheap to scale: there is no state to leak from one request to the next, and
//! instantiating a prepared component takes tens of microseconds.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView as _};

use super::component::ComponentState;
use super::{ExitOutcome, PreparedModule, Program, RunSpec, Runtime, configure_store, outcome_of};

/// Why a request got no response from the component. Each maps to the HTTP status a client
/// gets ([`HttpFailure::status`]) and a message for it and for the logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpFailure {
    /// The module is not an HTTP component.
    #[error(
        "the module does not serve HTTP: it does not export wasi:http/incoming-handler (build \
         it for the wasi:http/proxy world)"
    )]
    NotHttp,
    /// The instance could not be set up (a volume that cannot be mounted, say).
    #[error("the handler could not start: {0}")]
    Setup(String),
    /// The guest trapped (or ran out of memory) before it answered.
    #[error("the handler failed: {0}")]
    Failed(String),
    /// The guest returned without setting a response, or set an error instead of one.
    #[error("the handler returned no valid response: {0}")]
    NoResponse(String),
    /// The guest did not answer within the request's time.
    #[error("the handler did not answer within {0:?}")]
    Timeout(Duration),
}

impl HttpFailure {
    /// A request's sandbox could not be built (a volume that cannot be mounted, say).
    pub(super) fn setup(outcome: ExitOutcome) -> HttpFailure {
        match outcome {
            ExitOutcome::Trapped { message } | ExitOutcome::OutOfMemory { message } => {
                HttpFailure::Setup(message)
            }
            ExitOutcome::Exited(code) => HttpFailure::Setup(format!("exited with {code}")),
        }
    }

    /// The status a client gets: 500 for a handler that fails or cannot run, 502 for one
    /// that answers with no valid response, 504 for one that does not answer in time.
    pub fn status(&self) -> http::StatusCode {
        match self {
            HttpFailure::NotHttp | HttpFailure::Setup(_) | HttpFailure::Failed(_) => {
                http::StatusCode::INTERNAL_SERVER_ERROR
            }
            HttpFailure::NoResponse(_) => http::StatusCode::BAD_GATEWAY,
            HttpFailure::Timeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl Runtime {
    /// Handles one request with an HTTP component in a new instance built from `spec` (its
    /// args, env, mounts and log file, as for [`Runtime::run`]), which may take at most
    /// `timeout` from now until it has answered and finished its response body.
    ///
    /// The response's head is returned as soon as the guest sets it; the body streams from
    /// the instance as the guest writes it. A guest still running at the deadline is stopped
    /// (at its next epoch tick), which ends its response body early.
    pub async fn handle_request<B>(
        &self,
        module: &PreparedModule,
        spec: RunSpec,
        timeout: Duration,
        request: http::Request<B>,
    ) -> Result<http::Response<HyperOutgoingBody>, HttpFailure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Program::Http(pre) = &module.program else {
            return Err(HttpFailure::NotHttp);
        };
        let sandbox = self.sandbox(module, spec).map_err(HttpFailure::setup)?;
        let mut wasi = sandbox.wasi;
        let state = ComponentState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: sandbox.outbound,
            table: ResourceTable::new(),
            controls: sandbox.controls,
        };
        let mut store = Store::new(&module.engine, state);
        configure_store(&mut store, |state| &mut state.controls);
        let (sender, receiver) = oneshot::channel();
        let setup_failed = |e: wasmtime::Error| HttpFailure::Setup(format!("{e:#}"));
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(setup_failed)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(setup_failed)?;

        let pre = pre.clone();
        let limit = sandbox.limit;
        // The instance runs in a task of its own so that it can go on writing the response
        // body after the head has been returned.
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(result) => {
                    let refused = store.data().controls.limiter.refused;
                    Some(outcome_of(result, Some(limit), refused))
                }
                Err(_) => None,
            }
        });

        // Whoever asked may give up before the head arrives (a client that disconnects, a
        // probe past its timeout): the instance then stops too, rather than running on
        // unobserved until the request's own timeout.
        let abandon = AbortOnDrop(Some(task.abort_handle()));
        let answer = receiver.await;
        abandon.disarm();
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(HttpFailure::NoResponse(describe_error_code(&code))),
            // The sender was dropped with the store: the guest ended, or was stopped, without
            // setting a response. How it ended says why.
            Err(_) => Err(match task.await {
                Ok(None) => HttpFailure::Timeout(timeout),
                Ok(Some(ExitOutcome::Exited(0))) => HttpFailure::NoResponse(
                    "the handler returned without setting a response".into(),
                ),
                Ok(Some(ExitOutcome::Exited(code))) => {
                    HttpFailure::Failed(format!("the handler exited with code {code}"))
                }
                Ok(Some(
                    ExitOutcome::Trapped { message } | ExitOutcome::OutOfMemory { message },
                )) => HttpFailure::Failed(message),
                Err(join) => HttpFailure::Failed(format!("the handler's task failed: {join}")),
            }),
        }
    }
}

/// Aborts a task when dropped, unless disarmed first.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

fn describe_error_code(code: &ErrorCode) -> String {
    match code {
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    }
}
