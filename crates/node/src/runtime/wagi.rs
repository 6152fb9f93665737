//! WAGI: serving HTTP with a WASI preview 1 program, as CGI does with a process.
//!
//! Any language that compiles to `wasm32-wasip1` can serve HTTP this way, with no HTTP
//! library: each request runs the module's `_start` in a fresh instance with the request in
//! its environment (RFC 3875's meta-variables: `REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`,
//! `CONTENT_TYPE`, `CONTENT_LENGTH`, `HTTP_*` for each header, …) and its body on stdin. What
//! the program prints to stdout is the response: header lines (`Content-Type`, `Status: 404
//! Not Found`, `Location`), a blank line, then the body. stderr goes to the container's log.
//!
//! A program that prints no header block gets 502, one that traps or exits non-zero without
//! answering 500, one past the request's time 504 — as for `wasi:http` components.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt as _;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

use super::http::HttpFailure;
use super::{ExitOutcome, PreparedModule, Program, RunSpec, Runtime, module, outcome_of};

/// The most a request body or a program's answer may hold.
const MAX_MESSAGE: usize = 16 << 20;

impl Runtime {
    /// Handles one request with a WASI preview 1 module, CGI style: a new instance built from
    /// `spec` gets the request in its environment and on stdin and answers on stdout, within
    /// `timeout`.
    pub async fn handle_cgi<B>(
        &self,
        module: &PreparedModule,
        spec: RunSpec,
        timeout: Duration,
        request: http::Request<B>,
    ) -> Result<http::Response<axum::body::Body>, HttpFailure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Program::Module(pre) = &module.program else {
            return Err(HttpFailure::NotHttp);
        };
        let (parts, body) = request.into_parts();
        let body = read_body(body).await?;
        let mut sandbox = self.sandbox(module, spec).map_err(HttpFailure::setup)?;
        let answer = MemoryOutputPipe::new(MAX_MESSAGE);
        sandbox
            .wasi
            .envs(&meta_variables(&parts, body.len()))
            .stdin(MemoryInputPipe::new(body))
            .stdout(answer.clone());
        let run = module::run(
            &self.inner.engine,
            pre,
            &mut sandbox.wasi,
            sandbox.controls,
            "_start",
        );
        // Dropping the run at the deadline stops the guest at its next epoch yield.
        let (result, controls) = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| HttpFailure::Timeout(timeout))?;
        let output = answer.contents();
        match outcome_of(result, Some(sandbox.limit), controls.limiter.refused) {
            ExitOutcome::Exited(0) => parse_answer(&output),
            ExitOutcome::Exited(code) if output.is_empty() => Err(HttpFailure::Failed(format!(
                "the program exited with code {code} without answering"
            ))),
            // CGI programs may exit non-zero after a complete answer.
            ExitOutcome::Exited(_) => parse_answer(&output),
            ExitOutcome::Trapped { message } | ExitOutcome::OutOfMemory { message } => {
                Err(HttpFailure::Failed(message))
            }
        }
    }
}

/// The whole request body, which the program reads from stdin.
async fn read_body<B>(body: B) -> Result<Bytes, HttpFailure>
where
    B: Body<Data = Bytes>,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let mut body = std::pin::pin!(body);
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let error: wasmtime_wasi_http::Error = e.into();
            HttpFailure::Setup(format!("could not read the request body: {error}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > MAX_MESSAGE {
                return Err(HttpFailure::Setup(format!(
                    "the request body is over {MAX_MESSAGE} bytes, the most a WAGI program takes"
                )));
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.freeze())
}

/// The request's CGI meta-variables (RFC 3875, section 4.1).
fn meta_variables(parts: &http::request::Parts, body_length: usize) -> Vec<(String, String)> {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name, port),
        _ => (host, "80"),
    };
    let mut env = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("SERVER_SOFTWARE", "flotilla".to_string()),
        ("SERVER_PROTOCOL", format!("{:?}", parts.version)),
        ("SERVER_NAME", server_name.to_string()),
        ("SERVER_PORT", server_port.to_string()),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("SCRIPT_NAME", String::new()),
        ("PATH_INFO", parts.uri.path().to_string()),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("CONTENT_LENGTH", body_length.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect::<Vec<_>>();
    if let Some(kind) = parts.headers.get(http::header::CONTENT_TYPE) {
        env.push((
            "CONTENT_TYPE".into(),
            String::from_utf8_lossy(kind.as_bytes()).into_owned(),
        ));
    }
    for (name, value) in &parts.headers {
        let name = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        // Several values of one header are joined, as CGI servers do.
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match env.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => env.push((name, value)),
        }
    }
    env
}

/// Turns a CGI program's output into a response: its header block, then its body.
fn parse_answer(output: &[u8]) -> Result<http::Response<axum::body::Body>, HttpFailure> {
    let malformed = |why: &str| {
        let start = String::from_utf8_lossy(&output[..output.len().min(80)]).into_owned();
        HttpFailure::NoResponse(format!(
            "the program's output is not a CGI answer ({why}); it must print headers such as \
             \"Content-Type: text/plain\", a blank line, then the body. It printed: {start:?}"
        ))
    };
    let (head, body) =
        split_head(output).ok_or_else(|| malformed("no blank line after headers"))?;
    let head = std::str::from_utf8(head).map_err(|_| malformed("headers are not UTF-8"))?;
    let mut response = http::Response::builder();
    let mut status = None;
    let mut location = false;
    for line in head.lines() {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("a header line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = Some(
                code.parse::<http::StatusCode>()
                    .map_err(|_| malformed("a Status header without a valid code"))?,
            );
            continue;
        }
        location |= name.eq_ignore_ascii_case("location");
        response = response.header(name.trim(), value);
    }
    let status = status.unwrap_or(if location {
        http::StatusCode::FOUND
    } else {
        http::StatusCode::OK
    });
    response
        .status(status)
        .body(axum::body::Body::from(Bytes::copy_from_slice(body)))
        .map_err(|e| malformed(&format!("a header is not valid HTTP: {e}")))
}

/// The header block (without its terminating blank line) and the body, split at the first
/// blank line (`\n\n` or `\r\n\r\n`).
fn split_head(output: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut line_start = 0;
    for (i, byte) in output.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = &output[line_start..i];
        if line.is_empty() || line == b"\r" {
            return Some((&output[..line_start], &output[i + 1..]));
        }
        line_start = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_headers_a_blank_line_and_a_body() {
        let response = parse_answer(b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nhello\n").unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["x-a"], "1");

        let missing = parse_answer(b"Status: 404 Not Found\n\n").unwrap();
        assert_eq!(missing.status(), 404);
        assert!(missing.headers().get("status").is_none());
        let moved = parse_answer(b"Location: /elsewhere\n\n").unwrap();
        assert_eq!(moved.status(), 302);

        for bad in [
            &b"hello world\n"[..],
            b"Content-Type: text/plain\n",
            b"no colon\n\nbody",
        ] {
            assert!(
                matches!(parse_answer(bad), Err(HttpFailure::NoResponse(_))),
                "{bad:?}"
            );
        }
        assert!(parse_answer(b"Status: abc\n\n").is_err());
    }

    #[test]
    fn the_request_becomes_meta_variables() {
        let request = http::Request::post("/items/7?color=red")
            .header("host", "shop.default.svc:8080")
            .header("content-type", "application/json")
            .header("x-trace", "a")
            .header("x-trace", "b")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let env = meta_variables(&parts, 12);
        let get = |name: &str| {
            env.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
        };
        assert_eq!(get("REQUEST_METHOD"), "POST");
        assert_eq!(get("PATH_INFO"), "/items/7");
        assert_eq!(get("QUERY_STRING"), "color=red");
        assert_eq!(get("SERVER_NAME"), "shop.default.svc");
        assert_eq!(get("SERVER_PORT"), "8080");
        assert_eq!(get("CONTENT_TYPE"), "application/json");
        assert_eq!(get("CONTENT_LENGTH"), "12");
        assert_eq!(get("HTTP_X_TRACE"), "a, b");
    }
}
