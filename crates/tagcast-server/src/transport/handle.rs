//! Controls a running server from outside: learn where it listens, ask it to shut down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::sync::lock;

/// How long a shutdown waits for open requests unless told otherwise.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// A handle on a server; cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    inner: Arc<Inner>,
}

struct Inner {
    /// None until bound; stays None if the server never binds.
    listening: watch::Sender<Listening>,
    shutdown: watch::Sender<bool>,
    grace: Mutex<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Listening {
    NotYet,
    At(SocketAddr),
    Never,
}

impl Default for ServerHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandle {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                listening: watch::Sender::new(Listening::NotYet),
                shutdown: watch::Sender::new(false),
                grace: Mutex::new(DEFAULT_GRACE),
            }),
        }
    }

    /// The bound address once the server listens; None if it failed to start.
    pub async fn listening(&self) -> Option<SocketAddr> {
        let mut rx = self.inner.listening.subscribe();
        let state = rx
            .wait_for(|l| *l != Listening::NotYet)
            .await
            .map(|l| *l)
            .unwrap_or(Listening::Never);
        match state {
            Listening::At(addr) => Some(addr),
            Listening::NotYet | Listening::Never => None,
        }
    }

    /// Stops accepting connections and lets open requests finish for up to `grace` (10 s if
    /// None); WebSocket sessions are closed with 1001 (going away).
    pub fn graceful_shutdown(&self, grace: Option<Duration>) {
        *lock(&self.inner.grace) = grace.unwrap_or(DEFAULT_GRACE);
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn set_listening(&self, addr: SocketAddr) {
        self.inner.listening.send_replace(Listening::At(addr));
    }

    pub(crate) fn set_failed(&self) {
        self.inner.listening.send_if_modified(|l| {
            let changed = *l == Listening::NotYet;
            if changed {
                *l = Listening::Never;
            }
            changed
        });
    }

    /// Changes (to true) when a shutdown is asked for.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn grace(&self) -> Duration {
        *lock(&self.inner.grace)
    }
}
