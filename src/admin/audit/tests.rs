use chrono::{Duration, TimeZone, Utc};

use super::*;

fn entry(i: i64, actor: &str, object: &str) -> Entry {
    Entry {
        time: Utc.timestamp_opt(1_700_000_000 + i, 0).single().unwrap(),
        request_id: Some(format!("r{i}")),
        actor: actor.into(),
        transport: "rest-v1".into(),
        action: "user.create".into(),
        object: Some(object.into()),
        before: None,
        after: Some(serde_json::json!({ "id": i })),
        result: "ok".into(),
        error: None,
        policy_revision: None,
    }
}

fn settings(dir: &Path, max_size: u64, max_files: u32) -> Settings {
    Settings {
        path: dir.join("sub/audit.jsonl"),
        max_size,
        max_files,
    }
}

#[tokio::test]
async fn record_appends_one_line_on_disk_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 20, 2);
    std::fs::create_dir_all(s.path.parent().unwrap()).unwrap();
    std::fs::write(&s.path, "{\"old\":1}\n").unwrap();
    let log = Audit::open(Some(s.clone())).unwrap();
    log.record(entry(1, "uid:0", "user:1")).await;
    // No waiting: the line is there when `record` returns.
    let text = std::fs::read_to_string(&s.path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "{\"old\":1}", "existing content kept");
    let e: Entry = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(e, entry(1, "uid:0", "user:1"));
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert!(
        v["error"].is_null() && v["before"].is_null(),
        "absent is null: {v}"
    );
}

#[tokio::test]
async fn rotates_by_size_and_keeps_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let line_len = serde_json::to_vec(&entry(10, "uid:0", "user:10"))
        .unwrap()
        .len() as u64
        + 1;
    // Three lines per file.
    let s = settings(dir.path(), line_len * 3, 2);
    let log = Audit::open(Some(s.clone())).unwrap();
    for i in 10..22 {
        log.record(entry(i, "uid:0", &format!("user:{i}"))).await;
    }
    let count = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert_eq!(count(&s.path), 3);
    assert_eq!(count(&rotated(&s.path, 1)), 3);
    assert_eq!(count(&rotated(&s.path, 2)), 3);
    assert!(!rotated(&s.path, 3).exists(), "only max_files kept");
    use std::os::unix::fs::PermissionsExt;
    for p in [s.path.clone(), rotated(&s.path, 1)] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
    // Queries read the rotated files too, oldest first.
    let all = log.query(Query::default()).await.unwrap();
    let ids: Vec<i64> = all
        .iter()
        .map(|e| e.after.as_ref().unwrap()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (13..22).collect::<Vec<_>>());
}

#[tokio::test]
async fn queries_filter_by_time_actor_and_object() {
    let dir = tempfile::tempdir().unwrap();
    let log = Audit::open(Some(settings(dir.path(), 1 << 20, 1))).unwrap();
    log.record(entry(0, "uid:0", "user:1")).await;
    log.record(entry(1, "apikey:0123456789ab", "node:3")).await;
    log.record(entry(2, "apikey:0123456789ab", "node:30")).await;
    log.record_nowait(entry(3, "node:3", "node:3"));
    check_filters(&log).await;
}

/// The queries over entries 0–3 as recorded above, wherever they were
/// recorded.
async fn check_filters(log: &Audit) {
    let q = |since: Option<i64>, actor: Option<&str>, object: Option<&str>| Query {
        since: since.map(|s| Utc.timestamp_opt(1_700_000_000 + s, 0).single().unwrap()),
        actor: actor.map(str::to_string),
        object: object.map(str::to_string),
        limit: None,
    };
    let ids = |v: Vec<Entry>| {
        v.iter()
            .map(|e| e.request_id.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(log.query(q(None, None, None)).await.unwrap()),
        ["r0", "r1", "r2", "r3"]
    );
    assert_eq!(
        ids(log.query(q(Some(2), None, None)).await.unwrap()),
        ["r2", "r3"]
    );
    assert_eq!(
        ids(log
            .query(q(None, Some("apikey:0123456789ab"), None))
            .await
            .unwrap()),
        ["r1", "r2"]
    );
    assert_eq!(
        ids(log.query(q(None, None, Some("node:3"))).await.unwrap()),
        ["r1", "r3"]
    );
    assert_eq!(
        ids(log.query(q(None, None, Some("node"))).await.unwrap()),
        ["r1", "r2", "r3"]
    );
    assert!(
        log.query(q(None, Some("uid:1"), None))
            .await
            .unwrap()
            .is_empty()
    );
    let newest = log
        .query(Query {
            limit: Some(2),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(newest), ["r2", "r3"]);
    let future = Utc::now() + Duration::days(1);
    assert!(
        log.query(Query {
            since: Some(future),
            ..Query::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
}

/// Two replicas on one database, each with its own file: each line is in
/// the file of the replica that wrote it, and both answer queries with
/// the whole trail, filtered as a file is.
#[tokio::test]
async fn replicas_answer_queries_with_each_others_lines() {
    let Some(pg) = crate::db::testing::PgTemp::create("shared_audit").await else {
        return;
    };
    use crate::state::testing::{no_poll, replica};
    let a_state = replica(pg.db_named("a").await, no_poll()).await;
    let b_state = replica(pg.db_named("b").await, no_poll()).await;
    let dir = tempfile::tempdir().unwrap();
    let a_settings = settings(&dir.path().join("a"), 1 << 20, 1);
    let b_settings = settings(&dir.path().join("b"), 1 << 20, 1);
    let a = Audit::open(Some(a_settings.clone())).unwrap();
    let b = Audit::open(Some(b_settings.clone())).unwrap();
    a.share_through(a_state.clone());
    b.share_through(b_state);
    a.record(entry(0, "uid:0", "user:1")).await;
    b.record(entry(1, "apikey:0123456789ab", "node:3")).await;
    a.record(entry(2, "apikey:0123456789ab", "node:30")).await;
    b.record(entry(3, "node:3", "node:3")).await;
    check_filters(&a).await;
    check_filters(&b).await;
    let in_file = |s: &Settings| std::fs::read_to_string(&s.path).unwrap().lines().count();
    assert_eq!((in_file(&a_settings), in_file(&b_settings)), (2, 2));
    // A replica's machine is lost with its file: its lines are not.
    drop(a);
    std::fs::remove_file(&a_settings.path).unwrap();
    assert_eq!(b.query(Query::default()).await.unwrap().len(), 4);

    // A line only the file has (written before the trail was shared, or
    // by an offline `restore`) is answered too, once, in time order.
    let c = Audit::open(Some(settings(&dir.path().join("c"), 1 << 20, 1))).unwrap();
    c.record(entry(9, "uid:0", "user:9")).await;
    c.share_through(a_state);
    c.record(entry(-1, "uid:0", "user:8")).await;
    let ids = |v: Vec<Entry>| {
        v.iter()
            .map(|e| e.request_id.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let all = c.query(Query::default()).await.unwrap();
    assert_eq!(ids(all), ["r-1", "r0", "r1", "r2", "r3", "r9"]);
    let newest = Query {
        limit: Some(2),
        ..Query::default()
    };
    assert_eq!(ids(c.query(newest).await.unwrap()), ["r3", "r9"]);
}

#[tokio::test]
async fn disabled_log_writes_nothing_and_refuses_queries() {
    let log = Audit::open(None).unwrap();
    log.record(entry(0, "uid:0", "user:1")).await;
    assert!(matches!(
        log.query(Query::default()).await,
        Err(Error::Disabled)
    ));
}

#[tokio::test]
async fn unreadable_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 20, 1);
    std::fs::create_dir_all(s.path.parent().unwrap()).unwrap();
    std::fs::write(&s.path, "not json\n{\"half\":").unwrap();
    let log = Audit::open(Some(s)).unwrap();
    log.record(entry(5, "uid:0", "user:5")).await;
    let all = log.query(Query::default()).await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn the_shared_trail_keeps_as_much_as_one_replicas_files() {
    let Some(pg) = crate::db::testing::PgTemp::create("shared_audit_prune").await else {
        return;
    };
    use crate::state::audit_log::AuditFilter;
    use crate::state::testing::{no_poll, replica};
    let a_state = replica(pg.db_named("a").await, no_poll()).await;
    let b_state = replica(pg.db_named("b").await, no_poll()).await;
    let dir = tempfile::tempdir().unwrap();
    // A current file and one rotated: 2,000 bytes of lines.
    let (max_size, max_files) = (1_000, 1);
    let budget = 2_000;
    let a = Audit::open(Some(settings(&dir.path().join("a"), max_size, max_files))).unwrap();
    a.share_pruning_every(a_state.clone(), std::time::Duration::ZERO);
    let len = |i: i64| {
        serde_json::to_string(&entry(i, "uid:0", "user:1"))
            .unwrap()
            .len()
    };
    let table = || async {
        let all = AuditFilter {
            limit: 10_000,
            ..AuditFilter::default()
        };
        b_state.shared_audit(&all).await.unwrap().unwrap()
    };
    let mut last = 0;
    for i in 0..30 {
        a.record(entry(i, "uid:0", "user:1")).await;
        last = i;
    }
    // Trimming runs beside the writes, one pass at a time: a line written
    // while a pass runs is trimmed by the pass the next line starts. Each
    // line gets time for its pass before another is written; checking
    // right after a write found the table over budget again and again on
    // a slow machine (the new line's pass not yet done), 7 runs in 30.
    'settled: for _ in 0..20 {
        for _ in 0..80 {
            if table().await.iter().map(String::len).sum::<usize>() <= budget {
                break 'settled;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        last += 1;
        a.record(entry(last, "uid:0", "user:1")).await;
    }
    let kept = table().await;
    let bytes: usize = kept.iter().map(String::len).sum();
    assert!(bytes <= budget, "{bytes} bytes kept, budget {budget}");
    let oldest_kept = last + 1 - kept.len() as i64;
    assert!(
        bytes + len(oldest_kept - 1) > budget,
        "only lines beyond the budget go ({} kept, {bytes} bytes)",
        kept.len()
    );
    let ids: Vec<String> = kept
        .iter()
        .map(|l| {
            serde_json::from_str::<Entry>(l)
                .unwrap()
                .request_id
                .unwrap()
        })
        .collect();
    let newest: Vec<String> = (oldest_kept..=last).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, newest, "the newest lines are kept, in order");
}
