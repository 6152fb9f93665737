//! Prints what the pod can see of its invocation: every argument as `arg[i]=...` and every
//! environment variable as `env NAME=VALUE`. Tests use it to prove that a pod sees exactly
//! its declared args and env, and nothing of the host's.

fn main() {
    for (i, arg) in std::env::args().enumerate() {
        println!("arg[{i}]={arg}");
    }
    for (name, value) in std::env::vars() {
        println!("env {name}={value}");
    }
}
