//! The dashboard with 1,000 pods: starts a real `flotilla up`, then runs
//! `tests/browser/bench.mjs` (headless Debian Chromium through playwright-core; `scripts/setup
//! --browser-tests` installs both), which opens the Pods view, creates and then relabels 1,000
//! pods through the API, and prints how long the page took and how long its main thread was
//! blocked.
//!
//! cargo bench -p flotilla-e2e --bench dashboard

use flotilla_e2e::{Cluster, repo_root};
use std::process::Command;

fn main() {
    let pods = std::env::var("DASHBOARD_BENCH_PODS").unwrap_or_else(|_| "1000".into());
    let browser = repo_root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/setup --browser-tests"
    );
    let cluster = Cluster::start(1).expect("starting a cluster");
    let token = std::fs::read_to_string(cluster.data_dir().join("token")).expect("the token");
    let status = Command::new("node")
        .arg("bench.mjs")
        .arg(&pods)
        .current_dir(&browser)
        .env("FLOTILLA_SERVER", format!("http://{}", cluster.server))
        .env("FLOTILLA_TOKEN", token.trim())
        .status()
        .expect("running node");
    assert!(status.success(), "the dashboard bench failed");
}
