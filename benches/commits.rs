//! Write-commit cost on SQLite, `synchronous = FULL` (what the server uses)
//! against `NORMAL` (harness = false; `cargo bench --bench commits -- [N]`).
//!
//! Both runs go through the server's own write path (`Db::create_user`:
//! one `BEGIN IMMEDIATE … COMMIT` transaction per call, WAL mode) on a
//! database file in a temp directory (`TMPDIR`, so put that on the disk the
//! data directory will live on). The FULL run opens the database with
//! `Db::connect`; the NORMAL run reopens the same file with a pool whose
//! only difference is `synchronous = NORMAL`. N writes each (default 2000),
//! one at a time, as the single state writer issues them.
//!
//! Reported per mode: writes/s and the per-write latency p50/p99/max.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use clawscale::db::{Db, Target};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db.sqlite");
        let full = Db::connect(&Target::Sqlite {
            path: path.clone(),
            write_ahead_log: true,
        })
        .await?;
        report("FULL", &run(&full, "full", n).await?);
        full.close().await;
        let normal = normal_pool(&path).await?;
        report("NORMAL", &run(&normal, "normal", n).await?);
        normal.close().await;
        println!("database: {}", path.display());
        Ok(())
    })
}

/// The same file and options as `Db::connect`, but `synchronous = NORMAL`.
async fn normal_pool(path: &Path) -> anyhow::Result<Db> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?;
    Ok(Db::Sqlite(pool))
}

async fn run(db: &Db, tag: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        db.create_user(&format!("{tag}{i}"), "", "", Utc::now())
            .await?;
        took.push(started.elapsed());
    }
    Ok(took)
}

fn report(mode: &str, took: &[Duration]) {
    let total: Duration = took.iter().sum();
    let mut sorted = took.to_vec();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    println!(
        "{mode:>6}: {} writes, {:.0} writes/s, p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        took.len() as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        sorted[sorted.len() - 1],
    );
}
