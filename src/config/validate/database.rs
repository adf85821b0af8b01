//! `database` section → [`Database`], including the `--database-url`
//! override and the Postgres URL built from Headscale's separate fields.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::super::raw::{RawDatabase, RawPostgres};
use super::super::{Database, Error};
use super::invalid;

/// A CLI/env URL replaces the file's choice of engine and location; pool
/// settings still come from the file.
pub(super) fn build(
    raw: &RawDatabase,
    url_override: Option<&str>,
    data_dir: &Path,
) -> Result<Database, Error> {
    if let Some(url) = url_override {
        return from_url(url, raw);
    }
    match raw.kind.trim() {
        // Headscale accepts both spellings and stores "sqlite3".
        "sqlite" | "sqlite3" => Ok(Database::Sqlite {
            path: super::non_empty_path(raw.sqlite.path.as_deref())
                .unwrap_or_else(|| data_dir.join("db.sqlite")),
            write_ahead_log: raw.sqlite.write_ahead_log,
        }),
        "postgres" => Ok(Database::Postgres {
            url: postgres_url(&raw.postgres)?,
            max_open_conns: max_open_conns(&raw.postgres)?,
        }),
        other => Err(invalid(
            "database.type",
            format!("{other:?} is not one of \"sqlite\", \"sqlite3\", \"postgres\""),
        )),
    }
}

fn from_url(url: &str, raw: &RawDatabase) -> Result<Database, Error> {
    const KEY: &str = "--database-url";
    let url = url.trim();
    if url.is_empty() {
        return Err(invalid(KEY, "is empty"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres {
            url: url.to_string(),
            max_open_conns: max_open_conns(&raw.postgres)?,
        });
    }
    let path = match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        // sqlx-style options (`?mode=rwc`) are not part of the file name.
        Some(rest) => rest.split_once('?').map_or(rest, |(path, _)| path),
        None if url.contains("://") => {
            return Err(invalid(
                KEY,
                format!(
                    "{} is neither postgres:// nor sqlite://",
                    redact_url_password(url)
                ),
            ));
        }
        None => url,
    };
    if path.is_empty() {
        return Err(invalid(KEY, format!("{url:?} has no SQLite file path")));
    }
    Ok(Database::Sqlite {
        path: PathBuf::from(path),
        write_ahead_log: raw.sqlite.write_ahead_log,
    })
}

fn max_open_conns(raw: &RawPostgres) -> Result<u32, Error> {
    if raw.max_open_conns == 0 {
        return Err(invalid(
            "database.postgres.max_open_conns",
            "must be at least 1",
        ));
    }
    Ok(raw.max_open_conns)
}

/// `postgres://user:pass@host:port/name?sslmode=…`. A `host` starting with
/// `/` is a Unix socket directory and goes into the `host` query parameter
/// (libpq and sqlx both read it there).
fn postgres_url(raw: &RawPostgres) -> Result<String, Error> {
    let host = required(raw.host.as_deref(), "database.postgres.host")?;
    let name = required(raw.name.as_deref(), "database.postgres.name")?;

    let mut url = String::from("postgres://");
    if let Some(user) = raw.user.as_deref().filter(|u| !u.is_empty()) {
        url.push_str(&encode(user));
        if let Some(pass) = raw.pass.as_deref().filter(|p| !p.is_empty()) {
            url.push(':');
            url.push_str(&encode(pass));
        }
        url.push('@');
    }
    let socket_dir = host.starts_with('/');
    if socket_dir {
        url.push_str("localhost");
    } else if host.contains(':') {
        let _ = write!(
            url,
            "[{}]",
            host.trim_start_matches('[').trim_end_matches(']')
        );
    } else {
        url.push_str(host);
    }
    if let Some(port) = raw.port.filter(|p| *p != 0) {
        let _ = write!(url, ":{port}");
    }
    url.push('/');
    url.push_str(&encode(name));

    let mut params = Vec::new();
    if socket_dir {
        params.push(format!("host={}", encode(host)));
    }
    params.push(format!("sslmode={}", ssl_mode(raw)?));
    url.push('?');
    url.push_str(&params.join("&"));
    Ok(url)
}

fn required<'a>(value: Option<&'a str>, key: &str) -> Result<&'a str, Error> {
    match value.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(invalid(
            key,
            "is required when database.type is \"postgres\"",
        )),
    }
}

/// Headscale's `ssl`: `false` → `disable`, `true` → `require` (as its
/// example documents), anything else is passed on as an `sslmode`.
fn ssl_mode(raw: &RawPostgres) -> Result<&'static str, Error> {
    let Some(ssl) = &raw.ssl else {
        return Ok("disable");
    };
    let mode = match ssl.text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "disable" => "disable",
        "true" | "1" | "require" => "require",
        "allow" => "allow",
        "prefer" => "prefer",
        "verify-ca" => "verify-ca",
        "verify-full" => "verify-full",
        other => {
            return Err(invalid(
                "database.postgres.ssl",
                format!(
                    "{other:?} is not true, false or an sslmode (disable, allow, prefer, require, verify-ca, verify-full)"
                ),
            ));
        }
    };
    Ok(mode)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `scheme://user:***@host/…` for logs and `Debug`.
pub(in crate::config) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(host: &str) -> RawPostgres {
        RawPostgres {
            host: Some(host.to_string()),
            port: Some(5432),
            name: Some("headscale".to_string()),
            user: Some("foo".to_string()),
            pass: Some("p@ss/word".to_string()),
            ..RawPostgres::default()
        }
    }

    #[test]
    fn postgres_url_from_fields() {
        let url = postgres_url(&postgres("db.internal")).unwrap();
        assert_eq!(
            url,
            "postgres://foo:p%40ss%2Fword@db.internal:5432/headscale?sslmode=disable"
        );
    }

    #[test]
    fn postgres_unix_socket_host_goes_to_query() {
        let mut raw = postgres("/var/run/postgresql");
        raw.port = None;
        raw.ssl = Some(crate::config::raw::Scalar::text("true"));
        let url = postgres_url(&raw).unwrap();
        assert_eq!(
            url,
            "postgres://foo:p%40ss%2Fword@localhost/headscale?host=%2Fvar%2Frun%2Fpostgresql&sslmode=require"
        );
    }

    #[test]
    fn postgres_ssl_passes_sslmode_names() {
        let mut raw = postgres("::1");
        raw.ssl = Some(crate::config::raw::Scalar::text("verify-full"));
        assert_eq!(
            postgres_url(&raw).unwrap(),
            "postgres://foo:p%40ss%2Fword@[::1]:5432/headscale?sslmode=verify-full"
        );
        raw.ssl = Some(crate::config::raw::Scalar::text("sometimes"));
        let err = postgres_url(&raw).unwrap_err();
        assert!(err.to_string().contains("database.postgres.ssl"), "{err}");
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url_password("postgres://u:secret@h:5/db?x=1"),
            "postgres://u:***@h:5/db?x=1"
        );
        assert_eq!(redact_url_password("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url_password("/just/a/path"), "/just/a/path");
    }
}
