//! Prints a line, then executes the `unreachable` instruction, so tests can check how a trap
//! is reported. (A Rust panic would also end in `unreachable` on wasm32-wasip1, but through
//! `abort`; calling the instruction directly keeps the trap's origin obvious.)

fn main() {
    println!("about to trap");
    core::arch::wasm32::unreachable();
}
