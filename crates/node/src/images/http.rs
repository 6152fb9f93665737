//! Modules downloaded over HTTP or HTTPS: `http(s)://host[:port]/path/app.wasm`, optionally
//! pinned with `@sha256:<hex>` as container images are pinned by digest. With a digest, the
//! bytes are checked before anything else sees them, so a tampered or changed module is
//! refused rather than run; without one, the node trusts the server (over HTTPS, a server
//! whose certificate it verified, see [`super::tls`]).

use super::PullError;
use super::tls::Tls;
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
    /// Fetched over TLS (`https://`).
    secure: bool,
    authority: String,
    path: String,
    digest: Option<String>,
}

impl HttpImage {
    /// Parses `http(s)://authority/path[@sha256:hex]`.
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
        let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(malformed("only http:// and https:// URLs are downloaded")),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(malformed("the URL needs a host (and no user info)"));
        }
        Ok(HttpImage {
            url: url.to_string(),
            secure,
            authority: authority.to_string(),
            path: path.to_string(),
            digest,
        })
    }

    /// Downloads the module (over `tls` for `https://`), refusing more than `max` bytes and
    /// bytes that do not match the pinned digest.
    pub async fn download(&self, max: u64, tls: &Tls) -> Result<Vec<u8>, PullError> {
        let bytes = tokio::time::timeout(TIMEOUT, self.get(max, tls))
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

    async fn get(&self, max: u64, tls: &Tls) -> Result<Vec<u8>, PullError> {
        let answer = if self.secure {
            let stream = tls
                .connect(&self.authority)
                .await
                .map_err(|reason| self.failed(reason))?;
            exchange(stream, &self.authority, &self.path, &[], max).await
        } else {
            get(&self.authority, &self.path, &[], max).await
        };
        let answer = answer.map_err(|e| match e {
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
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| GetError::Failed(format!("cannot connect to {authority}: {e}")))?;
    exchange(stream, authority, path, headers, max).await
}

/// One `GET` over an open connection, plain or TLS.
async fn exchange<S>(
    stream: S,
    authority: &str,
    path: &str,
    headers: &[(hyper::header::HeaderName, &str)],
    max: u64,
) -> Result<Answer, GetError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| GetError::Failed(e.to_string());
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

    fn no_extra_cas() -> Tls {
        Tls::new(&[] as &[&str]).unwrap()
    }

    /// Serves `body` over TLS with a new self-signed certificate for 127.0.0.1; returns the
    /// address and the certificate in PEM, to trust.
    async fn serve_tls(body: Vec<u8>) -> (String, String) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (address, certified.cert.pem())
    }

    #[tokio::test]
    async fn https_downloads_verify_the_server_certificate() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let (address, certificate) = serve_tls(module.clone()).await;
        let image = HttpImage::parse(&format!("https://{address}/app.wasm")).unwrap();
        // Not signed by any CA the node trusts: refused, saying why.
        let error = image
            .download(1 << 20, &no_extra_cas())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("certificate"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, certificate).unwrap();
        let trusting = Tls::new(&[&ca]).unwrap();
        assert_eq!(image.download(1 << 20, &trusting).await.unwrap(), module);
        // A CA file that holds no certificate is a configuration error, named.
        std::fs::write(&ca, "not a certificate").unwrap();
        assert!(Tls::new(&[&ca]).unwrap_err().contains("no PEM certificate"));
    }

    #[tokio::test]
    async fn downloads_and_checks_the_pinned_digest() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let address = serve("200 OK", module.clone()).await;
        let url = format!("http://{address}/m/app.wasm");
        let unpinned = HttpImage::parse(&url).unwrap();
        assert_eq!(
            unpinned.download(1 << 20, &no_extra_cas()).await.unwrap(),
            module
        );

        let right = hex(&Sha256::digest(&module));
        let pinned = HttpImage::parse(&format!("{url}@sha256:{right}")).unwrap();
        assert_eq!(
            pinned.download(1 << 20, &no_extra_cas()).await.unwrap(),
            module
        );

        let wrong = format!("{url}@sha256:{}", "0".repeat(64));
        let refused = HttpImage::parse(&wrong)
            .unwrap()
            .download(1 << 20, &no_extra_cas())
            .await;
        assert!(
            matches!(refused, Err(PullError::DigestMismatch { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn refuses_errors_oversized_bodies_and_bad_references() {
        let address = serve("404 Not Found", b"nope".to_vec()).await;
        let missing = HttpImage::parse(&format!("http://{address}/x.wasm")).unwrap();
        let error = missing
            .download(1 << 20, &no_extra_cas())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("404"), "{error}");

        let address = serve("200 OK", vec![0; 2048]).await;
        let big = HttpImage::parse(&format!("http://{address}/big.wasm")).unwrap();
        assert!(matches!(
            big.download(1024, &no_extra_cas()).await,
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
            closed.download(1024, &no_extra_cas()).await,
            Err(PullError::Download { .. })
        ));
    }
}
