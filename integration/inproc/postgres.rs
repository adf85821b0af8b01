//! The enrollment scenarios against PostgreSQL.
//!
//! Owns reading `CLAWSCALE_TEST_POSTGRES_URL` (an admin URL; `.ci/run`
//! exports one) and a fresh, uniquely named database per test, dropped at
//! the end. Without the variable the tests are skipped, except under CI
//! (`CI` set), where a missing database must fail the run rather than
//! silently test nothing.

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};
use url::Url;

use crate::server::Store;
use crate::{enroll, policy};

const URL_ENV: &str = "CLAWSCALE_TEST_POSTGRES_URL";

/// The admin URL, `None` to skip; panics under CI when it is missing.
fn admin_url() -> Option<String> {
    let url = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "{URL_ENV} must be set under CI: the PostgreSQL tests may not be skipped"
        );
        eprintln!("skipping: {URL_ENV} is not set");
    }
    url
}

/// A database created for one test.
struct TempDb {
    admin: String,
    name: String,
    url: String,
}

impl TempDb {
    async fn create(admin: &str, tag: &str) -> anyhow::Result<TempDb> {
        let name = format!(
            "clawscale_inproc_{tag}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut conn = PgConnection::connect(admin)
            .await
            .with_context(|| format!("connecting with {URL_ENV}"))?;
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await?;
        // Same server and credentials; only the database name changes, so
        // query options such as `?host=/var/run/postgresql` carry over.
        let mut url: Url = admin
            .parse()
            .with_context(|| format!("{URL_ENV} is not a URL"))?;
        url.set_path(&format!("/{name}"));
        Ok(TempDb {
            admin: admin.to_string(),
            name,
            url: url.to_string(),
        })
    }

    async fn drop_db(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        conn.execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name).as_str())
            .await?;
        conn.close().await?;
        Ok(())
    }
}

/// Runs `scenario` on a fresh database and drops it afterwards, also when
/// the scenario failed (the failure is what gets reported).
async fn on_postgres<F, Fut>(tag: &str, scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some(admin) = admin_url() else {
        return Ok(());
    };
    let db = TempDb::create(&admin, tag).await?;
    let result = scenario(Store::Postgres(db.url.clone())).await;
    let dropped = db.drop_db().await;
    result?;
    dropped.context("dropping the test database")
}

#[tokio::test]
async fn nodes_see_each_other_postgres() -> anyhow::Result<()> {
    on_postgres("enroll", enroll::nodes_see_each_other).await
}

#[tokio::test]
async fn restart_keeps_nodes_postgres() -> anyhow::Result<()> {
    on_postgres("restart", enroll::restart_keeps_nodes).await
}

#[tokio::test]
async fn database_policy_postgres() -> anyhow::Result<()> {
    on_postgres(
        "policy",
        policy::database_policy_reaches_streams_and_survives_restart,
    )
    .await
}
