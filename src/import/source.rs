//! The Headscale database being imported, opened read-only: a SQLite file
//! or a PostgreSQL URL. Every value is read as text (`CAST(… AS TEXT)`), so
//! one reader serves both engines and every release, whatever column types
//! gorm chose there (SQLite `numeric` booleans, PostgreSQL `boolean`,
//! `datetime` text against `timestamptz`); `rows` parses them.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, Row as _, SqlitePool};

use super::Error;

/// An open Headscale database.
pub(super) enum Source {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One row: the selected columns' text, `None` for NULL or a column this
/// release does not have.
#[derive(Debug, Clone)]
pub(super) struct Row {
    values: Vec<(String, Option<String>)>,
}

impl Row {
    /// The column's text; `None` for NULL, absent, or empty.
    pub fn text(&self, column: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, v)| v.as_deref())
            .filter(|v| !v.is_empty())
    }
}

impl Source {
    /// Opens `spec`: `postgres://…`/`postgresql://…`, else a SQLite file
    /// (optionally `sqlite://PATH`), which must exist and is never written.
    pub async fn open(spec: &str) -> Result<Source, Error> {
        let spec = spec.trim();
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(spec)
                .map_err(|e| Error::Source(format!("bad PostgreSQL URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| Error::Source(format!("cannot open the Headscale database: {e}")))?;
            return Ok(Source::Postgres(pool));
        }
        let path = Path::new(spec.strip_prefix("sqlite://").unwrap_or(spec));
        if !path.is_file() {
            return Err(Error::Source(format!(
                "no Headscale SQLite database at {}",
                path.display()
            )));
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| Error::Source(format!("cannot open {} as SQLite: {e}", path.display())))?;
        Ok(Source::Sqlite(pool))
    }

    /// The tables of the database (PostgreSQL: of the current schema).
    pub async fn tables(&self) -> Result<BTreeSet<String>, Error> {
        self.names(
            "SELECT name FROM sqlite_master WHERE type = 'table'",
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            None,
        )
        .await
    }

    /// The columns of `table`.
    pub async fn columns(&self, table: &str) -> Result<BTreeSet<String>, Error> {
        self.names(
            "SELECT name FROM pragma_table_info($1)",
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            Some(table),
        )
        .await
    }

    async fn names(
        &self,
        sqlite: &str,
        postgres: &str,
        arg: Option<&str>,
    ) -> Result<BTreeSet<String>, Error> {
        let names: Vec<String> = match self {
            Source::Sqlite(p) => {
                let q = sqlx::query_scalar(sqlite);
                let q = if let Some(a) = arg { q.bind(a) } else { q };
                q.fetch_all(p).await
            }
            Source::Postgres(p) => {
                let q = sqlx::query_scalar(postgres);
                let q = if let Some(a) = arg { q.bind(a) } else { q };
                q.fetch_all(p).await
            }
        }
        .map_err(read_error)?;
        Ok(names.into_iter().collect())
    }

    /// `columns` of every row of `table` (those the table lacks read as
    /// NULL), ordered by `id` when the table has one.
    pub async fn rows(&self, table: &str, columns: &[&str]) -> Result<Vec<Row>, Error> {
        let present = self.columns(table).await?;
        let wanted: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| present.contains(*c))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let select: Vec<String> = wanted
            .iter()
            .map(|c| format!("CAST(\"{c}\" AS TEXT)"))
            .collect();
        let order = if present.contains("id") {
            " ORDER BY \"id\""
        } else {
            ""
        };
        let sql = format!("SELECT {} FROM \"{table}\"{order}", select.join(", "));
        let raw: Vec<Vec<Option<String>>> = match self {
            Source::Sqlite(p) => {
                let rows = sqlx::query(&sql).fetch_all(p).await.map_err(read_error)?;
                rows.iter()
                    .map(|r| (0..wanted.len()).map(|i| r.try_get(i)).collect())
                    .collect::<Result<_, _>>()
                    .map_err(read_error)?
            }
            Source::Postgres(p) => {
                let rows = sqlx::query(&sql).fetch_all(p).await.map_err(read_error)?;
                rows.iter()
                    .map(|r| (0..wanted.len()).map(|i| r.try_get(i)).collect())
                    .collect::<Result<_, _>>()
                    .map_err(read_error)?
            }
        };
        Ok(raw
            .into_iter()
            .map(|vals| Row {
                values: wanted.iter().map(|c| c.to_string()).zip(vals).collect(),
            })
            .collect())
    }

    pub async fn close(&self) {
        match self {
            Source::Sqlite(p) => p.close().await,
            Source::Postgres(p) => p.close().await,
        }
    }
}

fn read_error(e: sqlx::Error) -> Error {
    Error::Source(format!("reading the Headscale database: {e}"))
}
