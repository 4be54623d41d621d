//! tagcast's TaskId: creation time, app, sequence and MsgRandom in hex, shaped like Tencent's
//! (`batch_` first for a batch push). The sequence inside is how a TaskId finds its task.

use tagcast_store::{AppId, TaskIdParts};

/// The TaskId of a new task.
pub fn format(parts: &TaskIdParts) -> String {
    let prefix = if parts.batch { "batch_" } else { "" };
    format!(
        "{prefix}{:08x}_{:x}_{:x}_{:08x}",
        parts.created_ms / 1000,
        parts.app,
        parts.seq,
        parts.msg_random
    )
}

/// The (app, sequence) a TaskId names, if it has tagcast's shape.
pub fn parse(task_id: &str) -> Option<(AppId, u64)> {
    let rest = task_id.strip_prefix("batch_").unwrap_or(task_id);
    let mut parts = rest.split('_');
    let (_time, app, seq, _random) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((
        AppId::from_str_radix(app, 16).ok()?,
        u64::from_str_radix(seq, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(batch: bool, seq: u64) -> TaskIdParts {
        TaskIdParts {
            batch,
            created_ms: 1_700_000_000_123,
            app: 1_400_000_000,
            seq,
            msg_random: 7,
        }
    }

    #[test]
    fn task_ids_roundtrip() {
        let id = format(&parts(false, 42));
        assert_eq!(id, "6553f100_53724e00_2a_00000007");
        assert_eq!(parse(&id), Some((1_400_000_000, 42)));
        let batch = format(&parts(true, 43));
        assert!(batch.starts_with("batch_"));
        assert_eq!(parse(&batch), Some((1_400_000_000, 43)));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("a_b_c_d_e"), None);
    }
}
