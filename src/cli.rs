//! The `clawscale` command line, shaped like Headscale v0.29's CLI: `serve`
//! runs the server; `users`, `preauthkeys`, `apikeys`, `oauth-clients`, `nodes`,
//! `auth`, `policy` and `audit` talk to a running server over REST `/api/v1` (`client`):
//! on the local admin socket, or on a remote server with `--remote URL`
//! (`CLAWSCALE_CLI_ADDRESS`, config `cli.address`) and `--api-key KEY`
//! (`CLAWSCALE_CLI_API_KEY`, `cli.api_key`); `backup`, `restore` and
//! `configtest` work on the configured database and files (`backup`), and
//! `import headscale` fills an empty one from Headscale (`import`);
//! `healthcheck` asks `/healthz`;
//! `version`.
//!
//! Global options as in Headscale: `-c/--config FILE` (env
//! `CLAWSCALE_CONFIG`), `-o/--output json|json-line|yaml` (default: a
//! human-readable table or message) and `--force` (skip confirmations).
//! Management commands read the config only for `unix_socket` and `cli.*`.
//!
//! May depend on: `api` (the REST types it speaks), `config`, `app`
//! (serve).
//! Errors are printed as `Error: <message>` on stderr with exit status 1.

mod apikeys;
mod audit;
mod auth;
mod backup;
pub mod client;
mod healthcheck;
mod import;
mod nodes;
mod oauth_clients;
mod output;
pub mod policy;
mod preauthkeys;
mod serve;
pub mod topology;
mod users;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Overrides};
use client::{Client, RemoteUrl, Target};
pub use output::Format;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "clawscale",
    version,
    about = "Self-hosted, Headscale-compatible Tailscale control server"
)]
pub struct Cli {
    /// Configuration file (Headscale key names); built-in defaults if unset.
    #[arg(
        short,
        long,
        global = true,
        env = "CLAWSCALE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Output format; a human-readable table or message if unset.
    #[arg(short, long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Do not ask for confirmation.
    #[arg(long, global = true)]
    pub force: bool,
    /// Data directory; overrides the config (the admin socket lives here
    /// unless `unix_socket` says otherwise).
    #[arg(long, global = true, env = "CLAWSCALE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Manage the server at this URL (`https://ctl.example`) over its REST
    /// API instead of the local admin socket; needs an API key.
    #[arg(long, global = true, env = "CLAWSCALE_CLI_ADDRESS", value_name = "URL")]
    pub remote: Option<String>,
    /// API key for `--remote` (scope `admin`, or `admin:read` to read).
    #[arg(
        long,
        global = true,
        env = "CLAWSCALE_CLI_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control server.
    Serve(serve::ServeArgs),
    /// Manage users.
    #[command(subcommand, visible_alias = "user")]
    Users(users::UsersCommand),
    /// Manage pre-auth keys.
    #[command(subcommand, visible_aliases = ["preauthkey", "authkey", "pre"])]
    Preauthkeys(preauthkeys::KeysCommand),
    /// Manage nodes.
    #[command(subcommand, visible_alias = "node")]
    Nodes(nodes::NodesCommand),
    /// Decide interactive logins (`tailscale up` without a key).
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Manage API keys (for the whois/authorize HTTP API).
    #[command(subcommand, visible_aliases = ["apikey", "api"])]
    Apikeys(apikeys::ApiKeysCommand),
    /// Manage OAuth clients of API v2 (Tailscale's API).
    #[command(subcommand, name = "oauth-clients", visible_aliases = ["oauth-client", "oauth"])]
    OauthClients(oauth_clients::OAuthClientsCommand),
    /// Check, explain and compile policies; get/set a server's policy.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Copy a running server's SQLite database and key files to a new file
    /// (with PostgreSQL: the key files).
    Backup(backup::BackupArgs),
    /// Restore a backup (database and key files) into a data directory
    /// without them, or check a restored PostgreSQL database's schema.
    Restore(backup::RestoreArgs),
    /// Import another control server's tailnet (Headscale) into an empty
    /// database.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Check the configuration file.
    Configtest,
    /// Ask the server's `/healthz`; exit status 0 only when healthy.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error("{0} (is `clawscale serve` running with the same config?)")]
    Connect(String),
    /// The admin socket exists but this user may not open it.
    #[error("{0}")]
    Denied(String),
    /// The server refused: its status and message.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode output: {0}")]
    Encode(String),
    #[error("{0}")]
    Serve(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a management command works with.
pub(crate) struct Ctx<'a> {
    pub client: Client,
    pub out: &'a mut dyn Write,
    pub format: Option<Format>,
    pub force: bool,
}

impl Ctx<'_> {
    /// Prints `value` in the chosen machine format, or `human()` if none.
    pub fn emit<T: serde::Serialize>(
        &mut self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        output::emit(self.out, self.format, value, human)
    }

    /// Prints a one-line result (`{"result": msg}` in machine formats).
    pub fn done(&mut self, msg: &str) -> Result<()> {
        let value = serde_json::json!({ "result": msg });
        output::emit(self.out, self.format, &value, || msg.to_string())
    }

    /// Asks on the terminal unless `--force` was given.
    pub fn confirm(&mut self, prompt: &str) -> Result<bool> {
        if self.force {
            return Ok(true);
        }
        eprint!("{prompt} [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }
}

/// Entry point for `src/main.rs`: parses arguments, runs, reports errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Command::Policy(cmd) = &cli.command
        && cmd.is_offline()
    {
        let Command::Policy(cmd) = cli.command else {
            unreachable!("matched above")
        };
        return match policy::run_offline(&mut stdout, cmd) {
            Ok(code) => ExitCode::from(code.unwrap_or(0)),
            Err(e) => {
                let _ = stdout.flush();
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command, writing results to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let Cli {
        config: config_path,
        output: format,
        force,
        data_dir,
        remote,
        api_key,
        command,
    } = cli;
    if let Command::Serve(args) = command {
        return serve::run(config_path.as_deref(), data_dir, args).await;
    }
    serve::init_tracing("warn", None);
    if let Command::Version = command {
        let version = env!("CARGO_PKG_VERSION");
        let value = serde_json::json!({ "version": version });
        return output::emit(out, format, &value, || format!("clawscale {version}"));
    }
    let database_url = match &command {
        Command::Backup(a) => a.database_url.clone(),
        Command::Restore(a) => a.database_url.clone(),
        Command::Import(a) => a.database_url(),
        _ => None,
    };
    let overrides = Overrides {
        data_dir,
        database_url,
        ..Overrides::default()
    };
    let config = config::load(config_path.as_deref(), &overrides)?;
    match &command {
        Command::Backup(args) => return backup::backup(&config, args, out, format).await,
        Command::Restore(args) => return backup::restore(&config, args, out, format).await,
        Command::Configtest => return backup::configtest(&config, out, format),
        Command::Import(cmd) => return import::run(&config, cmd, out, format).await,
        Command::Healthcheck(args) => return healthcheck::run(&config, args, out, format).await,
        _ => {}
    }
    let client = Client::new(target(&config, remote, api_key)?, config.cli.timeout);
    let mut ctx = Ctx {
        client,
        out,
        format,
        force,
    };
    match command {
        Command::Users(cmd) => users::run(&mut ctx, cmd).await,
        Command::Preauthkeys(cmd) => preauthkeys::run(&mut ctx, cmd).await,
        Command::Nodes(cmd) => nodes::run(&mut ctx, cmd).await,
        Command::Auth(cmd) => auth::run(&mut ctx, cmd).await,
        Command::Apikeys(cmd) => apikeys::run(&mut ctx, cmd).await,
        Command::OauthClients(cmd) => oauth_clients::run(&mut ctx, cmd).await,
        Command::Policy(cmd) => policy::run(&mut ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&mut ctx, cmd).await,
        Command::Serve(_)
        | Command::Version
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Configtest
        | Command::Import(_)
        | Command::Healthcheck(_) => Ok(()),
    }
}

/// The server to manage: `--remote` (or `cli.address`) with its API key,
/// else the local admin socket.
fn target(
    config: &config::Config,
    remote: Option<String>,
    api_key: Option<String>,
) -> Result<Target> {
    let Some(address) = remote.or_else(|| config.cli.address.clone()) else {
        return Ok(Target::Socket(config.unix_socket.clone()));
    };
    let api_key = api_key
        .or_else(|| config.cli.api_key.clone())
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            Error::Usage(
                "a remote server needs an API key: --api-key, CLAWSCALE_CLI_API_KEY or \
                 cli.api_key"
                    .into(),
            )
        })?;
    Ok(Target::Remote {
        url: RemoteUrl::parse(address.trim())?,
        api_key: api_key.trim().to_string(),
    })
}
