//! Images fetched over HTTP and HTTPS: a module pinned by digest runs; one whose bytes do not
//! match its digest is refused with a message that says so; an HTTPS server is trusted only
//! when its certificate chains to a CA the node trusts (`--image-ca`).

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, modules_dir, wait_until};
use sha2::Digest as _;
use std::io::{Read, Write};
use std::net::TcpListener;

/// Serves `body` to every request on a loopback port, from a thread; returns `host:port`.
fn serve(body: Vec<u8>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Ok(address)
}

fn pod(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{restartPolicy: Never, containers: [{{name: c, image: \"{image}\"}}]}}\n"
    )
}

#[test]
fn a_module_pinned_by_digest_runs_from_http_and_a_tampered_one_is_refused() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let hello = std::fs::read(modules_dir().join("hello.wasm"))?;
    let digest: String = sha2::Sha256::digest(&hello)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let address = serve(hello)?;

    let pinned = format!("http://{address}/modules/hello.wasm@sha256:{digest}");
    checked_apply(&cluster, &pod("fetched", &pinned))?;
    cluster.wait_for_field("pod/fetched", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "fetched"])?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");

    let tampered = format!(
        "http://{address}/modules/hello.wasm@sha256:{}",
        "0".repeat(64)
    );
    checked_apply(&cluster, &pod("tampered", &tampered))?;
    let waiting = ".status.containerStatuses[0].state.waiting";
    wait_until(SETTLE, "the tampered pod to say why", || {
        Ok(cluster
            .field("pod/tampered", &format!("{waiting}.message"))
            .contains("tampered"))
    })?;
    let reason = cluster.field("pod/tampered", &format!("{waiting}.reason"));
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );
    Ok(())
}

/// Serves `body` over TLS from a thread, with a new self-signed certificate for 127.0.0.1;
/// returns `host:port` and the certificate in PEM.
fn serve_tls(body: Vec<u8>) -> anyhow::Result<(String, String)> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)?,
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut request = [0u8; 4096];
            if tls.read(&mut request).is_err() {
                continue; // a client that did not trust us
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes());
            let _ = tls.write_all(&body);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    Ok((address, certified.cert.pem()))
}

#[test]
fn https_images_run_when_the_node_trusts_the_servers_ca() -> anyhow::Result<()> {
    let hello = std::fs::read(modules_dir().join("hello.wasm"))?;
    let (address, certificate) = serve_tls(hello)?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, certificate)?;
    let cluster = Cluster::start_with(1, &["--image-ca", &ca.display().to_string()])?;
    checked_apply(
        &cluster,
        &pod("secure", &format!("https://{address}/hello.wasm")),
    )?;
    cluster.wait_for_field("pod/secure", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "secure"])?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");

    // A node that does not trust the CA refuses the server, and says why.
    let untrusting = Cluster::start(1)?;
    checked_apply(
        &untrusting,
        &pod("untrusted", &format!("https://{address}/hello.wasm")),
    )?;
    wait_until(SETTLE, "a certificate error in the pod's status", || {
        let message = untrusting.field(
            "pod/untrusted",
            ".status.containerStatuses[0].state.waiting.message",
        );
        Ok(message.contains("certificate"))
    })?;
    Ok(())
}
