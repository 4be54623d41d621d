//! One integration-test binary: each module drives a real `tagcast` process.

mod common;
mod smoke;
