//! Test support for any module that needs a real database: throwaway
//! databases on both engines, and fault injection that makes commits fail
//! the way a full disk or a lost server does, without root or a small
//! filesystem.
//!
//! Faults are deferred foreign-key violations: a trigger on the target table
//! inserts a row that references nothing, under a constraint checked only at
//! COMMIT (both engines). Every statement of a write then succeeds, rows are
//! returned, and only the commit fails: exactly the case where a write can be
//! acknowledged before it is durable.

use std::path::Path;

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, Executor, PgConnection};

use super::{Db, SQLITE_MIGRATIONS};

/// The database behind `CLAWSCALE_TEST_POSTGRES_URL` (an admin URL that may
/// create databases; `.ci/run` exports one).
pub(crate) const POSTGRES_URL_ENV: &str = "CLAWSCALE_TEST_POSTGRES_URL";

/// A migrated SQLite database at `path` whose pool holds one connection, so
/// a test knows which connection a statement runs on.
pub(crate) async fn sqlite_one_connection(path: &Path) -> Db {
    let pool = super::sqlite::open(path, true, 1)
        .await
        .expect("open sqlite");
    SQLITE_MIGRATIONS.run(&pool).await.expect("migrate");
    Db::Sqlite(pool)
}

/// A second, independent SQLite pool on the same file (another process's
/// view), for checking locks and what is really committed.
pub(crate) async fn sqlite_observer(path: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::ZERO);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("open observer")
}

/// A fresh PostgreSQL database for one test, dropped with the value. `None`
/// (test skipped) only when no server is configured outside CI.
pub(crate) struct PgTemp {
    admin: String,
    name: String,
    pub url: String,
}

impl PgTemp {
    pub(crate) async fn create(tag: &str) -> Option<PgTemp> {
        let Some(admin) = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "{POSTGRES_URL_ENV} must be set under CI");
            eprintln!("skipping: {POSTGRES_URL_ENV} is not set");
            return None;
        };
        let name = format!(
            "clawscale_unit_{tag}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut conn = PgConnection::connect(&admin).await.expect("connect admin");
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("create database");
        conn.close().await.expect("close admin connection");
        let url = match admin.split_once('?') {
            Some((base, query)) => format!("{}/{name}?{query}", strip_db(base)),
            None => format!("{}/{name}", strip_db(&admin)),
        };
        Some(PgTemp { admin, name, url })
    }

    /// A pool whose connections carry `application_name` `app` (to find
    /// them in `pg_stat_activity`).
    pub(crate) async fn db_named(&self, app: &str) -> Db {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        Db::connect(&super::Target::Postgres {
            url: format!("{}{sep}application_name={app}", self.url),
            max_connections: 2,
        })
        .await
        .expect("connect temp database")
    }

    /// Refuses (`false`) or allows new connections to the database.
    pub(crate) async fn allow_connections(&self, allow: bool) {
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .expect("connect admin");
        let sql = format!(
            r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS {allow}"#,
            self.name
        );
        conn.execute(sql.as_str()).await.expect("alter database");
        conn.close().await.expect("close admin connection");
    }

    /// Ends the sessions of `app` whose last statement starts with
    /// `query_prefix` (all of them for ""); returns how many.
    pub(crate) async fn terminate(&self, app: &str, query_prefix: &str) -> i64 {
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .expect("connect admin");
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = $2 AND query LIKE $3 || '%'",
        )
        .bind(&self.name)
        .bind(app)
        .bind(query_prefix)
        .fetch_one(&mut conn)
        .await
        .expect("terminate sessions");
        conn.close().await.expect("close admin connection");
        n
    }

    pub(crate) async fn db(&self) -> Db {
        Db::connect(&super::Target::Postgres {
            url: self.url.clone(),
            max_connections: 1,
        })
        .await
        .expect("connect temp database")
    }
}

/// `postgres://user:pass@host/db` without `/db`.
fn strip_db(base: &str) -> &str {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    }
}

impl Drop for PgTemp {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime; a separate thread may block.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Makes every later commit fail that inserted, updated or deleted a row of
/// `table`, until [`heal`].
pub(crate) async fn fail_commits_touching(db: &Db, table: &str) {
    let setup = "CREATE TABLE IF NOT EXISTS fault_parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE IF NOT EXISTS fault_child (parent INTEGER REFERENCES fault_parent (id) \
         DEFERRABLE INITIALLY DEFERRED);";
    let sql = match db {
        Db::Sqlite(_) => {
            let mut sql = setup.to_string();
            for event in ["INSERT", "UPDATE", "DELETE"] {
                sql.push_str(&format!(
                    " CREATE TRIGGER fault_{table}_{event} AFTER {event} ON {table} \
                     BEGIN INSERT INTO fault_child VALUES (0); END;"
                ));
            }
            sql
        }
        Db::Postgres(_) => format!(
            "{setup} CREATE OR REPLACE FUNCTION fault_row() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN INSERT INTO fault_child VALUES (0); RETURN NULL; END $$; \
             CREATE TRIGGER fault_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION fault_row();"
        ),
    };
    raw(db, &sql).await;
}

/// Removes the faults on `table`.
pub(crate) async fn heal(db: &Db, table: &str) {
    let sql = match db {
        Db::Sqlite(_) => format!(
            "DROP TRIGGER fault_{table}_INSERT; DROP TRIGGER fault_{table}_UPDATE; \
             DROP TRIGGER fault_{table}_DELETE;"
        ),
        Db::Postgres(_) => format!("DROP TRIGGER fault_{table} ON {table};"),
    };
    raw(db, &sql).await;
}

async fn raw(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("fault injection failed ({e}): {sql}"));
}
