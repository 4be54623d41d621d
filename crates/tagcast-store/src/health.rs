//! What the store tells about itself: whether it can commit writes now, and the counts of what
//! went wrong since it was opened.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The store's health, as `Store::health` reports it (for `/healthz` and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    pub status: HealthStatus,
    /// Write transactions committed since the store was opened.
    pub commits: u64,
    /// Write batches that failed since the store was opened (storage errors, injected faults,
    /// writer panics, and writes refused while the store was recovering). Every caller of a
    /// failed batch got an error; nothing of it is stored.
    pub failed_commits: u64,
    /// Times the writer panicked (and carried on with the next batch).
    pub writer_panics: u64,
    /// Times the database was closed and reopened to recover from an I/O error.
    pub reopens: u64,
    /// The most recent failure, kept after recovery.
    pub last_failure: Option<Failure>,
}

impl StoreHealth {
    /// True when writes are being committed normally.
    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// Whether the store commits writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    Ok,
    /// The writer cannot commit and is retrying in the background (with backoff, reopening the
    /// database when the storage requires it); meanwhile writes fail at once with an error
    /// giving `reason`, and reads may too.
    Failing {
        /// Unix time in milliseconds when the failure began.
        since_ms: u64,
        /// The failure that began it, e.g. `storage error: I/O error: No space left on device
        /// (os error 28)`, or the writer panicking.
        reason: String,
    },
}

/// One failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub(crate) struct HealthCell {
    state: Mutex<State>,
    commits: AtomicU64,
    failed_commits: AtomicU64,
    writer_panics: AtomicU64,
    reopens: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    failing: Option<(u64, String)>,
    last_failure: Option<Failure>,
    /// The writer thread is gone (it only ends when the store is dropped).
    writer_stopped: bool,
}

impl HealthCell {
    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// A failed batch: counted and remembered.
    pub fn batch_failed(&self, reason: &str) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
        self.lock().last_failure = Some(Failure {
            at_ms: now_ms(),
            reason: reason.to_string(),
        });
    }

    pub fn writer_panicked(&self) {
        self.writer_panics.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reopened(&self) {
        self.reopens.fetch_add(1, Ordering::Relaxed);
    }

    /// The store cannot commit; logged at error level when the failure begins, not again.
    pub fn failing(&self, reason: &str) {
        let mut state = self.lock();
        if state.failing.is_none() {
            tracing::error!(
                reason,
                "the store cannot commit writes; retrying in the background"
            );
            state.failing = Some((now_ms(), reason.to_string()));
        }
    }

    /// The store commits again; logged at info level.
    pub fn recovered(&self) {
        if let Some((since_ms, reason)) = self.lock().failing.take() {
            let after_ms = now_ms().saturating_sub(since_ms);
            tracing::info!(after_ms, failure = %reason, "the store commits writes again");
        }
    }

    /// Why writes fail now, if they do.
    pub fn failing_reason(&self) -> Option<String> {
        self.lock()
            .failing
            .as_ref()
            .map(|(_, reason)| reason.clone())
    }

    pub fn writer_stopped(&self) {
        self.lock().writer_stopped = true;
    }

    pub fn snapshot(&self) -> StoreHealth {
        let state = self.lock();
        let status = match (&state.failing, state.writer_stopped) {
            (_, true) => HealthStatus::Failing {
                since_ms: state.last_failure.as_ref().map_or(0, |f| f.at_ms),
                reason: "the writer thread has stopped".into(),
            },
            (Some((since_ms, reason)), false) => HealthStatus::Failing {
                since_ms: *since_ms,
                reason: reason.clone(),
            },
            (None, false) => HealthStatus::Ok,
        };
        StoreHealth {
            status,
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            writer_panics: self.writer_panics.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
            last_failure: state.last_failure.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
