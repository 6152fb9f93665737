//! An HTTP component (`wasi:http/proxy`) whose paths each behave one way, so that one module
//! can exercise the gateway and the node agent with well-behaved and hostile requests alike:
//!
//! | path                | answer                                                          |
//! |---------------------|-----------------------------------------------------------------|
//! | `/echo`             | 200, the method, path and request body                          |
//! | `/env`              | 200, the environment, one `NAME=value` per line                 |
//! | `/log/TEXT`         | prints TEXT to stdout (the container log), answers 200          |
//! | `/status/N`         | status N, empty body                                            |
//! | `/sleep/MS`         | sleeps MS milliseconds without spinning, then 200               |
//! | `/hang`             | spins forever and never answers                                 |
//! | `/trap`             | panics before answering                                         |
//! | `/no-response`      | returns without ever setting a response                         |
//! | `/bad-length`       | declares `content-length: 100`, sends 5 bytes                   |
//! | `/memory/MIB`       | allocates and touches MIB mebibytes, then 200                   |
//! | `/fetch/URL`        | requests `http://URL` (outgoing HTTP); its status and body      |
//! | anything else       | 200, `behaviours: PATH`, and `WHO=…` when that variable is set   |

use std::io::{Read as _, Write as _};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Behaviours);

struct Behaviours;

impl wasip2::exports::http::incoming_handler::Guest for Behaviours {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let (first, rest) = split_path(&path);
        match first {
            "echo" => {
                let body = read_body(&request);
                let mut text = format!("{} {path}\n", method_name(&request.method())).into_bytes();
                text.extend(body);
                respond(response_out, 200, &text);
            }
            "env" => {
                let text: String = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
                respond(response_out, 200, text.as_bytes());
            }
            "log" => {
                println!("{rest}");
                respond(response_out, 200, b"logged\n");
            }
            "status" => respond(response_out, rest.parse().unwrap_or(500), b""),
            "sleep" => {
                let millis: u64 = rest.parse().unwrap_or(0);
                wasip2::clocks::monotonic_clock::subscribe_duration(millis * 1_000_000).block();
                respond(response_out, 200, format!("slept {millis} ms\n").as_bytes());
            }
            "hang" => {
                let mut counter = 0u64;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "trap" => panic!("the /trap path always panics"),
            "no-response" => drop(response_out),
            "bad-length" => {
                let headers = Fields::new();
                let _ = headers.set("content-length", &[b"100".to_vec()]);
                let response = OutgoingResponse::new(headers);
                let body = response.body().expect("body");
                ResponseOutparam::set(response_out, Ok(response));
                let mut out = body.write().expect("stream");
                let _ = out.write_all(b"short");
                let _ = out.flush();
                drop(out);
                let _ = OutgoingBody::finish(body, None);
            }
            "memory" => {
                let mib: usize = rest.parse().unwrap_or(1);
                let block = vec![1u8; mib << 20];
                let sum: usize = block.iter().step_by(4096).map(|&b| b as usize).sum();
                respond(response_out, 200, format!("touched {sum} pages\n").as_bytes());
            }
            "fetch" => match fetch(rest) {
                Ok((status, body)) => {
                    let mut text = format!("upstream {status}\n").into_bytes();
                    text.extend(body);
                    respond(response_out, 200, &text);
                }
                Err(error) => respond(response_out, 502, format!("fetch failed: {error}\n").as_bytes()),
            },
            _ => {
                // WHO, when set, tells replicas of different Services apart in tests.
                let who = std::env::var("WHO").map_or(String::new(), |who| format!("WHO={who}\n"));
                respond(response_out, 200, format!("behaviours: {path}\n{who}").as_bytes())
            }
        }
    }
}

/// `/first/rest…?query` → (`first`, `rest…`).
fn split_path(path: &str) -> (&str, &str) {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Head => "HEAD".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(other) => other.clone(),
    }
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}

fn respond(response_out: ResponseOutparam, status: u16, text: &[u8]) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    let mut out = body.write().expect("a new body has a stream");
    let _ = out.write_all(text);
    let _ = out.flush();
    drop(out);
    let _ = OutgoingBody::finish(body, None);
}

/// GETs `http://URL` (URL being `host[:port]/path`) and returns the status and body.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (authority, path) = match url.split_once('/') {
        Some((authority, path)) => (authority, format!("/{path}")),
        None => (url, "/".to_string()),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme")?;
    request.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority:?}"))?;
    request.set_path_with_query(Some(&path)).map_err(|()| format!("bad path {path:?}"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let mut bytes = Vec::new();
    if let Ok(body) = response.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    Ok((status, bytes))
}
