//! An HTTP handler in plain WASI preview 1, served WAGI style (CGI over stdio): the request
//! arrives as environment variables and stdin, the answer leaves on stdout as headers, a
//! blank line and a body. No HTTP library, no wasi:http: any language that compiles to
//! wasm32-wasip1 can do this.
//!
//! | path          | answer                                                  |
//! |---------------|---------------------------------------------------------|
//! | `/status/N`   | status N                                                |
//! | `/broken`     | prints no header block (the node answers 502)           |
//! | `/trap`       | panics (the node answers 500)                           |
//! | anything else | `Hello from WAGI! METHOD PATH?QUERY`, then the body     |

use std::io::Read as _;

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (method, path, query) = (var("REQUEST_METHOD"), var("PATH_INFO"), var("QUERY_STRING"));
    if let Some(code) = path.strip_prefix("/status/") {
        print!("Status: {code}\n\n");
        return;
    }
    match path.as_str() {
        "/broken" => {
            print!("this is no CGI answer");
            return;
        }
        "/trap" => panic!("asked to trap"),
        _ => {}
    }
    let mut body = String::new();
    std::io::stdin()
        .read_to_string(&mut body)
        .expect("reading the request body");
    eprintln!("{method} {path}");
    print!("Content-Type: text/plain\n\nHello from WAGI! {method} {path}");
    if !query.is_empty() {
        print!("?{query}");
    }
    println!();
    print!("{body}");
}
