//! The single writer thread: its group commit, its supervision and its recovery.
//!
//! Callers queue jobs; the thread takes every job waiting, applies them in one write
//! transaction, commits once (fsync), and only then answers each caller. Under load many requests
//! share one fsync; alone, a request pays one. A write is answered OK only after its commit
//! succeeded, so nothing acknowledged is ever lost.
//!
//! When a batch fails (a storage error, an injected fault, a panic while applying it), each of
//! its callers gets the error and nothing of the batch is stored. The writer then recovers
//! before it takes more writes: the engine makes itself able to commit again (redb reopens its
//! file, PostgreSQL reconnects) and proves it with a write, and, if a failed commit may have
//! been stored after all, the audience index is brought level with the records. Attempts
//! repeat with backoff while they fail; meanwhile writes fail at once with
//! `StoreError::Unavailable` and `Store::health` reports the failure.
//!
//! The writer is the same for every engine (see `engine::Engine`).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tagcast_audience::Change;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Changes, Committed, Failed};
use crate::events::Event;
use crate::tables::{ReadTables, Tables};
use crate::{AppId, Shared, StoreError};

/// Most writes folded into one commit, so one commit's latency stays bounded.
const MAX_BATCH: usize = 256;
/// Queue length; callers wait (asynchronously) when the writer is this far behind.
const QUEUE: usize = 4096;
/// First wait between two recovery attempts; it doubles up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a recovering writer looks for writes to refuse.
const POLL: Duration = Duration::from_millis(20);

/// The operation of `WriterHandle::check`'s empty write.
const CHECK: &str = "check";

/// What a write sees: the shared transaction's records, and where it records what the audience
/// index must learn once the transaction is durable.
pub(crate) struct WriteCtx<'a> {
    pub tables: &'a mut dyn Tables,
    pub changes: &'a mut Changes,
}

impl WriteCtx<'_> {
    pub fn record(&mut self, app: AppId, change: Change) {
        self.changes.index.push((app, change));
    }

    /// Tells every node of `event` once this write is durable.
    pub fn announce(&mut self, app: AppId, event: Event) {
        self.changes.events.push((app, event));
    }
}

/// One queued write, whatever it returns.
trait Job: Send {
    /// The store operation, for fault plans and logs.
    fn op(&self) -> &'static str;
    /// Tells the transaction what the write will read (see `ReadTables::prefetch_accounts`);
    /// every job of a batch does before any applies, so an engine can fetch for all at once.
    fn prefetch(&mut self, tables: &mut dyn Tables) -> Result<(), StoreError>;
    /// Applies the write inside the batch's transaction, keeping its value for `answer`.
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> Result<(), StoreError>;
    /// The batch committed: the caller gets its value.
    fn answer(self: Box<Self>);
    /// The batch failed: the caller gets `error`.
    fn fail(self: Box<Self>, error: StoreError);
}

struct Typed<T, P, F> {
    op: &'static str,
    prefetch: Option<P>,
    apply: Option<F>,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, P, F> Job for Typed<T, P, F>
where
    T: Send,
    P: FnOnce(&mut dyn ReadTables) -> Result<(), StoreError> + Send,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send,
{
    fn op(&self) -> &'static str {
        self.op
    }

    fn prefetch(&mut self, tables: &mut dyn Tables) -> Result<(), StoreError> {
        match self.prefetch.take() {
            Some(prefetch) => prefetch(tables),
            None => Ok(()),
        }
    }

    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> Result<(), StoreError> {
        let apply = self.apply.take().ok_or_else(|| {
            StoreError::NotCommitted("the write was applied twice; it was dropped".into())
        })?;
        self.value = Some(apply(ctx)?);
        Ok(())
    }

    fn answer(self: Box<Self>) {
        let answer = self.value.ok_or_else(|| {
            StoreError::NotCommitted("the write was not applied to its commit".into())
        });
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

#[derive(Clone)]
pub(crate) struct WriterHandle {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

pub(crate) fn spawn(shared: Arc<Shared>) -> Result<WriterHandle, StoreError> {
    let (jobs, queue) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("tagcast-writer".into())
        .spawn(move || supervise(shared, queue))?;
    Ok(WriterHandle { jobs })
}

impl WriterHandle {
    /// Runs `apply` (the write operation `op`) inside a shared write transaction and returns its
    /// value once committed.
    pub(crate) async fn write<T, F>(&self, op: &'static str, apply: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_prefetched(op, |_: &mut dyn ReadTables| Ok(()), apply)
            .await
    }

    /// `write`, telling the transaction first with `prefetch` what `apply` will read.
    pub(crate) async fn write_prefetched<T, P, F>(
        &self,
        op: &'static str,
        prefetch: P,
        apply: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        P: FnOnce(&mut dyn ReadTables) -> Result<(), StoreError> + Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answered) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            op,
            prefetch: Some(prefetch),
            apply: Some(apply),
            value: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::NotCommitted("the writer has stopped".into()))?;
        answered.await.map_err(|_| {
            StoreError::NotCommitted(
                "the writer failed before answering; the write may not be stored".into(),
            )
        })?
    }

    /// Has the writer commit an empty write soon, so that it notices a failed database (and
    /// recovers) even when no write is coming. Never waits.
    pub(crate) fn check(&self) {
        let (reply, _) = oneshot::channel::<Result<(), StoreError>>();
        let job: Box<dyn Job> = Box::new(Typed {
            op: CHECK,
            prefetch: None::<fn(&mut dyn ReadTables) -> Result<(), StoreError>>,
            apply: Some(|_: &mut WriteCtx<'_>| Ok(())),
            value: None,
            reply,
        });
        let _ = self.jobs.try_send(job);
    }
}

/// The thread: runs the writer, and runs it again if it ever panics outside a batch.
fn supervise(shared: Arc<Shared>, queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut writer = Writer {
        shared,
        queue,
        recovery: None,
        index_suspect: false,
    };
    loop {
        match catch_unwind(AssertUnwindSafe(|| writer.run())) {
            Ok(()) => break,
            Err(panic) => {
                let reason = format!("the writer panicked: {}", panic_message(&*panic));
                tracing::error!(%reason, "restarting the writer");
                writer.shared.health.writer_panicked();
                writer.shared.health.batch_failed(&reason);
                writer.start_recovery(&reason);
                std::thread::sleep(FIRST_RETRY);
            }
        }
    }
    // The queue is closed: every handle of the store is gone.
    writer.shared.health.writer_stopped();
}

struct Writer {
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Box<dyn Job>>,
    /// Set while the writer cannot commit.
    recovery: Option<Recovery>,
    /// A commit failed after it may have reached the disk: the audience index may differ from
    /// the database, and is rebuilt before the writer goes on.
    index_suspect: bool,
}

struct Recovery {
    next_attempt: Instant,
    backoff: Duration,
}

impl Writer {
    fn run(&mut self) {
        loop {
            if self.recovery.is_some() {
                self.recover_if_due();
            }
            let first = if let Some(recovery) = &self.recovery {
                match self.queue.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        let due = recovery
                            .next_attempt
                            .saturating_duration_since(Instant::now());
                        std::thread::sleep(due.min(POLL));
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.queue.blocking_recv() {
                    Some(job) => job,
                    None => return,
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if self.recovery.is_some() {
                self.refuse(batch);
            } else {
                self.commit_batch(batch);
            }
        }
    }

    /// Fails a batch at once while the store is recovering.
    fn refuse(&self, batch: Vec<Box<dyn Job>>) {
        let health = &self.shared.health;
        let reason = health
            .failing_reason()
            .unwrap_or_else(|| "a storage failure".into());
        tracing::debug!(batch = batch.len(), %reason, "writes refused while recovering");
        if batch.iter().any(|job| job.op() != CHECK) {
            health.batch_failed(&reason);
        }
        for job in batch {
            job.fail(StoreError::Unavailable(reason.clone()));
        }
    }

    /// Applies and commits one batch. A failure aborts the whole transaction: nothing of the
    /// batch is stored and every caller of the batch gets the error. The audience index learns
    /// the batch's changes and the commit is counted before anyone is answered, so a caller
    /// always sees its own write in both.
    fn commit_batch(&mut self, mut batch: Vec<Box<dyn Job>>) {
        let shared = &*self.shared;
        let outcome = catch_unwind(AssertUnwindSafe(|| apply_and_commit(shared, &mut batch)));
        match outcome {
            Ok(Ok(committed)) => self.committed(batch, &committed),
            Ok(Err(failed)) => self.failed(batch, failed),
            Err(panic) => {
                let reason = format!(
                    "the writer panicked applying a write: {}",
                    panic_message(&*panic)
                );
                tracing::error!(%reason, batch = batch.len(), "write batch aborted");
                self.shared.health.writer_panicked();
                self.shared.health.batch_failed(&reason);
                // Health tells of the failure before any caller hears of it.
                self.start_recovery(&reason);
                for job in batch {
                    job.fail(StoreError::NotCommitted(
                        "the store's writer failed applying this write; nothing of it was \
                         stored"
                            .into(),
                    ));
                }
            }
        }
    }

    fn committed(&mut self, batch: Vec<Box<dyn Job>>, committed: &Committed) {
        let audiences = &self.shared.audiences;
        let applied = catch_unwind(AssertUnwindSafe(|| {
            audiences.apply(&committed.changes, &committed.positions)
        }));
        let learnt = match applied {
            Ok(Ok(())) => true,
            Ok(Err(out_of_order)) => {
                // Another node committed in between (or a commit's outcome was unknown).
                tracing::debug!(?out_of_order, "the index is behind the log; catching up");
                false
            }
            Err(_) => {
                self.shared.health.writer_panicked();
                tracing::error!("the writer panicked updating the audience index");
                false
            }
        };
        if !learnt {
            // Committed, but the index learnt only part of it: bring it level with the records.
            if let Err(error) = self.resync_index() {
                let reason = format!("the audience index could not be rebuilt: {error}");
                self.shared.health.batch_failed(&reason);
                self.index_suspect = true;
                self.start_recovery(&reason);
                for job in batch {
                    job.fail(StoreError::Interrupted(
                        "the write was committed, but the audience index could not learn it; \
                         it will once the store has recovered"
                            .into(),
                    ));
                }
                return;
            }
        }
        self.shared.health.committed();
        for job in batch {
            job.answer();
        }
    }

    fn failed(&mut self, batch: Vec<Box<dyn Job>>, failed: Failed) {
        let Failed { error, at_commit } = failed;
        let reason = error.to_string();
        tracing::warn!(%reason, batch = batch.len(), at_commit, "write batch aborted");
        self.shared.health.batch_failed(&reason);
        if at_commit {
            self.index_suspect = true;
        }
        // Corrupt data fails the writes that read it; the storage itself works.
        if !matches!(error, StoreError::Corrupt { .. }) {
            self.start_recovery(&reason);
        }
        for job in batch {
            job.fail(error.clone());
        }
    }

    /// The writer cannot commit: writes are refused until a recovery attempt succeeds. The
    /// first attempt is made at once.
    fn start_recovery(&mut self, reason: &str) {
        self.shared.health.failing(reason);
        if self.recovery.is_none() {
            self.recovery = Some(Recovery {
                next_attempt: Instant::now(),
                backoff: FIRST_RETRY,
            });
        }
    }

    fn recover_if_due(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        if Instant::now() < recovery.next_attempt {
            return;
        }
        match self.recover() {
            Ok(()) => {
                self.recovery = None;
                self.shared.health.recovered();
            }
            Err(error) => {
                if let Some(recovery) = &mut self.recovery {
                    tracing::debug!(%error, retry_in = ?recovery.backoff, "recovery attempt failed");
                    recovery.next_attempt = Instant::now() + recovery.backoff;
                    recovery.backoff = (recovery.backoff * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// One recovery attempt: the engine makes itself able to commit again, then the index is
    /// brought level with the records if it may be stale.
    fn recover(&mut self) -> Result<(), StoreError> {
        self.shared.engine.recover(&self.shared.health)?;
        if self.index_suspect {
            self.resync_index()?;
            self.index_suspect = false;
        }
        Ok(())
    }

    fn resync_index(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.shared.engine.resync(&self.shared.audiences)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "audience index brought level with the records"
        );
        Ok(())
    }
}

fn apply_and_commit(shared: &Shared, batch: &mut [Box<dyn Job>]) -> Result<Committed, Failed> {
    let committed = shared.engine.write(&mut |tables, changes| {
        for job in batch.iter_mut() {
            job.prefetch(tables)?;
        }
        let mut ctx = WriteCtx { tables, changes };
        for job in batch.iter_mut() {
            shared.faults.before_write(job.op())?;
            job.apply(&mut ctx)?;
        }
        Ok(())
    })?;
    if let Some(job) = batch.iter().find(|job| shared.faults.lose_commit(job.op())) {
        let lost = format!("the fault plan hid the commit of {}", job.op());
        return Err(Failed::at_commit(StoreError::Injected(lost)));
    }
    Ok(committed)
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
