//! What tagcast sends to the push providers that reach devices whose app is closed (issue 10).
//! Each provider's module builds its requests and reads its answers; sending them, queueing and
//! retrying is the server's.

pub mod webpush;
