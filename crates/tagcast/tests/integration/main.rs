//! One integration-test binary: each module drives a real `tagcast` process.

mod auth;
mod bad_input;
mod browser;
mod cli_errors;
mod cluster;
mod cluster_push;
mod common;
mod console;
mod delivery;
mod devices;
mod durability;
mod errors;
mod faults;
mod limits;
mod listen;
mod notify;
mod ops;
mod postgres;
mod props;
mod push;
mod samples;
mod smoke;
mod transport;
mod walkthrough;
mod wire;
mod ws;
