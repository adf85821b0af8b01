//! Upgrades: a database left by any schema clawscale has shipped migrates to
//! the current one with every row intact, on both engines. Each shipped
//! level has a dump per engine in `migrations/upgrade-dumps/` (schema as
//! sqlx left it, `_sqlx_migrations` with the real checksums, and the rows
//! of [`fixture`]); the dumps are frozen, so a later edit of an old
//! migration, or a migration that loses old data, fails here.
//!
//! Regenerate the dumps (needs `sqlite3`, `pg_dump` and
//! `CLAWSCALE_TEST_POSTGRES_URL`) after adding a migration:
//! `CLAWSCALE_WRITE_UPGRADE_DUMPS=1 cargo test --lib db::upgrade_tests::write_upgrade_dumps -- --ignored`
//! It migrates a fresh database with the migration files up to each level,
//! writes the fixture rows, and dumps it with the engine's own tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use sqlx::{Connection, PgConnection, SqlitePool};

use super::testing::PgTemp;
use super::upgrade_fixture::{Fixture, fixture, seed};
use super::{Db, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Target};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every migration level of `engine`, oldest first.
fn levels(engine: &str) -> Vec<i64> {
    let m = if engine == "sqlite" {
        &SQLITE_MIGRATIONS
    } else {
        &POSTGRES_MIGRATIONS
    };
    m.iter().map(|m| m.version).collect()
}

/// The levels that need a dump: all but the current one.
fn shipped(engine: &str) -> Vec<i64> {
    let mut l = levels(engine);
    l.pop();
    l
}

fn dump_path(engine: &str, level: i64) -> PathBuf {
    root()
        .join("migrations/upgrade-dumps")
        .join(engine)
        .join(format!("{level:04}.sql"))
}

fn read_dump(engine: &str, level: i64) -> String {
    let path = dump_path(engine, level);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn dumps_cover_every_level_but_the_latest() {
    assert_eq!(levels("sqlite"), levels("postgres"), "engines out of step");
    for engine in ENGINES {
        let mut found: Vec<String> = std::fs::read_dir(dump_path(engine, 0).parent().unwrap())
            .expect("dump dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        let want: Vec<String> = shipped(engine)
            .iter()
            .map(|l| format!("{l:04}.sql"))
            .collect();
        assert_eq!(
            found, want,
            "{engine}: one dump per shipped level (a new migration needs the dump of the \
             level before it; see the module doc to regenerate)"
        );
    }
}

/// The highest migration recorded in a loaded, not yet migrated database.
async fn recorded_level(db: &Db) -> i64 {
    super::on_pool!(db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await
            .expect("read _sqlx_migrations")
    })
}

/// What the current model lists, in the fixture's shape.
async fn listed(db: &Db) -> Fixture {
    Fixture {
        users: db.list_users().await.expect("users"),
        keys: db.list_preauth_keys(None).await.expect("keys"),
        nodes: db.list_nodes().await.expect("nodes"),
        api_keys: db.list_api_keys().await.expect("api keys"),
        policy: db.current_policy().await.expect("policy"),
        oauth_clients: db.list_oauth_clients().await.expect("oauth clients"),
        dns: db.dns_overrides().await.expect("dns"),
    }
}

/// Checks a database loaded from the dump of `level` and then opened the
/// normal way (which migrates it).
async fn check_upgraded(db: &Db, engine: &str, level: i64) {
    let (got, want) = (listed(db).await, fixture(level));
    let at = format!("{engine}: table rows of level {level:04} after upgrade");
    // Table by table, so a failure names the table that lost data.
    assert_eq!(got.users, want.users, "{at}: users");
    assert_eq!(got.keys, want.keys, "{at}: pre_auth_keys");
    assert_eq!(got.nodes, want.nodes, "{at}: nodes");
    assert_eq!(got.api_keys, want.api_keys, "{at}: api_keys");
    assert_eq!(got.policy, want.policy, "{at}: policies");
    assert_eq!(got.oauth_clients, want.oauth_clients, "{at}: oauth_clients");
    assert_eq!(got.dns, want.dns, "{at}: dns_settings");
    assert_eq!(recorded_level(db).await, *levels(engine).last().unwrap());
    // Sequences came along: the deleted user's id 3 and the others stay taken.
    let u = db
        .create_user("erin", "", "", Utc::now())
        .await
        .expect("create user after upgrade");
    assert_eq!(u.id.0, 5, "{engine} {level:04}: user id sequence");
    db.probe_write(Utc::now()).await.expect("write probe");
}

#[tokio::test]
async fn sqlite_dumps_upgrade_with_rows_intact() {
    for level in shipped("sqlite") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clawscale.db");
        let pool = super::sqlite::open(&path, true, 1).await.expect("open");
        sqlx::raw_sql(&read_dump("sqlite", level))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("load sqlite dump {level:04}: {e}"));
        let loaded = Db::Sqlite(pool);
        assert_eq!(recorded_level(&loaded).await, level, "dump {level:04}");
        loaded.close().await;
        let db = Db::connect(&Target::Sqlite {
            path: path.clone(),
            write_ahead_log: true,
        })
        .await
        .unwrap_or_else(|e| panic!("migrate sqlite dump {level:04}: {e}"));
        check_upgraded(&db, "sqlite", level).await;
        db.close().await;
    }
}

#[tokio::test]
async fn postgres_dumps_upgrade_with_rows_intact() {
    for level in shipped("postgres") {
        let Some(tmp) = PgTemp::create(&format!("upgrade{level}")).await else {
            return;
        };
        let mut conn = PgConnection::connect(&tmp.url).await.expect("connect");
        sqlx::raw_sql(&read_dump("postgres", level))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("load postgres dump {level:04}: {e}"));
        let level_loaded: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM public._sqlx_migrations")
                .fetch_one(&mut conn)
                .await
                .expect("recorded level");
        assert_eq!(level_loaded, level, "dump {level:04}");
        conn.close().await.expect("close");
        let db = tmp.db().await;
        check_upgraded(&db, "postgres", level).await;
        db.close().await;
    }
}

/// Runs the migration files of `engine` up to `level` (not the embedded
/// migrator, which would run them all) and pins what varies between runs.
async fn migrate_to(db: &Db, engine: &str, level: i64, scratch: &Path) {
    let dir = scratch.join("migrations");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for entry in std::fs::read_dir(root().join("migrations").join(engine)).expect("read") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let version: i64 = name[..4].parse().expect("numbered migration");
        if version <= level {
            std::fs::copy(entry.path(), dir.join(&name)).expect("copy");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .expect("migrator");
    let installed_on = if engine == "sqlite" {
        "'2025-05-01 00:00:00'"
    } else {
        "'2025-05-01 00:00:00+00'"
    };
    let pin =
        format!("UPDATE _sqlx_migrations SET installed_on = {installed_on}, execution_time = 0");
    super::on_pool!(db, |pool| {
        migrator.run(pool).await.expect("migrate");
        sqlx::query(&pin).execute(pool).await.expect("pin");
    });
}

fn tool_output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 dump")
}

fn header(engine: &str, level: i64, tool: &str) -> String {
    format!(
        "-- clawscale {engine} database at migration {level:04}, with the rows of \
         src/db/upgrade_fixture.rs.\n-- Written by {tool} through \
         db::upgrade_tests::write_upgrade_dumps; do not edit.\n"
    )
}

#[tokio::test]
#[ignore = "writes migrations/upgrade-dumps; run by hand after adding a migration"]
async fn write_upgrade_dumps() {
    assert!(
        std::env::var_os("CLAWSCALE_WRITE_UPGRADE_DUMPS").is_some(),
        "set CLAWSCALE_WRITE_UPGRADE_DUMPS=1 to overwrite the dumps"
    );
    for engine in ENGINES {
        std::fs::create_dir_all(dump_path(engine, 0).parent().unwrap()).expect("mkdir");
    }
    for level in shipped("sqlite") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clawscale.db");
        let pool: SqlitePool = super::sqlite::open(&path, false, 1).await.expect("open");
        let db = Db::Sqlite(pool);
        migrate_to(&db, "sqlite", level, dir.path()).await;
        seed(&db, level).await;
        db.close().await;
        let dump = tool_output(Command::new("sqlite3").arg(&path).arg(".dump"));
        let text = header("sqlite", level, "sqlite3 .dump") + &dump;
        std::fs::write(dump_path("sqlite", level), text).expect("write dump");
    }
    for level in shipped("postgres") {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = PgTemp::create(&format!("dump{level}"))
            .await
            .expect("CLAWSCALE_TEST_POSTGRES_URL is needed");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&tmp.url)
            .await
            .expect("connect");
        let db = Db::Postgres(pool);
        migrate_to(&db, "postgres", level, dir.path()).await;
        seed(&db, level).await;
        db.close().await;
        let dump = tool_output(
            Command::new("pg_dump")
                .args(["--no-owner", "--no-privileges", "--column-inserts"])
                .arg(format!("--dbname={}", tmp.url)),
        );
        // psql meta-commands (`\restrict`) are not SQL; the dump is loaded
        // with plain SQL.
        let sql: String = dump
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .map(|l| format!("{l}\n"))
            .collect();
        let text = header("postgres", level, "pg_dump --column-inserts") + &sql;
        std::fs::write(dump_path("postgres", level), text).expect("write dump");
    }
}
