//! The component counterpart of `hello` and `env-args` in one: a greeting to stdout, every
//! argument and environment variable, one line to stderr, then exit with the code in
//! `EXIT_CODE` (0 if unset). Tests use it to prove that a component pod sees exactly its
//! declared args and env, that both streams reach its log, and how its exit code is reported.

fn main() {
    println!("Hello from a WASI 0.2 component!");
    for (i, arg) in std::env::args().enumerate() {
        println!("arg[{i}]={arg}");
    }
    for (name, value) in std::env::vars() {
        println!("env {name}={value}");
    }
    eprintln!("And this one goes to stderr.");
    let code = std::env::var("EXIT_CODE").map_or(0, |code| code.parse().unwrap_or(2));
    std::process::exit(code);
}
