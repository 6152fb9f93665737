//! Rebuilds the apiserver when the dashboard's files change: they are compiled in (see
//! `src/dashboard.rs`), and a new file is not a source file cargo would otherwise notice.

fn main() {
    println!("cargo:rerun-if-changed=../../web-ui");
}
