//! A compute-bound pod: prints one line, then spins in a loop forever without ever calling
//! the host. Tests use it to prove that such a guest still yields to the host's scheduler
//! (epoch interruption) and can be stopped.

fn main() {
    println!("spinning");
    let mut n: u64 = 0;
    loop {
        // black_box keeps the optimizer from deleting the loop.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
