//! Images fetched over HTTP: a module pinned by digest runs; one whose bytes do not match its
//! digest is refused with a message that says so.

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
