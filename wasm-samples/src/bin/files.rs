//! Works with files, for tests of volumes and working directories. Its arguments are a
//! sequence of operations, run in order, each printing one line:
//!
//! - `cwd`: the working directory;
//! - `cat PATH`: the file's contents;
//! - `write PATH TEXT`: creates or truncates the file with TEXT;
//! - `ls DIR`: the sorted names in the directory;
//! - `log PATH`: appends `line N` to the file every 100 ms, forever (a log-writing app);
//! - `follow PATH`: prints each line appended to the file, forever (a log shipper);
//! - `until PATH`: waits until the file exists (a program told to stop through a file).
//!
//! A failed operation prints `error: OP PATH: ...` and the program carries on, so a test
//! sees every outcome; the exit code is the number of failures.
//!
//! It also exports two functions for `exec` probes (a probe calls an export of the module in a
//! new instance that shares the container's volumes): `healthz` succeeds while the file named
//! by `$HEALTH_FILE` (default `/probe/healthy`) exists, `readyz` while `$READY_FILE` (default
//! `/probe/ready`) does. A third, `prestop`, is a `preStop` hook: it creates the file named by
//! `$STOP_FILE` (default `/run/stop`), which a program waiting with `until` takes as its cue.

use std::io::{BufRead, BufReader, Seek, Write};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut failures = 0;
    let mut rest = args.iter().map(String::as_str);
    while let Some(op) = rest.next() {
        let mut arg = || rest.next().unwrap_or_default().to_string();
        let result = match op {
            "cwd" => std::env::current_dir().map(|dir| println!("cwd {}", dir.display())),
            "cat" => {
                let path = arg();
                std::fs::read_to_string(&path)
                    .map(|text| println!("cat {path}: {}", text.trim_end()))
                    .map_err(|e| annotate(e, "cat", &path))
            }
            "write" => {
                let (path, text) = (arg(), arg());
                std::fs::write(&path, &text)
                    .map(|()| println!("wrote {path}"))
                    .map_err(|e| annotate(e, "write", &path))
            }
            "ls" => {
                let dir = arg();
                list(&dir).map_err(|e| annotate(e, "ls", &dir))
            }
            "log" => {
                let path = arg();
                log_forever(&path).map_err(|e| annotate(e, "log", &path))
            }
            "until" => {
                let path = arg();
                wait_for_file(&path).map(|()| println!("{path} appeared"))
            }
            "follow" => {
                let path = arg();
                follow_forever(&path).map_err(|e| annotate(e, "follow", &path))
            }
            other => Err(std::io::Error::other(format!("unknown operation {other:?}"))),
        };
        if let Err(error) = result {
            println!("error: {error}");
            failures += 1;
        }
    }
    std::process::exit(failures);
}

fn annotate(error: std::io::Error, op: &str, path: &str) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{op} {path}: {error}"))
}

fn list(dir: &str) -> std::io::Result<()> {
    let mut names = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort();
    println!("ls {dir}: {}", names.join(" "));
    Ok(())
}

fn log_forever(path: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for n in 1.. {
        writeln!(file, "line {n}")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn wait_for_file(path: &str) -> std::io::Result<()> {
    while !std::fs::exists(path)? {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn follow_forever(path: &str) -> std::io::Result<()> {
    // The writer may start after us: wait for the file to appear.
    let file = loop {
        match std::fs::File::open(path) {
            Ok(file) => break file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(e),
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let position = reader.stream_position()?;
        if reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
            println!("shipped: {}", line.trim_end());
        } else {
            // A partial line: read it again once the writer has finished it.
            reader.seek(std::io::SeekFrom::Start(position))?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Liveness: 0 while the health file exists, 1 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn healthz() -> i32 {
    file_exists_status("HEALTH_FILE", "/probe/healthy")
}

/// Readiness: 0 while the ready file exists, 1 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn readyz() -> i32 {
    file_exists_status("READY_FILE", "/probe/ready")
}

fn file_exists_status(variable: &str, default: &str) -> i32 {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_string());
    if std::path::Path::new(&path).exists() {
        0
    } else {
        println!("{path} is missing");
        1
    }
}

/// preStop hook: creates the stop file; 0 on success.
#[unsafe(no_mangle)]
pub extern "C" fn prestop() -> i32 {
    let path = std::env::var("STOP_FILE").unwrap_or_else(|_| "/run/stop".to_string());
    match std::fs::write(&path, "stop") {
        Ok(()) => 0,
        Err(error) => {
            println!("cannot write {path}: {error}");
            1
        }
    }
}
