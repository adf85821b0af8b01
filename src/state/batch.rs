//! One writer batch: every job queued when the writer wakes runs inside a
//! single database transaction ([`crate::db::batch`]), each job in its own
//! savepoint, and the lot is committed, then published as one World and
//! one merged change, before any caller hears back.
//!
//! Semantics kept from one-transaction-per-job:
//! - a job that fails is undone alone (its savepoint and its World), the
//!   others in the batch are committed;
//! - jobs run in arrival order, each on the World the previous one left, so
//!   two writes to one node apply in the order they were sent;
//! - no caller hears success before the COMMIT that made its write durable
//!   has returned; if the transaction fails as a whole (COMMIT refused, an
//!   I/O error SQLite answers by rolling everything back) every job in the
//!   batch reports that failure and the World stays as it was before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Error;
use super::writer::{Core, Done, Job, MAX_BATCH, Reply};
use crate::db;

impl Core {
    /// Runs `first` and the jobs queued behind it (up to [`MAX_BATCH`]) as
    /// one batch, then answers their callers.
    pub(super) async fn run_batch(&mut self, first: Job, rx: &mut mpsc::Receiver<Job>) {
        let started = Instant::now();
        // Other replicas' committed changes first, under their shared
        // writer lock (a no-op on SQLite): they are published with this
        // batch whatever becomes of its jobs.
        self.replication_begin().await;
        if let Some(change) = self.job_change.take() {
            self.unpublished.get_or_insert_default().merge(change);
        }
        // Before: what a batch that fails as a whole goes back to.
        let world = self.world.clone();
        let dns_overrides = self.dns_overrides.clone();
        let policy_base = self.policy_base.clone();
        let caught_up = self.unpublished.clone();

        let (replies, committed) = db::batch::scope(async {
            let mut replies: Vec<Reply> = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next {
                let (reply, broken) = self.run_job(job).await;
                replies.push(reply);
                // A broken transaction takes no more jobs: they wait, still
                // queued, for the next batch's fresh one.
                next = if broken || replies.len() >= MAX_BATCH {
                    None
                } else {
                    rx.try_recv().ok()
                };
            }
            (replies, db::batch::commit().await)
        })
        .await;

        // The lock is held until the COMMIT has returned, so no other
        // replica writes between this batch's catch-up and its commit.
        self.replication_end().await;

        // After: publish what was committed, or forget all of it but the
        // catch-up.
        let failure = match committed {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, jobs = replies.len(), "write batch failed as a whole");
                self.world = world;
                self.dns_overrides = dns_overrides;
                self.policy_base = policy_base;
                self.unpublished = caught_up;
                self.forget_probe();
                Some(Error::from(e).to_string())
            }
        };
        self.flush();
        self.batches.record(replies.len(), started.elapsed());
        for reply in replies {
            reply(failure.clone().map(Error::Unavailable));
        }
    }

    /// Runs one job in its own savepoint. Returns its reply and whether
    /// the batch's transaction broke (nothing more can be written in it).
    async fn run_job(&mut self, job: Job) -> (Reply, bool) {
        let world = self.world.clone();
        let policy_base = self.policy_base.clone();
        db::batch::job_start();
        let Done { ok, reply } = job(self).await;
        let change = self.job_change.take();
        let kept = db::batch::job_end(ok).await;
        if ok && kept.is_ok() {
            if let Some(change) = change {
                self.unpublished.get_or_insert_default().merge(change);
            }
        } else {
            self.world = world;
            self.policy_base = policy_base;
        }
        (reply, kept.is_err())
    }
}

/// What the writer has done, batch by batch. Its busy time over wall time
/// is how close the one writer is to saturation: every write in the
/// server waits on it.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    jobs: AtomicU64,
    busy_micros: AtomicU64,
}

/// A reading of [`BatchStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    pub batches: u64,
    pub jobs: u64,
    /// From taking a batch's first job to publishing its World, summed.
    pub busy: Duration,
}

impl BatchStats {
    fn record(&self, jobs: usize, busy: Duration) {
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> BatchCounts {
        BatchCounts {
            batches: self.batches.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            busy: Duration::from_micros(self.busy_micros.load(Ordering::Relaxed)),
        }
    }
}
