//! Wall-clock time as the API speaks it: unix seconds and milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn now_unix() -> u64 {
    now_ms() / 1000
}
