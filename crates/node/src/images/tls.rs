//! TLS for `https://` image downloads: rustls with Mozilla's root certificates, plus any
//! certificate authorities the node is told to trust (`--image-ca FILE`, PEM), for servers
//! with a private CA. Certificates are always verified; there is no "insecure" mode.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Connects to image servers over TLS. Cheap to clone.
#[derive(Clone)]
pub struct Tls(TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Trusts Mozilla's roots and every certificate in each PEM file of `extra_cas`.
    pub fn new(extra_cas: &[impl AsRef<Path>]) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for file in extra_cas {
            let file = file.as_ref();
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect())
                .map_err(|e| format!("reading CA certificates from {}: {e}", file.display()))?;
            if certificates.is_empty() {
                return Err(format!("{} holds no PEM certificate", file.display()));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| format!("a CA certificate in {}: {e}", file.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("configuring TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls(TlsConnector::from(Arc::new(config))))
    }

    /// Opens a TLS connection to `authority` (`host[:port]`, port 443 by default), checking
    /// the server's certificate against `host`.
    pub async fn connect(
        &self,
        authority: &str,
    ) -> Result<TlsStream<tokio::net::TcpStream>, String> {
        let (host, port) = split_authority(authority, 443)?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        self.0
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {authority} failed: {e}"))
    }
}

/// `host[:port]` (with `[v6]` hosts) as host and port.
fn split_authority(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let bad = || format!("{authority:?} is not host[:port]");
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| bad())?)),
        None => Ok((authority, default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(
            split_authority("example.com", 443),
            Ok(("example.com", 443))
        );
        assert_eq!(
            split_authority("127.0.0.1:8443", 443),
            Ok(("127.0.0.1", 8443))
        );
        assert_eq!(split_authority("[::1]:9", 443), Ok(("::1", 9)));
        assert!(split_authority("host:port", 443).is_err());
    }
}
