//! A long-running pod: prints `tick N` every interval, forever by default.
//!
//! Usage: `ticker [INTERVAL_MS] [MAX_TICKS]` (defaults: 1000 ms, no limit).
//! `std::thread::sleep` is WASI `poll_oneoff`, so an idle ticker costs the host nothing
//! but a timer; tests use it to prove that a running pod can be stopped.

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let interval_ms: u64 = args.next().map_or(1000, |a| parse(&a, "INTERVAL_MS"));
    let max_ticks: Option<u64> = args.next().map(|a| parse(&a, "MAX_TICKS"));

    let mut stdout = std::io::stdout();
    let mut n: u64 = 0;
    loop {
        n += 1;
        // Flush every line: a log reader should see each tick as it happens.
        writeln!(stdout, "tick {n}")
            .and_then(|()| stdout.flush())
            .expect("write stdout");
        if max_ticks.is_some_and(|max| n >= max) {
            return;
        }
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}

fn parse(arg: &str, what: &str) -> u64 {
    arg.parse().unwrap_or_else(|_| {
        eprintln!("ticker: {what} must be a whole number, got {arg:?}");
        std::process::exit(2)
    })
}
