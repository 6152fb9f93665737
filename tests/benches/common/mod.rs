//! What the benchmarks share: a keep-alive HTTP/1.1 client, raw watch streams and
//! percentiles.

#![allow(dead_code)] // Each bench uses its own subset.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Opens a watch (`path` is the collection with its query, without `watch=1`) and returns
/// the reader of its event lines; a read waits at most `timeout`.
pub fn open_watch(server: &str, path: &str, timeout: Duration) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    let separator = if path.contains('?') { '&' } else { '?' };
    write!(
        stream,
        "GET {path}{separator}watch=1 HTTP/1.1\r\nHost: {server}\r\n\r\n"
    )
    .unwrap();
    BufReader::new(stream)
}

/// The next event of a watch, skipping the chunk-size lines of the chunked body; panics if
/// the watch ends.
pub fn next_event(reader: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("watch read") > 0,
            "watch ended early"
        );
        if let Ok(event) = serde_json::from_str(line.trim()) {
            return event;
        }
    }
}

/// One keep-alive HTTP/1.1 connection to the API server.
pub struct Connection(SendRequest<Full<Bytes>>);

impl Connection {
    pub async fn open(server: &str) -> Connection {
        let stream = tokio::net::TcpStream::connect(server)
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        Connection(sender)
    }

    /// Sends one request and reads the whole response: its status and body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, Bytes) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "flotilla");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        self.0.ready().await.expect("connection ready");
        let response = self.0.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
