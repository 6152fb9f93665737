//! Writes to stdout without end and as fast as it can, to show that a pod's log stays bounded
//! and its node responsive however much a guest writes.
//!
//! Usage: `flood [lines|bytes]` (default `lines`): numbered lines, or one endless line of `x`
//! with no newline at all.

use std::io::Write;

fn main() {
    let lines = std::env::args().nth(1).as_deref() != Some("bytes");
    let mut stdout = std::io::stdout().lock();
    let chunk = [b'x'; 4096];
    let mut n: u64 = 0;
    loop {
        n += 1;
        let written = if lines {
            writeln!(stdout, "flood line {n} {}", "x".repeat(100))
        } else {
            stdout.write_all(&chunk)
        };
        // A host that stops taking output must not stop the flood from being a flood.
        let _ = written;
    }
}
