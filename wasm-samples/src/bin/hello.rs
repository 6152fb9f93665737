//! The smallest pod: two lines to stdout, one to stderr, exit 0.
//! Tests check that both streams reach the pod's log file.

fn main() {
    println!("Hello from flotilla!");
    println!("This line also goes to stdout.");
    eprintln!("And this one goes to stderr.");
}
