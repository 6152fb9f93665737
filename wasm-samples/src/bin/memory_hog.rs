//! Allocates memory in 1 MiB chunks, touching every page, and prints the total every 8 MiB.
//!
//! Usage: `memory-hog [LIMIT_MIB]` (default 1024). Exits 0 once it holds LIMIT_MIB; under a
//! smaller memory limit the allocator fails first and the process aborts, which is how tests
//! see an out-of-memory kill.

const MIB: usize = 1024 * 1024;

fn main() {
    let limit_mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for mib in 1..=limit_mib {
        // Writing a byte per 4 KiB page makes the memory real, not just reserved.
        let mut chunk = vec![0u8; MIB];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(std::hint::black_box(chunk));
        if mib % 8 == 0 {
            println!("allocated {mib} MiB");
        }
    }
    println!("done: holding {limit_mib} MiB");
}
