//! Real delivery of pushes: connected accounts get them over WebSocket at once, offline ones when
//! they next connect (within the push's lifetime), each in order and once; every delivery is
//! recorded for the reports and, when the app has a callback URL, reported to it.

mod callback;
mod hub;
mod keepalive;
mod notifier;
mod providers;
mod recorder;
mod session;

pub use callback::Callbacks;
pub use hub::Hub;
pub use notifier::{Notifier, alert_of};
pub use providers::Providers;
pub use recorder::Recorder;
pub use session::websocket;
