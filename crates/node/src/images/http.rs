//! Modules downloaded over plain HTTP: `http://host[:port]/path/app.wasm`, optionally pinned
//! with `@sha256:<hex>` as container images are pinned by digest. With a digest, the bytes
//! are checked before anything else sees them, so a tampered or changed module is refused
//! rather than run; without one, the node trusts the server.

use super::PullError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The whole download, connection included, must finish within this.
pub(super) const TIMEOUT: Duration = Duration::from_secs(60);

/// An `http://` image: where to fetch it and the digest it must have, if pinned.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpImage {
    pub url: String,
    authority: String,
    path: String,
    digest: Option<String>,
}

impl HttpImage {
    /// Parses `http://authority/path[@sha256:hex]`.
    pub fn parse(image: &str) -> Result<HttpImage, PullError> {
        let malformed = |why: &str| PullError::BadReference {
            image: image.to_string(),
            why: why.to_string(),
        };
        let (url, digest) = match image.rsplit_once("@sha256:") {
            Some((url, hex)) => {
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(malformed("a sha256 digest is 64 hexadecimal digits"));
                }
                (url, Some(hex.to_ascii_lowercase()))
            }
            None => (image, None),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| malformed("only http:// URLs are downloaded"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(malformed("the URL needs a host (and no user info)"));
        }
        Ok(HttpImage {
            url: url.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            digest,
        })
    }

    /// Downloads the module, refusing more than `max` bytes and bytes that do not match the
    /// pinned digest.
    pub async fn download(&self, max: u64) -> Result<Vec<u8>, PullError> {
        let bytes = tokio::time::timeout(TIMEOUT, self.get(max))
            .await
            .map_err(|_| self.failed(format!("no complete answer within {TIMEOUT:?}")))??;
        if let Some(expected) = &self.digest {
            let actual = hex(&Sha256::digest(&bytes));
            if &actual != expected {
                return Err(PullError::DigestMismatch {
                    url: self.url.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(bytes)
    }

    async fn get(&self, max: u64) -> Result<Vec<u8>, PullError> {
        let answer = get(&self.authority, &self.path, &[], max)
            .await
            .map_err(|e| match e {
                GetError::Failed(reason) => self.failed(reason),
                GetError::TooLarge(size) => PullError::TooLarge {
                    path: self.url.clone(),
                    size,
                    max,
                },
            })?;
        if answer.status != hyper::StatusCode::OK {
            return Err(self.failed(format!("the server answered {}", answer.status)));
        }
        Ok(answer.body)
    }

    fn failed(&self, reason: String) -> PullError {
        PullError::Download {
            url: self.url.clone(),
            reason,
        }
    }
}

/// One answer of [`get`], whatever its status.
pub(super) struct Answer {
    pub status: hyper::StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Why [`get`] got no answer.
pub(super) enum GetError {
    /// Connecting, sending or reading failed.
    Failed(String),
    /// The body is over the cap (this many bytes, or at least this many).
    TooLarge(u64),
}

/// `GET http://{authority}{path}` over plain HTTP/1.1 with extra `headers`, reading at most
/// `max` bytes of body. Shared by plain downloads and the OCI registry client.
pub(super) async fn get(
    authority: &str,
    path: &str,
    headers: &[(hyper::header::HeaderName, &str)],
    max: u64,
) -> Result<Answer, GetError> {
    let failed = |e: &dyn std::fmt::Display| GetError::Failed(e.to_string());
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| GetError::Failed(format!("cannot connect to {authority}: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "flotilla-node");
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
    let announced = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = announced.filter(|size| *size > max) {
        return Err(GetError::TooLarge(size));
    }
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&e))?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
            if bytes.len() as u64 > max {
                return Err(GetError::TooLarge(bytes.len() as u64));
            }
        }
    }
    Ok(Answer {
        status,
        content_type,
        body: bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `body` with `status` to every connection, as a minimal HTTP/1.1 server.
    async fn serve(status: &'static str, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn downloads_and_checks_the_pinned_digest() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let address = serve("200 OK", module.clone()).await;
        let url = format!("http://{address}/m/app.wasm");
        let unpinned = HttpImage::parse(&url).unwrap();
        assert_eq!(unpinned.download(1 << 20).await.unwrap(), module);

        let right = hex(&Sha256::digest(&module));
        let pinned = HttpImage::parse(&format!("{url}@sha256:{right}")).unwrap();
        assert_eq!(pinned.download(1 << 20).await.unwrap(), module);

        let wrong = format!("{url}@sha256:{}", "0".repeat(64));
        let refused = HttpImage::parse(&wrong).unwrap().download(1 << 20).await;
        assert!(
            matches!(refused, Err(PullError::DigestMismatch { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn refuses_errors_oversized_bodies_and_bad_references() {
        let address = serve("404 Not Found", b"nope".to_vec()).await;
        let missing = HttpImage::parse(&format!("http://{address}/x.wasm")).unwrap();
        let error = missing.download(1 << 20).await.unwrap_err().to_string();
        assert!(error.contains("404"), "{error}");

        let address = serve("200 OK", vec![0; 2048]).await;
        let big = HttpImage::parse(&format!("http://{address}/big.wasm")).unwrap();
        assert!(matches!(
            big.download(1024).await,
            Err(PullError::TooLarge { .. })
        ));

        for bad in [
            "http:///x.wasm",
            "http://h/x.wasm@sha256:abc",
            "ftp://h/x.wasm",
        ] {
            assert!(HttpImage::parse(bad).is_err(), "{bad}");
        }
        let closed = HttpImage::parse("http://127.0.0.1:1/x.wasm").unwrap();
        assert!(matches!(
            closed.download(1024).await,
            Err(PullError::Download { .. })
        ));
    }
}
