//! Tries to see the host: reads files by absolute and relative paths, lists directories,
//! and prints its whole environment. Each attempt prints one line, `open PATH: ...`, and any
//! attempt that succeeds also prints `LEAK`, so tests can assert that a pod sees nothing
//! it was not given.

fn main() {
    for path in ["/etc/passwd", "/etc/hostname", "/proc/self/environ", "../etc/passwd", "x"] {
        match std::fs::read(path) {
            Ok(bytes) => println!("open {path}: LEAK read {} bytes", bytes.len()),
            Err(error) => println!("open {path}: denied ({error})"),
        }
    }
    for dir in ["/", ".", ".."] {
        match std::fs::read_dir(dir) {
            Ok(entries) => println!("list {dir}: LEAK {} entries", entries.count()),
            Err(error) => println!("list {dir}: denied ({error})"),
        }
    }
    match std::env::current_dir() {
        Ok(dir) => println!("cwd: {}", dir.display()),
        Err(error) => println!("cwd: none ({error})"),
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    println!("env: {} variables", vars.len());
    for (name, value) in vars {
        println!("env {name}={value}");
    }
    println!("snoop done");
}
