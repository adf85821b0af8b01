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
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok();
    if installed && format == Some(LogFormat::Json) {
        // tracing-subscriber is built without its `json` feature.
        tracing::warn!("log.format \"json\" is not supported yet; logging as text");
    }
}
