//! The browser dashboard in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from npm; `scripts/setup` installs both). The browser steps live in
//! `tests/browser/dashboard.mjs`; this test starts the cluster they run against and keeps the
//! screenshots in `target/browser-artifacts/`.

use anyhow::{Context, Result, ensure};
use flotilla_e2e::{Cluster, repo_root};
use std::process::Command;

#[test]
fn dashboard_in_chromium() -> Result<()> {
    let browser_tests = repo_root().join("tests/browser");
    ensure!(
        browser_tests.join("node_modules/playwright-core").exists(),
        "playwright-core is missing from tests/browser/node_modules: run scripts/setup (it runs `npm ci` there)"
    );
    // A short watch history, so the page's relist on 410 Gone can be made to happen.
    let history = "300";
    let cluster = Cluster::start_with(1, &["--watch-history", history])?;
    let token = std::fs::read_to_string(cluster.data_dir().join("token"))
        .context("reading the cluster's token")?;
    let artifacts = repo_root().join("target/browser-artifacts");
    let output = Command::new("node")
        .arg(browser_tests.join("dashboard.mjs"))
        .current_dir(&browser_tests)
        .env("FLOTILLA_SERVER", format!("http://{}", cluster.server))
        .env("FLOTILLA_TOKEN", token.trim())
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("ARTIFACTS", &artifacts)
        .env("WATCH_HISTORY", history)
        .env("MANIFESTS", repo_root().join("wasm-samples/manifests"))
        .output()
        .context("running node (scripts/setup installs Node.js)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    ensure!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}{stderr}\n--- cluster log ---\n{}",
        artifacts.display(),
        tail(&cluster.log(), 60)
    );
    // Every step printed its line: a script that stopped early must not pass.
    let script = std::fs::read_to_string(browser_tests.join("dashboard.mjs"))?;
    let steps = script.matches("await run(\"").count();
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
