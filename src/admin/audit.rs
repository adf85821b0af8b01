//! The audit trail: one JSON object per line in `audit.path`, for every
//! mutation through any API or the CLI, every control-protocol event that
//! changes a node (`state::events`) and every policy change.
//!
//! Who writes: the operations layer (`admin`), never a transport, so a new
//! transport cannot forget it; control-protocol events arrive from the state
//! writer through its event sink. One task owns the file: it appends, calls
//! `fsync` before acknowledging, and rotates by size (`audit.max_size`,
//! keeping `audit.max_files` older files as `<path>.1` … `<path>.N`). A
//! mutation's reply waits for its line to be on disk. Queries run on the
//! same task, so they never see a file mid-rotation.
//!
//! Line format (absent values are `null`): `{"time", "request_id", "actor",
//! "transport", "action", "object", "before", "after", "result":
//! "ok"|"error", "error", "policy_revision"}`. `before`/`after` are the
//! object's audit view (`admin::snapshot`), which never holds a secret.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::state::StateHandle;

mod shared;

/// Largest `limit` a query may ask for.
pub const MAX_QUERY_LIMIT: usize = 10_000;

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub request_id: Option<String>,
    /// `apikey:<prefix>`, `oauth:<client>`, `uid:<n>`, `policy-file`,
    /// `node:<id>` or `system`.
    pub actor: String,
    pub transport: String,
    /// What was done, e.g. `user.create`, `node.register`.
    pub action: String,
    /// What it was done to, e.g. `user:3`.
    pub object: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// `ok` or `error`.
    pub result: String,
    pub error: Option<String>,
    /// The policy in force after a policy change.
    pub policy_revision: Option<String>,
}

/// Where and how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub path: PathBuf,
    /// Rotate before a write would make the file larger than this.
    pub max_size: u64,
    /// Rotated files kept.
    pub max_files: u32,
}

/// A query: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub since: Option<DateTime<Utc>>,
    /// Exact actor (`apikey:0123456789ab`).
    pub actor: Option<String>,
    /// Exact object (`node:3`), or a kind (`node`) for all of that kind.
    pub object: Option<String>,
    /// The newest this many matches (default and cap: [`MAX_QUERY_LIMIT`]).
    pub limit: Option<usize>,
}

impl Query {
    /// How many entries it asks for, capped.
    fn limit(&self) -> usize {
        self.limit.unwrap_or(MAX_QUERY_LIMIT).min(MAX_QUERY_LIMIT)
    }

    fn matches(&self, e: &Entry) -> bool {
        self.since.is_none_or(|t| e.time >= t)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.object.as_ref().is_none_or(|o| {
                e.object.as_deref().is_some_and(|have| {
                    have == o || (!o.contains(':') && have.split(':').next() == Some(o))
                })
            })
    }
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("audit log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit log is disabled (audit.path is empty)")]
    Disabled,
    #[error("the audit log writer has stopped")]
    Stopped,
    /// With replicas: the shared trail could not be read.
    #[error("the shared audit trail cannot be read: {0}")]
    Database(String),
}

enum Job {
    Write(Entry, Option<oneshot::Sender<()>>),
    Query(Query, oneshot::Sender<Result<Vec<Entry>, Error>>),
    /// From now on, also keep lines in (and answer from) the database that
    /// replicas share, trimming it every so often.
    Share(StateHandle, std::time::Duration),
}

/// Handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: Option<mpsc::UnboundedSender<Job>>,
}

impl Audit {
    /// Opens (creating with mode 0600) the log and starts its writer task;
    /// `None` disables auditing (nothing is written, queries fail).
    pub fn open(settings: Option<Settings>) -> Result<Audit, Error> {
        let Some(settings) = settings else {
            return Ok(Audit { tx: None });
        };
        let file = LogFile::open(settings)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(file, rx));
        Ok(Audit { tx: Some(tx) })
    }

    /// Appends `entry` and waits until it is on disk (or failed, which is
    /// logged: the mutation it describes has happened either way).
    pub async fn record(&self, entry: Entry) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Job::Write(entry, Some(done))).is_ok() {
            let _ = wait.await;
        }
    }

    /// Appends `entry` without waiting (for the state writer's events).
    pub fn record_nowait(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Write(entry, None));
        }
    }

    /// With replicas (`state` shares a database), every line written from
    /// now on is also stored there, and queries read the whole trail from
    /// there and this file together; without, nothing changes.
    pub fn share_through(&self, state: StateHandle) {
        self.share_pruning_every(state, shared::PRUNE_EVERY);
    }

    fn share_pruning_every(&self, state: StateHandle, every: std::time::Duration) {
        if let (Some(tx), true) = (&self.tx, state.is_replicated()) {
            let _ = tx.send(Job::Share(state, every));
        }
    }

    /// Entries matching `q`, oldest first.
    pub async fn query(&self, q: Query) -> Result<Vec<Entry>, Error> {
        let tx = self.tx.as_ref().ok_or(Error::Disabled)?;
        let (reply, wait) = oneshot::channel();
        tx.send(Job::Query(q, reply)).map_err(|_| Error::Stopped)?;
        wait.await.map_err(|_| Error::Stopped)?
    }
}

async fn run(mut file: LogFile, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut shared: Option<shared::Shared> = None;
    while let Some(job) = rx.recv().await {
        match job {
            Job::Share(state, every) => shared = Some(shared::Shared::new(state, every)),
            Job::Write(first, done) => {
                // Write what is queued, then one fsync for the batch.
                let mut acks: Vec<oneshot::Sender<()>> = done.into_iter().collect();
                let mut batch = vec![first];
                let mut query = None;
                while let Ok(next) = rx.try_recv() {
                    match next {
                        Job::Write(e, d) => {
                            batch.push(e);
                            acks.extend(d);
                        }
                        // Answered after this batch is on disk.
                        Job::Query(q, r) => {
                            query = Some((q, r));
                            break;
                        }
                        Job::Share(state, every) => {
                            shared = Some(shared::Shared::new(state, every));
                        }
                    }
                }
                let copy = shared.as_ref().map(|_| batch.clone());
                let budget = file.budget();
                let Some((f, result)) = blocking(move || {
                    let r = file.append(&batch);
                    (file, r)
                })
                .await
                else {
                    return;
                };
                file = f;
                if let Err(e) = result {
                    tracing::error!(error = %e, "audit log write failed");
                }
                if let (Some(shared), Some(batch)) = (&mut shared, copy) {
                    shared.store(&batch, budget).await;
                }
                for a in acks {
                    let _ = a.send(());
                }
                if let Some((q, r)) = query {
                    let Some(f) = answer(file, shared.as_ref().map(|s| &s.state), q, r).await
                    else {
                        return;
                    };
                    file = f;
                }
            }
            Job::Query(q, r) => {
                let Some(f) = answer(file, shared.as_ref().map(|s| &s.state), q, r).await else {
                    return;
                };
                file = f;
            }
        }
    }
}

/// Runs `f` on the blocking pool; `None` when the runtime is shutting
/// down and never started it (this task is being dropped with it; that
/// was reported as a panic before, at the end of tests). A panic in `f`
/// goes on as one.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => Some(done),
        Err(e) if e.is_cancelled() => None,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Answers `q` from the file (and the database when shared); gives the
/// file back, or nothing when the runtime is shutting down.
async fn answer(
    file: LogFile,
    shared: Option<&StateHandle>,
    q: Query,
    reply: oneshot::Sender<Result<Vec<Entry>, Error>>,
) -> Option<LogFile> {
    let others = match shared {
        Some(state) => shared::query(state, &q).await,
        None => None,
    };
    let limit = q.limit();
    // Shutting down: the reply is dropped unanswered.
    let (file, mine) = blocking(move || {
        let r = file.query(&q);
        (file, r)
    })
    .await?;
    // The file also holds what was never in the database: lines from
    // before the trail was shared, and from offline commands (`restore`).
    let result = match others {
        None => mine,
        Some(Err(e)) => Err(e),
        Some(Ok(others)) => mine.map(|mine| shared::merge(mine, others, limit)),
    };
    let _ = reply.send(result);
    Some(file)
}

/// The open log and its rotation bookkeeping.
struct LogFile {
    settings: Settings,
    file: std::fs::File,
    size: u64,
}

impl LogFile {
    fn open(settings: Settings) -> Result<LogFile, Error> {
        let io = |source| Error::Io {
            path: settings.path.clone(),
            source,
        };
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = open_append(&settings.path).map_err(io)?;
        let mut size = file.metadata().map_err(io)?.len();
        if size > 0 && !ends_with_newline(&settings.path).map_err(io)? {
            // A crash cut the last line short: start a fresh one.
            file.write_all(b"\n").map_err(io)?;
            size += 1;
        }
        Ok(LogFile {
            settings,
            file,
            size,
        })
    }

    /// Bytes of lines this replica's files keep at most (the current file
    /// and `max_files` rotated ones): the shared trail keeps as much.
    fn budget(&self) -> u64 {
        self.settings
            .max_size
            .saturating_mul(u64::from(self.settings.max_files) + 1)
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.settings.path.clone(),
            source,
        }
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let mut written = false;
        for e in entries {
            let mut line = serde_json::to_vec(e).map_err(|e| self.io(e.into()))?;
            line.push(b'\n');
            let len = line.len() as u64;
            if self.size > 0 && self.size + len > self.settings.max_size {
                if written {
                    self.file.sync_data().map_err(|e| self.io(e))?;
                }
                self.rotate()?;
            }
            self.file.write_all(&line).map_err(|e| self.io(e))?;
            self.size += len;
            written = true;
        }
        self.file.sync_data().map_err(|e| self.io(e))
    }

    /// `<path>.N-1` → `<path>.N` … `<path>` → `<path>.1`, dropping the
    /// oldest, then a fresh `<path>`.
    fn rotate(&mut self) -> Result<(), Error> {
        let keep = self.settings.max_files;
        let path = self.settings.path.clone();
        if keep == 0 {
            std::fs::remove_file(&path).map_err(|e| self.io(e))?;
        } else {
            let _ = std::fs::remove_file(rotated(&path, keep));
            for i in (1..keep).rev() {
                let from = rotated(&path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&path, i + 1)).map_err(|e| self.io(e))?;
                }
            }
            std::fs::rename(&path, rotated(&path, 1)).map_err(|e| self.io(e))?;
        }
        self.file = open_append(&path).map_err(|e| self.io(e))?;
        self.size = 0;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the renames themselves durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn query(&self, q: &Query) -> Result<Vec<Entry>, Error> {
        let limit = q.limit();
        let path = &self.settings.path;
        let mut files: Vec<PathBuf> = (1..=self.settings.max_files)
            .rev()
            .map(|i| rotated(path, i))
            .collect();
        files.push(path.clone());
        let mut out = std::collections::VecDeque::new();
        for f in files {
            let file = match std::fs::File::open(&f) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(e)),
            };
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(|e| self.io(e))?;
                // Lines written by someone else (or cut by a crash) are
                // skipped, not fatal.
                let Ok(e) = serde_json::from_str::<Entry>(&line) else {
                    continue;
                };
                if q.matches(&e) {
                    if out.len() == limit {
                        out.pop_front();
                    }
                    out.push_back(e);
                }
            }
        }
        Ok(out.into())
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{i}"));
    PathBuf::from(p)
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests;
