//! `clawscale serve`: load the configuration, set up logging, run the server
//! (`app::run`) until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use tracing_subscriber::EnvFilter;

use super::{Error, Result};
use crate::config::{self, LogFormat, Overrides};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Database: `postgres://…`, `sqlite://PATH` or a SQLite file path.
    #[arg(long, env = "CLAWSCALE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Address of the HTTP listener (control protocol, DERP, metrics).
    #[arg(long, value_name = "ADDR")]
    pub listen_addr: Option<SocketAddr>,
}

pub(super) async fn run(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    args: ServeArgs,
) -> Result<()> {
    let overrides = Overrides {
        data_dir,
        database_url: args.database_url,
        listen_addr: args.listen_addr,
    };
    let config = config::load(config_path, &overrides)?;
    init_tracing(&config.log.level, Some(config.log.format));
    crate::app::run(config)
        .await
        .map_err(|e| Error::Serve(format!("{e:#}")))
}

/// Logs to stderr at `default_level`, unless `RUST_LOG` says otherwise.
/// Safe to call more than once (later calls do nothing).
pub(super) fn init_tracing(default_level: &str, format: Option<LogFormat>) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // hickory logs every TCP query at info.
        EnvFilter::new(format!("{default_level},hickory_server=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a human at a terminal; in files and
        // journals they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    // An error only means a subscriber is already installed.
    let _ = if format == Some(LogFormat::Json) {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
