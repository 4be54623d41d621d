//! The git commit a benchmark ran at, stamped in every report.

use std::process::Command;
use std::sync::OnceLock;

/// `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes (tracked or
/// untracked files): the scripts pass what they saw before building in `TAGCAST_BENCH_COMMIT`;
/// without it the benchmark asks git at run time. "unknown" outside a git work tree.
pub fn commit() -> &'static str {
    static COMMIT: OnceLock<String> = OnceLock::new();
    COMMIT.get_or_init(|| {
        if let Ok(c) = std::env::var("TAGCAST_BENCH_COMMIT")
            && !c.trim().is_empty()
        {
            return c.trim().to_string();
        }
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git").args(args).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        match git(&["rev-parse", "--short", "HEAD"]) {
            Some(head) if !head.is_empty() => {
                let dirty = git(&["status", "--porcelain"]).is_none_or(|s| !s.is_empty());
                format!("{head}{}", if dirty { "-dirty" } else { "" })
            }
            _ => "unknown".into(),
        }
    })
}

/// The line every report starts with.
pub fn line(what: &str) -> String {
    format!("{what} at commit {}", commit())
}
