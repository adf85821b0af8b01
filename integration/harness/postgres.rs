//! A throwaway PostgreSQL database per test server.
//!
//! Owns: reading `CLAWSCALE_TEST_POSTGRES_URL`, creating a uniquely named
//! database with `psql`, writing its coordinates into the server config
//! (Headscale's `database.postgres.*` keys) and dropping it afterwards.
//! Depends on `psql` and `process`.
//!
//! The server runs in an isolated namespace that cannot reach the host's TCP
//! loopback, so the URL must name a unix-socket directory
//! (`postgres://user:pass@localhost/db?host=/var/run/postgresql`); socket
//! paths are not tied to a network namespace. `.ci/run` exports such a URL.

use std::process::Command;
use std::time::Duration;

use super::process::run;
use super::server::ServerConfig;

pub const URL_ENV: &str = "CLAWSCALE_TEST_POSTGRES_URL";

/// The pieces of a `postgres://` URL the server config needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgParams {
    pub user: String,
    pub pass: String,
    /// Host name, or a unix-socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

impl PgParams {
    pub fn parse(url: &str) -> Result<PgParams, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| format!("not a postgres:// URL: {url}"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hostpath) = main.rsplit_once('@').unwrap_or(("", main));
        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (hostport, dbname) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url}"))?),
            None => (hostport, 5432),
        };
        let mut params = PgParams {
            user: decode(user)?,
            pass: decode(pass)?,
            host: decode(host)?,
            port,
            dbname: decode(dbname)?,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v)?;
            match k {
                "host" => params.host = v,
                "port" => params.port = v.parse().map_err(|_| format!("bad port in {url}"))?,
                "user" => params.user = v,
                "password" => params.pass = v,
                "dbname" => params.dbname = v,
                _ => {}
            }
        }
        Ok(params)
    }
}

/// Percent-decoding for URL components.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The admin URL from the environment, if set.
pub fn admin_url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

/// A database created for one test; dropped (with `FORCE`) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    params: PgParams,
}

impl PgDatabase {
    /// Creates database `clawscale_<tag>`. Panics when the environment has
    /// no usable Postgres URL.
    pub fn create(tag: &str) -> PgDatabase {
        let admin_url = admin_url()
            .unwrap_or_else(|| panic!("{URL_ENV} is not set; cannot run a Postgres-backed server"));
        let mut params = PgParams::parse(&admin_url).unwrap_or_else(|e| panic!("{URL_ENV}: {e}"));
        assert!(
            params.host.starts_with('/'),
            "{URL_ENV} must use a unix socket (e.g. ?host=/var/run/postgresql): the server runs \
             in an isolated network namespace and cannot reach TCP {}:{}",
            params.host,
            params.port
        );
        params.dbname = format!("clawscale_{}", tag.to_ascii_lowercase());
        let db = PgDatabase { admin_url, params };
        db.psql(&format!("CREATE DATABASE \"{}\"", db.params.dbname));
        db
    }

    pub fn params(&self) -> &PgParams {
        &self.params
    }

    /// Points `cfg` at this database.
    pub fn configure(&self, cfg: &mut ServerConfig) {
        let p = &self.params;
        cfg.remove("database.sqlite")
            .set("database.type", "postgres")
            .set("database.postgres.host", &p.host)
            .set("database.postgres.port", p.port)
            .set("database.postgres.name", &p.dbname)
            .set("database.postgres.user", &p.user)
            .set("database.postgres.pass", &p.pass)
            .set("database.postgres.ssl", false);
    }

    fn psql(&self, sql: &str) {
        run(
            Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &self.admin_url,
                    "-c",
                    sql,
                ])
                .env("PGCONNECT_TIMEOUT", "10"),
            Duration::from_secs(60),
        )
        .expect_success(&format!("psql: {sql}"));
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.params.dbname
        );
        let out = run(
            Command::new("psql")
                .args(["-X", "-q", "-d", &self.admin_url, "-c", &sql])
                .env("PGCONNECT_TIMEOUT", "10"),
            Duration::from_secs(60),
        );
        if !out.success() {
            eprintln!("harness: could not drop test database:\n{out}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_unix_socket_url() {
        let p = PgParams::parse(
            "postgres://clawscale:s%40cret@localhost/clawscale?host=%2Fvar%2Frun%2Fpostgresql",
        )
        .expect("valid url");
        assert_eq!(
            p,
            PgParams {
                user: "clawscale".into(),
                pass: "s@cret".into(),
                host: "/var/run/postgresql".into(),
                port: 5432,
                dbname: "clawscale".into(),
            }
        );
        let p = PgParams::parse("postgresql://u@db.example:6543/x?host=/tmp").expect("valid");
        assert_eq!(
            (p.host.as_str(), p.port, p.pass.as_str()),
            ("/tmp", 6543, "")
        );
        assert!(PgParams::parse("mysql://x").is_err());
    }
}
