//! Test-only fault injection: a plan of reads and writes to fail, or of writes during which the
//! writer thread panics, so that tests can reach the store's failure paths (the internal-error
//! codes, the writer's supervision and recovery) without breaking a disk.
//!
//! A plan is given at open (`StoreOptions::faults`; the server reads it from its `[testing]`
//! config table) and, in-process, armed with `Store::inject`. A non-empty plan is honoured only
//! when the crate is built with the `fault-injection` feature; otherwise `Store::open_with`
//! refuses it, so a production binary can never be configured to fail on purpose.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use crate::StoreError;

/// Whether this build honours fault plans (the `fault-injection` feature).
pub const FAULT_INJECTION: bool = cfg!(feature = "fault-injection");

/// The faults to inject, each used up as it fires.
///
/// In the server's config:
///
/// ```toml
/// [[testing.faults]]
/// action = "fail_write"   # or "fail_read", "panic_writer", "lose_commit"
/// op = "import_accounts"  # a store operation; absent = any operation of that kind
/// skip = 0                # matching operations let through first
/// times = 1               # how many matching operations then fail
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

/// One fault: which operations it hits and what it does to them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub action: FaultAction,
    /// The store operation (`Store` method name, e.g. `import_accounts`, `create_task`,
    /// `edit_tags`, `get_tags`, `account_ids`); None hits every operation of the action's kind.
    #[serde(default)]
    pub op: Option<String>,
    /// Matching operations that pass before the fault fires.
    #[serde(default)]
    pub skip: u32,
    /// Matching operations that then fail.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// `action` on the next `op`, once.
    pub fn once(action: FaultAction, op: &str) -> Self {
        Self {
            action,
            op: Some(op.to_string()),
            skip: 0,
            times: 1,
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// The write fails as if the storage had failed: its whole commit (every write grouped with
    /// it) is aborted and nothing of it is stored.
    FailWrite,
    /// The read fails as if the storage had failed.
    FailRead,
    /// The writer thread panics while applying the write; the commit is aborted, the writer
    /// carries on with the next one.
    PanicWriter,
    /// The write's commit succeeds but the writer is told it failed, as when the connection to
    /// PostgreSQL breaks during `COMMIT`: its callers get an error, the index has not learnt it,
    /// and the store must bring the index level with what was stored.
    LoseCommit,
}

/// The plan at run time.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// False while the plan is empty: the only cost of fault injection on a normal store.
    armed: AtomicBool,
    plan: Mutex<Vec<Fault>>,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Result<Self, StoreError> {
        if !plan.is_empty() && !FAULT_INJECTION {
            return Err(StoreError::Options(
                "a fault plan ([testing] faults) is only honoured by test builds (the \
                 `fault-injection` feature); this build refuses it"
                    .into(),
            ));
        }
        let faults = Self::default();
        for fault in plan.faults {
            faults.arm(fault);
        }
        Ok(faults)
    }

    /// Whether faults are waiting to fire.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Adds a fault to the plan.
    pub fn arm(&self, fault: Fault) {
        if fault.times == 0 {
            return;
        }
        self.lock().push(fault);
        self.armed.store(true, Ordering::Release);
    }

    /// Fails or panics the write `op` if the plan says so. Runs on the writer thread.
    pub fn before_write(&self, op: &str) -> Result<(), StoreError> {
        let before = |a| !matches!(a, FaultAction::FailRead | FaultAction::LoseCommit);
        match self.fire(op, before) {
            Some(FaultAction::PanicWriter) => {
                panic!("fault plan: the writer panics applying {op}")
            }
            Some(_) => Err(StoreError::Injected(format!(
                "the fault plan failed the write {op}"
            ))),
            None => Ok(()),
        }
    }

    /// Whether the plan hides the commit of the write `op` (`LoseCommit`). Runs on the writer
    /// thread, after the commit.
    pub fn lose_commit(&self, op: &str) -> bool {
        self.fire(op, |a| a == FaultAction::LoseCommit).is_some()
    }

    /// Fails the read `op` if the plan says so.
    pub fn before_read(&self, op: &str) -> Result<(), StoreError> {
        match self.fire(op, |a| a == FaultAction::FailRead) {
            Some(_) => Err(StoreError::Injected(format!(
                "the fault plan failed the read {op}"
            ))),
            None => Ok(()),
        }
    }

    /// The action of the first fault that matches `op` and is due; faults that match but still
    /// skip count it.
    fn fire(&self, op: &str, kind: impl Fn(FaultAction) -> bool) -> Option<FaultAction> {
        if !FAULT_INJECTION || !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut plan = self.lock();
        let mut fired = None;
        for fault in plan.iter_mut() {
            if !kind(fault.action) || fault.op.as_deref().is_some_and(|o| o != op) {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
            } else if fired.is_none() {
                fault.times -= 1;
                fired = Some(fault.action);
            }
        }
        plan.retain(|f| f.times > 0);
        if plan.is_empty() {
            self.armed.store(false, Ordering::Release);
        }
        if let Some(action) = fired {
            tracing::warn!(op, ?action, "fault plan: injecting a fault");
        }
        fired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_skip_then_fire_then_are_used_up() {
        let faults = Faults::new(FaultPlan {
            faults: vec![Fault {
                action: FaultAction::FailWrite,
                op: Some("edit_tags".into()),
                skip: 1,
                times: 2,
            }],
        })
        .unwrap();
        assert!(faults.before_write("import_accounts").is_ok());
        assert!(
            faults.before_read("edit_tags").is_ok(),
            "reads are not writes"
        );
        assert!(faults.before_write("edit_tags").is_ok(), "skipped");
        assert!(faults.before_write("edit_tags").is_err());
        assert!(faults.before_write("edit_tags").is_err());
        assert!(faults.before_write("edit_tags").is_ok(), "used up");
        assert!(!faults.armed.load(Ordering::Acquire));
    }

    #[test]
    fn a_fault_without_op_hits_every_operation_of_its_kind() {
        let faults = Faults::default();
        faults.arm(Fault {
            action: FaultAction::FailRead,
            op: None,
            skip: 0,
            times: 1,
        });
        assert!(faults.before_write("get_tags").is_ok());
        assert!(matches!(
            faults.before_read("account_ids"),
            Err(StoreError::Injected(_))
        ));
    }

    #[test]
    fn plans_parse_from_toml_and_refuse_unknown_keys() {
        let plan: FaultPlan = toml_like(
            r#"{"faults":[{"action":"panic_writer","op":"create_task"},{"action":"fail_read"}]}"#,
        )
        .unwrap();
        assert_eq!(plan.faults[0].action, FaultAction::PanicWriter);
        assert_eq!(plan.faults[0].times, 1);
        assert_eq!(plan.faults[1].op, None);
        assert!(toml_like(r#"{"faults":[{"action":"fail_write","opp":"x"}]}"#).is_err());
        assert!(toml_like(r#"{"faults":[{"action":"explode"}]}"#).is_err());
    }

    fn toml_like(json: &str) -> Result<FaultPlan, serde_json::Error> {
        serde_json::from_str(json)
    }
}
