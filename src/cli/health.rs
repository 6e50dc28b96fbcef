//! `faultline health`: asks a running instance's health endpoint, for container health
//! checks (the runtime image has no curl). A plain HTTP/1.0 GET on `std::net`: one request
//! to a loopback address needs no client library.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};

/// `faultline health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The endpoint: `http://HOST:PORT/readyz` (readiness) or `/healthz` (liveness).
    #[arg(default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,
}

/// Prints the report; true when the endpoint answered 200.
pub fn check(args: &HealthArgs) -> Result<bool> {
    let bad = |message: String| Error::Config {
        location: args.url.clone(),
        message,
    };
    let rest = args
        .url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are served".into()))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let io = |e: std::io::Error| bad(format!("no answer: {e}"));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(io)?
        .next()
        .ok_or_else(|| bad("no address".into()))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io)?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    println!("{body}");
    Ok(status == "200")
}
