//! The writer's batches: jobs queued while it works are committed in one
//! transaction and published together, every caller hears back only once
//! its write is durable and visible, and a job that fails takes nothing
//! else down with it.

use std::time::Duration;

use tokio::sync::oneshot;

use super::{fixture, input, wait_until};
use crate::state::{Error, RegisterOutcome};
use crate::types::NodeId;

#[tokio::test]
async fn queued_jobs_publish_together_and_a_failure_stays_its_own() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(true, false, &[]).await;
    // Hold the writer so the jobs below queue up behind it.
    let (open, held) = hold(&f.state).await;
    const N: u8 = 20;
    let mut joins = Vec::new();
    for i in 0..N {
        let state = f.state.clone();
        let i = input(i + 1, i + 1, Some(&key), &format!("batch{i}"));
        joins.push(tokio::spawn(async move {
            let outcome = state.register(i).await;
            // What readers see the moment this caller hears back.
            (outcome, state.world().nodes.len())
        }));
    }
    let failing = tokio::spawn({
        let state = f.state.clone();
        async move { state.delete_node(NodeId(9_999)).await }
    });
    let all = usize::from(N) + 1;
    wait_until("every job to queue", || f.state.queued() == all).await;
    let generation = f.state.world().generation;
    open.send(()).expect("writer holds the gate");
    held.await.expect("join").expect("holding job");
    let err = failing.await.expect("join").expect_err("no such node");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    for j in joins {
        let (outcome, seen) = j.await.expect("join");
        assert!(
            matches!(outcome, Ok(RegisterOutcome::Authorized { .. })),
            "{outcome:?}"
        );
        assert_eq!(
            seen,
            usize::from(N),
            "a caller heard back before its batch was published"
        );
    }
    let w = f.state.world();
    assert_eq!(w.nodes.len(), usize::from(N));
    assert_eq!(
        w.generation,
        generation + u64::from(N),
        "each successful write is its own generation; the failed one none"
    );
}

#[tokio::test]
async fn the_writer_counts_its_batches_jobs_and_busy_time() {
    let f = fixture(Duration::from_secs(1800)).await;
    let before = f.state.batch_counts();
    let (open, held) = hold(&f.state).await;
    let failing: Vec<_> = (0..10)
        .map(|i| {
            let state = f.state.clone();
            tokio::spawn(async move { state.delete_node(NodeId(9_000 + i)).await })
        })
        .collect();
    wait_until("ten jobs to queue", || f.state.queued() == 10).await;
    // The batch in progress is busy for at least this long.
    tokio::time::sleep(Duration::from_millis(100)).await;
    open.send(()).expect("writer holds the gate");
    held.await.expect("join").expect("holding job");
    for j in failing {
        assert!(j.await.expect("join").is_err(), "no such node");
    }
    let after = f.state.batch_counts();
    assert_eq!(after.jobs - before.jobs, 11, "the holding job and the ten");
    assert_eq!(
        after.batches - before.batches,
        1,
        "the ten queued behind the holding job run in its batch"
    );
    assert!(
        after.busy - before.busy >= Duration::from_millis(100),
        "{:?} busy",
        after.busy - before.busy
    );
}

/// Holds the writer on a job that waits for the returned sender, so the
/// jobs issued meanwhile all land in the batch that job starts.
async fn hold(
    state: &crate::state::StateHandle,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<crate::state::Result<()>>,
) {
    let (open, gate) = oneshot::channel::<()>();
    let held = tokio::spawn({
        let state = state.clone();
        async move {
            state
                .run(move |_| {
                    Box::pin(async move {
                        let _ = gate.await;
                        Ok(())
                    })
                })
                .await
        }
    });
    wait_until("the writer to take the holding job", || state.queued() == 0).await;
    (open, held)
}

/// The jobs of one batch share ONE database transaction (a job sees from
/// another connection nothing the batch wrote before it), and a job that
/// wrote and then failed is undone alone: in the database and in the
/// World, while the jobs before and after it are committed.
#[tokio::test]
async fn a_batch_is_one_transaction_and_a_failing_job_is_undone_alone() {
    let (_dir, db, state) =
        crate::state::testing::temp_state_with_db(Duration::from_secs(1800)).await;
    let (open, held) = hold(&state).await;
    let first = tokio::spawn({
        let state = state.clone();
        async move { state.create_user("first", "", "").await }
    });
    wait_until("the first job to queue", || state.queued() == 1).await;
    let ghost = tokio::spawn({
        let state = state.clone();
        async move {
            state
                .run(|core| {
                    Box::pin(async move {
                        let now = core.now();
                        core.db.create_user("ghost", "", "", now).await?;
                        // Read through another pooled connection: only
                        // what is committed shows.
                        let committed = core.db.list_users().await?;
                        let names: Vec<String> = committed.iter().map(|u| u.name.clone()).collect();
                        Err::<Vec<String>, _>(Error::InvalidArgument(format!("{names:?}")))
                    })
                })
                .await
        }
    });
    wait_until("the failing job to queue", || state.queued() == 2).await;
    let last = tokio::spawn({
        let state = state.clone();
        async move { state.create_user("last", "", "").await }
    });
    wait_until("every job to queue", || state.queued() == 3).await;
    let generation = state.world().generation;
    open.send(()).expect("writer holds the gate");
    held.await.expect("join").expect("holding job");

    first.await.expect("join").expect("first user");
    last.await.expect("join").expect("last user");
    match ghost.await.expect("join") {
        Err(Error::InvalidArgument(seen)) => assert_eq!(
            seen, "[]",
            "a job saw an earlier job of its batch committed: not one transaction"
        ),
        other => panic!("the failing job must fail with its own error: {other:?}"),
    }
    let stored: Vec<String> = db
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(stored, ["first", "last"], "in the database");
    let w = state.world();
    let mut names: Vec<&str> = w.users.values().map(|u| u.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["first", "last"], "in the World");
    assert_eq!(w.generation, generation + 2);
}

/// Writes to one node within a batch apply in the order they were sent,
/// and a later job on the same node that fails (after publishing its
/// World) leaves the node as the job before it left it.
#[tokio::test]
async fn jobs_on_one_node_keep_their_order_in_a_batch() {
    let (_dir, db, state) =
        crate::state::testing::temp_state_with_db(Duration::from_secs(1800)).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    let key = state
        .create_preauth_key(user, true, false, None, Vec::new())
        .await
        .expect("key")
        .1;
    let id = match state
        .register(input(1, 1, Some(&key), "n1"))
        .await
        .expect("register")
    {
        RegisterOutcome::Authorized { node, .. } => node.id,
        other => panic!("{other:?}"),
    };
    let now = state.now().timestamp();
    let at = move |days: i64| chrono::DateTime::from_timestamp(now + days * 86_400, 0);
    let (open, held) = hold(&state).await;
    let mut jobs = Vec::new();
    for (i, days) in [3, 1, 2].into_iter().enumerate() {
        let handle = state.clone();
        jobs.push(tokio::spawn(async move {
            handle.set_node_expiry(id, at(days)).await.map(|_| ())
        }));
        wait_until("the job to queue", || state.queued() == i + 1).await;
    }
    let failing = tokio::spawn({
        let state = state.clone();
        async move {
            state
                .run(move |core| {
                    Box::pin(async move {
                        let mut n = core.node_copy(id)?;
                        n.expiry = at(9);
                        core.commit_node(n, crate::state::change::Change::upsert(id))
                            .await?;
                        Err::<(), _>(Error::InvalidArgument("refused after writing".into()))
                    })
                })
                .await
        }
    });
    wait_until("every job to queue", || state.queued() == 4).await;
    open.send(()).expect("writer holds the gate");
    held.await.expect("join").expect("holding job");
    for j in jobs {
        j.await.expect("join").expect("expiry set");
    }
    failing.await.expect("join").expect_err("the job fails");
    let stored = db.list_nodes().await.expect("nodes");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].expiry,
        at(2),
        "the last successful write wins, in the database"
    );
    assert_eq!(
        state.world().node(id).expect("node").expiry,
        at(2),
        "and in the World"
    );
}
