//! The writer's batches: jobs queued while it works are published
//! together, every caller hears back only once its write is visible, and a
//! job that fails takes nothing else down with it.

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
    let (open, gate) = oneshot::channel::<()>();
    let held = tokio::spawn({
        let state = f.state.clone();
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
    wait_until("the writer to take the holding job", || {
        f.state.queued() == 0
    })
    .await;
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
