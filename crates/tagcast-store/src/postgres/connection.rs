//! Connections to PostgreSQL: a pool, every statement under a deadline, and the bridge from the
//! store's synchronous engine calls (on the writer thread and the blocking pool) to the async
//! client driven by the server's tokio runtime.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;

use crate::StoreError;
use crate::tables::Result;

/// Longest wait for one statement (and for a connection); past it the request fails with the
/// internal-error code instead of hanging while PostgreSQL is down or unreachable.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait to connect, or for a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections kept: the writer's, the readers' (reads run on the blocking pool, so each
/// concurrent read holds one) and the index rebuild's.
const POOL_SIZE: usize = 16;

pub(crate) struct Pg {
    handle: Handle,
    pool: Pool,
    /// For connections outside the pool (`connect_direct`).
    config: tokio_postgres::Config,
    /// The URL without its password, for messages.
    pub redacted_url: String,
}

impl Pg {
    /// A pool for `url`; connects lazily. Needs the tokio runtime whose handle it keeps.
    pub fn new(url: &str) -> Result<Self> {
        // Its connections are driven by the runtime's workers while the store's threads wait
        // for them, which a current-thread runtime cannot do.
        let handle = Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread)
            .ok_or_else(|| {
                StoreError::Options(
                    "the PostgreSQL store must be opened inside a multi-threaded tokio runtime"
                        .into(),
                )
            })?;
        let redacted_url = redact(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Options(format!("invalid PostgreSQL URL {redacted_url}: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Acknowledged means durable, whatever the server's default.
        config
            .options("-c synchronous_commit=on")
            .application_name("tagcast")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(STATEMENT_TIMEOUT);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Options(format!("PostgreSQL pool: {e}")))?;
        Ok(Self {
            handle,
            pool,
            config,
            redacted_url,
        })
    }

    /// Runs `future` (one statement or a few) to completion within `STATEMENT_TIMEOUT`. Called
    /// from threads outside the runtime's workers only.
    pub fn block<T>(
        &self,
        future: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        self.handle.block_on(async {
            match tokio::time::timeout(STATEMENT_TIMEOUT, future).await {
                Ok(result) => result.map_err(pg_error),
                Err(_) => Err(timed_out()),
            }
        })
    }

    /// Runs `future` to completion with no deadline of its own (scans put one on each row).
    pub fn run<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        self.handle.block_on(future)
    }

    /// A connection of its own, outside the pool, whose messages (notifications) its caller
    /// drives with `spawn`.
    pub fn connect_direct(
        &self,
    ) -> Result<(
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        self.block(self.config.connect(NoTls))
    }

    /// Runs `task` on the runtime, in the background.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// A connection from the pool, opened if needed. It is closed instead of reused unless
    /// `Conn::done` is called: after a failure its state is unknown.
    pub fn connection(&self) -> Result<Conn> {
        let object = self.handle.block_on(self.pool.get()).map_err(|error| {
            let why = match error {
                PoolError::Backend(error) => pg_message(&error),
                PoolError::Timeout(_) => {
                    format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())
                }
                other => other.to_string(),
            };
            StoreError::Storage(format!("PostgreSQL at {}: {why}", self.redacted_url))
        })?;
        Ok(Conn {
            object: Some(object),
        })
    }
}

/// A pooled connection that is discarded unless its user says it is clean.
pub(crate) struct Conn {
    object: Option<Object>,
}

impl Conn {
    pub fn client(&self) -> &deadpool_postgres::Client {
        self.object
            .as_ref()
            .expect("a connection is used only before it is returned")
    }

    /// Returns the connection to the pool: no transaction is open on it.
    pub fn done(mut self) {
        drop(self.object.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            // Closing it rolls back whatever it had open.
            drop(Object::take(object));
        }
    }
}

/// A PostgreSQL error as the store's, with the server's message when it sent one.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    pg_error_ref(&error)
}

pub(crate) fn pg_error_ref(error: &tokio_postgres::Error) -> StoreError {
    StoreError::Storage(pg_message(error))
}

fn pg_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "PostgreSQL: {}: {} ({})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None if error.is_closed() => {
            "PostgreSQL closed the connection (is the server down?)".into()
        }
        None => {
            let mut message = format!("PostgreSQL: {error}");
            if let Some(source) = std::error::Error::source(error) {
                message.push_str(&format!(": {source}"));
            }
            message
        }
    }
}

fn timed_out() -> StoreError {
    StoreError::Storage(format!(
        "PostgreSQL did not answer within {} s",
        STATEMENT_TIMEOUT.as_secs()
    ))
}

/// `url` with its password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://tagcast:s3cret@db:5432/tagcast"),
            "postgres://tagcast:***@db:5432/tagcast"
        );
        assert_eq!(redact("postgres://tagcast@db/x"), "postgres://tagcast@db/x");
        assert_eq!(redact("postgresql://db/x"), "postgresql://db/x");
    }
}
