//! Harness for flotilla's end-to-end tests: start the real `flotilla` binary on a free port in a
//! temporary directory, and drive it with the real kubectl and plain HTTP.
//!
//! The binary is `target/release/flotilla` (or `$FLOTILLA_BIN`); the Wasm samples are
//! `wasm-samples/modules/*.wasm`. `scripts/test` builds both before running the tests.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// The flotilla binary under test.
pub fn flotilla_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = std::env::var_os("FLOTILLA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("release/flotilla"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release` first (scripts/test does)",
        path.display()
    );
    path
}

/// The directory of built sample modules.
pub fn modules_dir() -> PathBuf {
    let dir = repo_root().join("wasm-samples/modules");
    assert!(
        dir.join("hello.wasm").exists(),
        "{} has no modules: run wasm-samples/build.sh first",
        dir.display()
    );
    dir
}

/// A `flotilla up` cluster in its own temporary directory, killed when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    process: Option<Child>,
    /// The API server's `host:port`; a restart keeps it, so separate node agents reconnect.
    pub server: String,
    /// The gateway's URL (`http://host:port`); a restart keeps it too.
    pub gateway: String,
    /// Extra `flotilla up` arguments, given again on every restart.
    up_args: Vec<String>,
}

impl Cluster {
    /// Starts a cluster with `nodes` in-process node agents.
    pub fn start(nodes: usize) -> Result<Cluster> {
        Cluster::start_with(nodes, &[])
    }

    /// Starts a cluster with `nodes` in-process node agents and extra `flotilla up` arguments
    /// (e.g. `["--node-grace-period", "3s"]`).
    pub fn start_with(nodes: usize, up_args: &[&str]) -> Result<Cluster> {
        let mut dir = tempfile::tempdir()?;
        // Set FLOTILLA_KEEP_TEST_DIRS=1 to keep each cluster's logs and data for a post-mortem.
        if std::env::var_os("FLOTILLA_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("cluster directory: {}", dir.path().display());
        }
        let mut cluster = Cluster {
            dir,
            process: None,
            server: String::new(),
            gateway: String::new(),
            up_args: up_args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.boot(nodes)?;
        Ok(cluster)
    }

    fn boot(&mut self, nodes: usize) -> Result<()> {
        let data = self.data_dir();
        let _ = std::fs::remove_file(data.join("kubeconfig"));
        let _ = std::fs::remove_file(data.join("gateway-url"));
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("up-{}.log", Instant::now().elapsed().as_nanos())),
        )?;
        // A restart listens where the cluster did before, as a restarted control plane would.
        let listen = if self.server.is_empty() {
            "127.0.0.1:0"
        } else {
            &self.server
        };
        let gateway = if self.gateway.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            self.gateway.trim_start_matches("http://").to_string()
        };
        let child = Command::new(flotilla_bin())
            .args(["up", "--listen", listen, "--nodes", &nodes.to_string()])
            .args(["--gateway", &gateway])
            .args(&self.up_args)
            .arg("--data-dir")
            .arg(&data)
            .arg("--modules")
            .arg(modules_dir())
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting flotilla up")?;
        self.process = Some(child);
        let kubeconfig = data.join("kubeconfig");
        wait_until(
            Duration::from_secs(30),
            "the kubeconfig to be written",
            || Ok(kubeconfig.exists()),
        )?;
        let gateway_file = data.join("gateway-url");
        wait_until(
            Duration::from_secs(30),
            "the gateway address to be written",
            || Ok(gateway_file.exists()),
        )?;
        self.gateway = std::fs::read_to_string(&gateway_file)?.trim().to_string();
        let text = std::fs::read_to_string(&kubeconfig)?;
        self.server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: http://"))
            .context("kubeconfig names no server")?
            .to_string();
        wait_until(
            Duration::from_secs(30),
            "the API server to answer /readyz",
            || {
                Ok(self
                    .http("GET", "/readyz", None)
                    .map(|r| r.status == 200)
                    .unwrap_or(false))
            },
        )?;
        Ok(())
    }

    /// The process id of `flotilla up`, while it runs.
    /// What the cluster's processes have logged so far (`flotilla up` runs with
    /// `RUST_LOG=info`), across restarts.
    pub fn log(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(std::process::Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    /// Kills the cluster with SIGKILL and leaves it down (its address then refuses
    /// connections) until [`Cluster::resume`].
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.process.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts a stopped cluster again on the same data directory and API address.
    pub fn resume(&mut self, nodes: usize) -> Result<()> {
        self.boot(nodes)
    }

    /// Kills the cluster with SIGKILL (nothing gets to flush) and starts it again on the same
    /// data directory and API address.
    pub fn kill_and_restart(&mut self, nodes: usize) -> Result<()> {
        if let Some(mut child) = self.process.take() {
            child.kill()?;
            child.wait()?;
        }
        self.boot(nodes)
    }

    /// Starts `flotilla node --name NAME` as a separate process joining this cluster, with
    /// `extra_args`, and waits until its Node is Ready. Its data directory is `NAME` in the
    /// cluster's directory, so joining again with the same name is the same node coming back;
    /// its log is appended to `node-NAME.log` there.
    pub fn join_node(&self, name: &str, extra_args: &[&str]) -> Result<Background> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{name}.log")))?;
        let child = Command::new(flotilla_bin())
            .args(["node", "--name", name, "--listen", "127.0.0.1:0"])
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--data-dir")
            .arg(self.dir.path().join(name))
            .arg("--modules")
            .arg(modules_dir())
            .args(extra_args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting flotilla node {name}"))?;
        let mut node = Background(child);
        let object = format!("node/{name}");
        wait_until(
            Duration::from_secs(30),
            &format!("node {name} to be Ready"),
            || {
                if let Some(status) = node.0.try_wait()? {
                    bail!("flotilla node {name} exited ({status}); see node-{name}.log");
                }
                Ok(
                    self.field(&object, r#".status.conditions[?(@.type=="Ready")].status"#)
                        == "True",
                )
            },
        )?;
        Ok(node)
    }

    /// Runs kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None)
    }

    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        run_with_input(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(self.kubeconfig())
                .args(args),
            input,
        )
    }

    /// Runs kubectl and returns its stdout, failing with its stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        checked(self.kubectl(args), &format!("kubectl {}", args.join(" ")))
    }

    /// Runs a `flotilla` user command against this cluster.
    pub fn flotilla(&self, args: &[&str], input: Option<&str>) -> Output {
        run_with_input(
            Command::new(flotilla_bin())
                .args(args)
                .arg("--kubeconfig")
                .arg(self.kubeconfig()),
            input,
        )
    }

    /// One HTTP/1.1 request to the API server, with an optional JSON body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<HttpResponse> {
        http(&self.server, method, path, body)
    }

    /// A request to the cluster's gateway.
    pub fn gateway_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload: &str,
    ) -> Result<HttpResponse> {
        request(
            self.gateway.trim_start_matches("http://"),
            method,
            path,
            headers,
            payload,
        )
    }

    /// A JSONPath field of an object, via `kubectl get -o jsonpath`.
    pub fn field(&self, object: &str, jsonpath: &str) -> String {
        let out = self.kubectl(&["get", object, "-o", &format!("jsonpath={{{jsonpath}}}")]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until a field reads `expected`, or fails saying what it read last.
    pub fn wait_for_field(
        &self,
        object: &str,
        jsonpath: &str,
        expected: &str,
        timeout: Duration,
    ) -> Result<()> {
        let mut last = String::new();
        let outcome = wait_until(
            timeout,
            &format!("{object} {jsonpath} == {expected}"),
            || {
                last = self.field(object, jsonpath);
                Ok(last == expected)
            },
        );
        outcome.with_context(|| format!("last read {last:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Leave the server log where a person can read it.
            if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
                for entry in entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("--- {} (last 40 lines) ---", entry.path().display());
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

/// A process that is killed when dropped (e.g. a `flotilla node`).
pub struct Background(pub Child);

impl Background {
    /// Kills the process with SIGKILL, as a crashed machine would go: nothing is cleaned up.
    pub fn kill(mut self) -> Result<()> {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_with_input(command: &mut Command, input: Option<&str>) -> Output {
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the command starts");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("stdin written");
    }
    child.wait_with_output().expect("the command finishes")
}

/// stdout of a successful command, or an error with its stderr.
pub fn checked(output: Output, what: &str) -> Result<String> {
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The header lines, as sent.
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The values of every header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.0-style request (the server closes after answering), decoding a chunked body.
pub fn http(
    server: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Result<HttpResponse> {
    let (content_type, payload) = body.unwrap_or(("application/json", ""));
    request(
        server,
        method,
        path,
        &[("Content-Type", content_type)],
        payload,
    )
}

/// An HTTP/1.1 request to `server` (`host:port`) with extra `headers`; a `Host` among them
/// replaces the default (`server` itself).
pub fn request(
    server: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &str,
) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("Host: {server}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{head}Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(HttpResponse {
        status,
        head: head.to_string(),
        body,
    })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
