//! Exits with a chosen code (first argument, default 3) through WASI `proc_exit`,
//! so tests can check that the code reaches the pod's status.

fn main() {
    let code: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    eprintln!("exit-code: exiting with {code}");
    std::process::exit(code);
}
