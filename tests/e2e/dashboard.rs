//! The browser dashboard in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from npm; `scripts/setup --browser-tests` installs both). The browser
//! steps live in `tests/browser/dashboard.mjs`; this test starts the cluster they run against,
//! kills and restarts it when the script asks (to show the page resuming its watches), and
//! keeps the screenshots in `target/browser-artifacts/`.

use anyhow::{Context, Result, ensure};
use flotilla_e2e::{Cluster, repo_root};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn dashboard_in_chromium() -> Result<()> {
    let browser_tests = repo_root().join("tests/browser");
    ensure!(
        browser_tests.join("node_modules/playwright-core").exists(),
        "playwright-core is missing from tests/browser/node_modules: run scripts/setup --browser-tests"
    );
    // A short watch history, so the page's relist on 410 Gone can be made to happen.
    let history = "300";
    let mut cluster = Cluster::start_with(1, &["--watch-history", history])?;
    let token = std::fs::read_to_string(cluster.data_dir().join("token"))
        .context("reading the cluster's token")?;
    let artifacts = repo_root().join("target/browser-artifacts");
    let mut script = Command::new("node")
        .arg(browser_tests.join("dashboard.mjs"))
        .current_dir(&browser_tests)
        .env("FLOTILLA_SERVER", format!("http://{}", cluster.server))
        .env("FLOTILLA_TOKEN", token.trim())
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("ARTIFACTS", &artifacts)
        .env("WATCH_HISTORY", history)
        .env("MANIFESTS", repo_root().join("wasm-samples/manifests"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (scripts/setup --browser-tests installs Node.js)")?;
    let errors = script.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || std::io::read_to_string(errors).unwrap_or_default());
    let mut requests = script.stdin.take().expect("piped");
    let mut stdout = String::new();
    for line in BufReader::new(script.stdout.take().expect("piped")).lines() {
        let line = line?;
        eprintln!("{line}");
        if line == "RESTART-CLUSTER" {
            cluster.kill_and_restart(1)?;
            writeln!(requests, "restarted")?;
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = script.wait()?;
    let stderr = errors.join().unwrap_or_default();
    eprintln!("{stderr}");
    ensure!(
        status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}{stderr}\n--- cluster log ---\n{}",
        artifacts.display(),
        tail(&cluster.log(), 60)
    );
    // Every step printed its line: a script that stopped early must not pass.
    let source = std::fs::read_to_string(browser_tests.join("dashboard.mjs"))?;
    let steps = source.matches("await run(\"").count();
    let passed = stdout.lines().filter(|l| l.starts_with("ok   ")).count();
    ensure!(
        steps > 0 && passed == steps,
        "{passed} of {steps} browser steps passed:\n{stdout}"
    );
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
