//! `clawscale healthcheck`: `GET /healthz` on the configured `listen_addr`
//! (or `--url`), exit status 0 only on 200. For container `HEALTHCHECK`s and
//! compose healthchecks, so the runtime image needs no HTTP client of its
//! own. Plain HTTP: the listener serves it beside TLS on the same port.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use hyper::StatusCode;

use super::client::{Client, RemoteUrl, Target};
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
    // Plain HTTP and no key: /healthz is public.
    let url = RemoteUrl {
        tls: false,
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let target = Target::Remote {
        url,
        api_key: String::new(),
    };
    let (status, body) = Client::new(target, Duration::from_secs(10))
        .probe("/healthz")
        .await
        .map_err(|e| Error::Serve(format!("http://{addr}/healthz: {e}")))?;
    if status != StatusCode::OK {
        return Err(Error::Serve(format!(
            "http://{addr}/healthz answered {status}: {}",
            body.trim()
        )));
    }
    let status = status.as_u16();
    let value = serde_json::json!({ "result": "ok", "status": status });
    output::emit(out, format, &value, || format!("healthy ({addr})"))
}
