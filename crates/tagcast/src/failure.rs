//! How a command fails: one plain line on stderr and an exit status that tells the kind of
//! failure, so scripts can tell a bad config from a failure while running.

use std::process::ExitCode;

/// A usage, config or start-up error: fixing the command or the config is needed.
pub const CONFIG: u8 = 2;
/// A failure while running (after start-up), or one that retrying cannot fix.
pub const RUNTIME: u8 = 1;

/// An error and the exit status it ends the process with.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub error: anyhow::Error,
    /// Already written as a log line (JSON logs): not printed again.
    pub logged: bool,
}

impl Failure {
    /// A usage, config or start-up error (exit status 2).
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Self::new(CONFIG, error.into())
    }

    /// A failure while running (exit status 1).
    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Self::new(RUNTIME, error.into())
    }

    fn new(status: u8, error: anyhow::Error) -> Self {
        Self {
            status,
            error,
            logged: false,
        }
    }

    /// The message: the error and its causes on one line, each cause once.
    pub fn message(&self) -> String {
        one_line(&self.error)
    }

    /// Prints the message on stderr (unless logged) and returns the exit status.
    pub fn report(self) -> ExitCode {
        if !self.logged {
            eprintln!("error: {}", self.message());
        }
        ExitCode::from(self.status)
    }
}

/// `error: cause: cause`, leaving out a cause whose text the message already holds (many errors
/// quote their source), and without a backtrace whatever RUST_BACKTRACE says.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message quotes its source, as many `thiserror` errors do.
    #[derive(Debug)]
    struct QuotesItsSource(std::io::Error);

    impl std::fmt::Display for QuotesItsSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read TLS key /etc/k.pem: {}", self.0)
        }
    }

    impl std::error::Error for QuotesItsSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_quoted_cause_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let error = anyhow::Error::new(QuotesItsSource(io));
        assert_eq!(
            one_line(&error),
            "cannot read TLS key /etc/k.pem: No such file"
        );
    }

    #[test]
    fn other_causes_are_chained() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let error = anyhow::Error::new(io).context("cannot read /x");
        assert_eq!(one_line(&error), "cannot read /x: No such file");
    }
}
