//! Strict local fakes of the three push providers tagcast sends to, for tests and benchmarks:
//! Apple's APNs (`apns::Apple`), Google's OAuth token endpoint with FCM HTTP v1
//! (`fcm::Google`) and a Web Push service (`webpush::PushService`).
//!
//! Each one checks every request as its provider documents it and refuses anything else with
//! that provider's status and error body (saying why in `rejected()`), records what it
//! accepted (`received()`), counts every request (`requests()`), and answers each device as the
//! test scripted (`script()`, default: acceptance). They listen on 127.0.0.1, run as tasks of
//! the caller's Tokio runtime, and stop when dropped.

/// The methods every fake has over its `Ledger` (`self.served.state.ledger`); `$device` names
/// what a script is for.
macro_rules! ledger_methods {
    ($device:ident) => {
        #[doc = concat!(
                                            "How well-formed requests to `", stringify!($device),
                                            "` are answered from now on (by default: accepted)."
                                        )]
        pub fn script(&self, $device: &str, script: $crate::Script) {
            self.served.state.ledger.script($device, script);
        }

        /// What was accepted, in the order it arrived.
        pub fn received(&self) -> Vec<Received> {
            self.served.state.ledger.received()
        }

        /// How many were accepted: `received().len()` without copying them (a benchmark
        /// polls it).
        pub fn received_count(&self) -> usize {
            self.served.state.ledger.received_count()
        }

        /// Why each malformed request was refused: the status, the provider's reason or error
        /// code, and details.
        pub fn rejected(&self) -> Vec<String> {
            self.served.state.ledger.rejected()
        }

        /// Every request seen: accepted, refused, or answered as scripted.
        pub fn requests(&self) -> usize {
            self.served.state.ledger.requests()
        }
    };
}

pub mod apns;
pub mod fcm;
mod server;
pub mod webpush;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

/// Scripted answer for one device token / subscription id; default is acceptance. A fake
/// checks a request before it consults the script: a malformed request is refused whatever
/// its device's script says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Script {
    /// Accepted and recorded.
    #[default]
    Accept,
    /// The device is gone: APNs 410 `Unregistered`, FCM 404 `UNREGISTERED`, Web Push 410.
    Gone,
    /// The first `times` requests get 429 with `Retry-After: retry_after_secs` (APNs
    /// `TooManyRequests`, FCM `QUOTA_EXCEEDED`), then the device is accepted.
    Throttle { retry_after_secs: u64, times: u32 },
    /// The first `times` requests find the provider failing (APNs 500 `InternalServerError`,
    /// FCM 503 `UNAVAILABLE`, Web Push 500), then the device is accepted.
    Fail500 { times: u32 },
    /// Refused for this device: APNs 400 `BadDeviceToken` (Apple's only per-device 400, which
    /// tagcast reads as a device gone), FCM 400 `INVALID_ARGUMENT`, Web Push 400.
    BadRequest,
    /// Accepted and recorded, but answered with a 1 MiB body: a server that talks too much
    /// (what a Web Push endpoint, named by any browser, may be).
    Chatty,
}

/// How a script refuses a well-formed request; each fake says it in its provider's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scripted {
    Gone,
    Throttle { retry_after_secs: u64 },
    Fail,
    BadRequest,
}

/// What a fake keeps: the scripts, what it accepted and refused, how many requests it saw.
struct Ledger<T> {
    requests: AtomicUsize,
    received: Mutex<Vec<T>>,
    rejected: Mutex<Vec<String>>,
    scripts: Mutex<HashMap<String, Script>>,
}

impl<T: Clone> Ledger<T> {
    fn new() -> Self {
        Self {
            requests: AtomicUsize::new(0),
            received: Mutex::default(),
            rejected: Mutex::default(),
            scripts: Mutex::default(),
        }
    }

    /// Counts one more request.
    fn seen(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn reject(&self, why: String) {
        lock(&self.rejected).push(why);
    }

    fn script(&self, device: &str, script: Script) {
        lock(&self.scripts).insert(device.to_string(), script);
    }

    /// Consults `device`'s script for a well-formed request: when the device is accepted,
    /// records `item` and gives the body to answer with (empty, or a mebibyte for `Chatty`);
    /// else how the script refuses it.
    fn take(&self, device: &str, item: T) -> Result<Bytes, Scripted> {
        let body = match self.turn(device) {
            Script::Accept => Bytes::new(),
            Script::Chatty => Bytes::from(vec![b'x'; 1 << 20]),
            Script::Gone => return Err(Scripted::Gone),
            Script::Throttle {
                retry_after_secs, ..
            } => return Err(Scripted::Throttle { retry_after_secs }),
            Script::Fail500 { .. } => return Err(Scripted::Fail),
            Script::BadRequest => return Err(Scripted::BadRequest),
        };
        lock(&self.received).push(item);
        Ok(body)
    }

    /// The answer `device` gets now, counting down a `Throttle` or a `Fail500`.
    fn turn(&self, device: &str) -> Script {
        let mut scripts = lock(&self.scripts);
        let Some(script) = scripts.get_mut(device) else {
            return Script::Accept;
        };
        let now = *script;
        match script {
            Script::Throttle { times, .. } | Script::Fail500 { times } if *times > 0 => {
                *times -= 1;
                now
            }
            Script::Throttle { .. } | Script::Fail500 { .. } => Script::Accept,
            _ => now,
        }
    }

    fn received(&self) -> Vec<T> {
        lock(&self.received).clone()
    }

    fn received_count(&self) -> usize {
        lock(&self.received).len()
    }

    fn rejected(&self) -> Vec<String> {
        lock(&self.rejected).clone()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// `mutex`'s guard, also after a panic elsewhere (a failing test's assertion).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `lock`'s read guard, also after a panic elsewhere.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// `lock`'s write guard, also after a panic elsewhere.
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// `n` random bytes, hex: unguessable names (access tokens, ids).
fn random_hex(n: usize) -> String {
    use web_push_native::p256::elliptic_curve::rand_core::{OsRng, RngCore};
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_and_fail_count_down_then_accept_while_gone_stays() {
        let ledger = Ledger::<&str>::new();
        ledger.script(
            "a",
            Script::Throttle {
                retry_after_secs: 3,
                times: 2,
            },
        );
        ledger.script("b", Script::Fail500 { times: 1 });
        ledger.script("c", Script::Gone);
        ledger.script("d", Script::Chatty);
        let throttled = Err(Scripted::Throttle {
            retry_after_secs: 3,
        });
        assert_eq!(ledger.take("a", "a1"), throttled);
        assert_eq!(ledger.take("a", "a2"), throttled);
        assert_eq!(ledger.take("a", "a3"), Ok(Bytes::new()));
        assert_eq!(ledger.take("b", "b1"), Err(Scripted::Fail));
        assert_eq!(ledger.take("b", "b2"), Ok(Bytes::new()));
        assert_eq!(ledger.take("c", "c1"), Err(Scripted::Gone));
        assert_eq!(ledger.take("c", "c2"), Err(Scripted::Gone));
        assert_eq!(ledger.take("d", "d1").map(|body| body.len()), Ok(1 << 20));
        assert_eq!(ledger.take("unscripted", "u1"), Ok(Bytes::new()));
        assert_eq!(ledger.received(), ["a3", "b2", "d1", "u1"]);
    }
}
