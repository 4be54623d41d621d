//! The single writer thread and its group commit.
//!
//! Callers queue closures; the thread takes every closure waiting, applies them in one write
//! transaction, commits once (fsync), and only then answers each caller. Under load many requests
//! share one fsync; alone, a request pays one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, WriteTransaction};
use tagcast_audience::Change;
use tokio::sync::{mpsc, oneshot};

use crate::audience::Audiences;
use crate::{AppId, StoreError};

/// Most writes folded into one commit, so one commit's latency stays bounded.
const MAX_BATCH: usize = 256;
/// Queue length; callers wait (asynchronously) when the writer is this far behind.
const QUEUE: usize = 4096;

/// What a write sees: the shared transaction, and where it records what the audience index must
/// learn once the transaction is durable.
pub(crate) struct WriteCtx<'a> {
    pub txn: &'a WriteTransaction,
    pub changes: Vec<(AppId, Change)>,
}

impl WriteCtx<'_> {
    pub fn record(&mut self, app: AppId, change: Change) {
        self.changes.push((app, change));
    }
}

type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Result<Reply, redb::Error> + Send>;
type Reply = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub(crate) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
}

pub(crate) fn spawn(db: Arc<Database>, audiences: Arc<Audiences>) -> WriterHandle {
    let (jobs, queue) = mpsc::channel(QUEUE);
    let commits = Arc::new(AtomicU64::new(0));
    let counter = commits.clone();
    std::thread::Builder::new()
        .name("tagcast-writer".into())
        .spawn(move || run(&db, &audiences, queue, &counter))
        .expect("spawning the writer thread");
    WriterHandle { jobs, commits }
}

impl WriterHandle {
    /// Runs `apply` inside a shared write transaction and returns its value once committed.
    pub(crate) async fn write<T, F>(&self, apply: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, redb::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let value = apply(ctx)?;
            Ok(Box::new(move || {
                let _ = answer.send(value);
            }))
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::NotCommitted("the writer has stopped".into()))?;
        answered.await.map_err(|_| {
            StoreError::NotCommitted("the transaction was aborted by a storage error".into())
        })
    }

    /// Write transactions committed since the store was opened.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn run(db: &Database, audiences: &Audiences, mut queue: mpsc::Receiver<Job>, commits: &AtomicU64) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(db, audiences, batch, commits);
    }
}

/// Applies and commits one batch. A storage error aborts the whole transaction: nothing of the
/// batch is stored, and every caller of the batch sees its answer dropped. The audience index
/// learns the batch's changes and the commit is counted before anyone is answered, so a caller
/// always sees its own write in both.
fn commit_batch(db: &Database, audiences: &Audiences, batch: Vec<Job>, commits: &AtomicU64) {
    let size = batch.len();
    let result = (|| {
        let txn = db.begin_write()?;
        let mut ctx = WriteCtx {
            txn: &txn,
            changes: Vec::new(),
        };
        let mut replies = Vec::with_capacity(size);
        for job in batch {
            replies.push(job(&mut ctx)?);
        }
        let changes = ctx.changes;
        txn.commit()?;
        Ok::<_, redb::Error>((replies, changes))
    })();
    match result {
        Ok((replies, changes)) => {
            audiences.apply(&changes);
            commits.fetch_add(1, Ordering::Relaxed);
            replies.into_iter().for_each(|reply| reply());
        }
        Err(e) => tracing::error!(error = %e, batch = size, "write batch aborted"),
    }
}
