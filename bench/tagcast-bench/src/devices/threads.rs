//! A Tokio runtime on threads of its own, named so that the CPU time of what runs on it (a fake
//! provider, the baseline's client) can be read from /proc apart from the rest of the process.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

use crate::compare::tagcast_side::thread_cpu;

pub struct Pool {
    /// Taken on drop: a runtime is shut down in the background, as the benchmark drops it
    /// from async code.
    runtime: Option<Runtime>,
    handle: Handle,
    name: String,
}

impl Pool {
    /// A runtime of `workers` threads named `name` (at most 15 bytes: Linux's thread names).
    pub fn new(name: &str, workers: usize) -> anyhow::Result<Pool> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            // Blocking threads would take their CPU time with them when they exit idle.
            .thread_keep_alive(Duration::from_secs(24 * 3600))
            .enable_all()
            .build()?;
        Ok(Pool {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            name: name.to_string(),
        })
    }

    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// CPU seconds (user + system) the pool's threads have used so far.
    pub fn cpu_secs(&self) -> f64 {
        thread_cpu(std::process::id())
            .values()
            .filter(|(name, _)| *name == self.name)
            .map(|(_, secs)| secs)
            .sum()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
