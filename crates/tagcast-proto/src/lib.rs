//! Wire types of Tencent Cloud Chat's push REST API: the error-code table, the response envelope
//! and the request and response bodies, with Tencent's exact JSON field names.

mod code;
mod envelope;
pub mod requests;
pub mod responses;

pub use code::Code;
pub use envelope::{ApiError, Envelope, ErrorItem};
