//! `clawscale healthcheck`: `GET /healthz` on the configured `listen_addr`
//! (or `--url`), exit status 0 only on 200. For container `HEALTHCHECK`s and
//! compose healthchecks, so the runtime image needs no HTTP client of its
//! own. Plain HTTP: the listener serves it beside TLS on the same port.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Error, Result, output};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Address to ask (`host:port`); default: `listen_addr`, with an
    /// unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
}

pub(super) async fn run(
    config: &Config,
    args: &HealthcheckArgs,
    out: &mut dyn Write,
    format: Option<output::Format>,
) -> Result<()> {
    let mut addr = args.addr.unwrap_or(config.listen_addr);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        });
    }
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get(addr))
        .await
        .map_err(|_| Error::Serve(format!("http://{addr}/healthz did not answer in 10 s")))?
        .map_err(|e| Error::Serve(format!("http://{addr}/healthz: {e}")))?;
    if status != 200 {
        return Err(Error::Serve(format!(
            "http://{addr}/healthz answered {status}: {}",
            body.trim()
        )));
    }
    let value = serde_json::json!({ "result": "ok", "status": status });
    output::emit(out, format, &value, || format!("healthy ({addr})"))
}

/// One HTTP/1.0 request (the server closes the connection after it).
async fn get(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // /healthz answers a few bytes; cap what a wrong port could send.
    stream.take(64 * 1024).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}
