//! Integration tests for flotilla-node, in one binary (one link, shared helpers).
//!
//! The runtime tests run the real guest programs from `wasm-samples/`; build them first with
//! `wasm-samples/build.sh`.

mod runtime;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The directory `wasm-samples/build.sh` copies its modules to.
pub fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wasm-samples/modules")
}

/// The bytes of `wasm-samples/modules/NAME.wasm`.
pub fn sample(name: &str) -> Vec<u8> {
    let path = modules_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the sample module {}: {e}; run wasm-samples/build.sh first",
            path.display()
        )
    })
}

/// A pod log file in a temporary directory that lives as long as this value.
pub struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Default for Log {
    fn default() -> Log {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("container.log");
        Log { _dir: dir, path }
    }
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    /// A handle to give a guest as its stdout, opened for appending as the node agent does.
    pub fn file(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("open log file")
    }

    /// What the guest wrote, as `kubectl logs` shows it: the text of the log's records.
    pub fn contents(&self) -> String {
        String::from_utf8(flotilla_node::log_file::plain_text(&self.records())).unwrap()
    }

    /// The log file as stored: one timestamped record per line.
    pub fn records(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }
}
