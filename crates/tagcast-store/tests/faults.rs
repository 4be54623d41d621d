//! The store's failure paths: injected write and read failures, a panicking writer, corrupt
//! stored data, and a full disk (a real one: a small tmpfs) that empties again.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redb::TableDefinition;
use tagcast_store::{
    AppId, Fault, FaultAction, HealthStatus, NewTask, PushPolicy, RoaringBitmap, Store, StoreError,
    StoreOptions, TagEdit, TagLimits, TaskKind,
};

const APP: AppId = 1_400_000_001;
const LIMITS: TagLimits = TagLimits {
    max_tags_per_account: 100,
    max_tags_per_app: 100_000,
};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|t| t.to_string()).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn with_store<F: Future<Output = ()>>(test: impl FnOnce(Store, PathBuf) -> F) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::open(dir.path()).unwrap();
        test(store, dir.path().to_path_buf()).await;
    });
}

async fn exists(store: &Store, account: &str) -> bool {
    store.account_ids(APP, &strings(&[account])).await.unwrap()[0].is_some()
}

/// Waits until the writer has recovered from a failure (at once for injected faults).
async fn wait_until_ok(store: &Store, within: Duration) {
    let deadline = Instant::now() + within;
    while !store.health().is_ok() {
        assert!(
            Instant::now() < deadline,
            "still failing: {:?}",
            store.health()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn fault_injection_is_compiled_into_the_stores_tests() {
    const { assert!(tagcast_store::FAULT_INJECTION) };
}

#[test]
fn a_failed_write_stores_nothing_is_reported_and_later_writes_succeed() {
    with_store(|store, _| async move {
        store
            .import_accounts(APP, strings(&["before"]))
            .await
            .unwrap();
        store.inject(Fault::once(FaultAction::FailWrite, "import_accounts"));
        let error = store
            .import_accounts(APP, strings(&["lost"]))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Injected(_)), "{error:?}");
        assert!(error.to_string().contains("import_accounts"), "{error}");
        assert!(
            !exists(&store, "lost").await,
            "a failed write stores nothing"
        );
        assert_eq!(store.with_audience(APP, |i| i.accounts().len()), 1);

        let health = store.health();
        assert_eq!(health.failed_commits, 1, "{health:?}");
        let last = health.last_failure.expect("the failure is remembered");
        assert!(last.reason.contains("import_accounts"), "{last:?}");

        wait_until_ok(&store, Duration::from_secs(5)).await;
        store
            .import_accounts(APP, strings(&["after"]))
            .await
            .unwrap();
        assert!(exists(&store, "after").await);
        assert!(exists(&store, "before").await);
        let health = store.health();
        assert!(health.is_ok(), "{health:?}");
        assert_eq!(health.failed_commits, 1);
        assert_eq!(health.writer_panics, 0);
        assert_eq!(health.reopens, 0, "an injected failure needs no reopen");
    });
}

#[test]
fn a_writer_panic_fails_only_its_batch_and_the_writer_carries_on() {
    with_store(|store, dir| async move {
        store.import_accounts(APP, strings(&["u"])).await.unwrap();
        store.inject(Fault::once(FaultAction::PanicWriter, "edit_tags"));
        let item = |tags: &[&str]| vec![("u".to_string(), strings(tags))];
        let error = store
            .edit_tags(APP, TagEdit::Add, item(&["lost"]), LIMITS)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NotCommitted(_)), "{error:?}");
        assert!(error.to_string().contains("writer failed"), "{error}");

        let health = store.health();
        assert_eq!(health.writer_panics, 1, "{health:?}");
        assert_eq!(health.failed_commits, 1);
        let last = health.last_failure.clone().unwrap();
        assert!(last.reason.contains("panicked"), "{last:?}");
        assert!(last.reason.contains("edit_tags"), "{last:?}");

        wait_until_ok(&store, Duration::from_secs(5)).await;
        store
            .edit_tags(APP, TagEdit::Add, item(&["kept"]), LIMITS)
            .await
            .unwrap();
        assert_eq!(
            store.get_tags(APP, &strings(&["u"])).await.unwrap(),
            vec![Some(strings(&["kept"]))]
        );
        let with_lost = store.with_audience(APP, |i| {
            i.count(&tagcast_audience::Expr::Tag("lost".into()))
        });
        assert_eq!(with_lost, 0, "the index never learnt the panicked write");

        // The file is sound: reopened, it holds the same.
        drop(store);
        let store = reopen(&dir);
        assert_eq!(
            store.get_tags(APP, &strings(&["u"])).await.unwrap(),
            vec![Some(strings(&["kept"]))]
        );
    });
}

#[test]
fn a_failed_read_is_an_error_and_the_next_read_works() {
    with_store(|store, _| async move {
        store.import_accounts(APP, strings(&["u"])).await.unwrap();
        store.inject(Fault::once(FaultAction::FailRead, "get_tags"));
        let error = store.get_tags(APP, &strings(&["u"])).await.unwrap_err();
        assert!(matches!(error, StoreError::Injected(_)), "{error:?}");
        assert_eq!(
            store.get_tags(APP, &strings(&["u"])).await.unwrap(),
            vec![Some(vec![])]
        );
        assert!(store.health().is_ok(), "a failed read is no failed commit");
    });
}

#[test]
fn a_fault_plan_is_given_at_open() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let options = StoreOptions {
            faults: tagcast_store::FaultPlan {
                faults: vec![Fault {
                    action: FaultAction::FailWrite,
                    op: Some("import_accounts".into()),
                    skip: 1,
                    times: 1,
                }],
            },
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), options).unwrap();
        store.import_accounts(APP, strings(&["a"])).await.unwrap();
        assert!(store.import_accounts(APP, strings(&["b"])).await.is_err());
        wait_until_ok(&store, Duration::from_secs(5)).await;
        store.import_accounts(APP, strings(&["c"])).await.unwrap();
        assert!(exists(&store, "a").await && !exists(&store, "b").await);
    });
}

// --- Corrupt stored data ----------------------------------------------------------------------

const ACCOUNT_TAGS: TableDefinition<(AppId, u32), &[u8]> = TableDefinition::new("account_tags");
const ATTR_SCHEMAS: TableDefinition<AppId, &[u8]> = TableDefinition::new("attr_schemas");
const TASKS: TableDefinition<(AppId, u64), &[u8]> = TableDefinition::new("tasks");
const TASK_AUDIENCES: TableDefinition<(AppId, u64), &[u8]> = TableDefinition::new("task_audiences");

/// Opens the store's redb file directly, once the last store handle has let go of it.
fn raw_database(dir: &Path) -> redb::Database {
    let file = dir.join("tagcast.redb");
    for _ in 0..500 {
        if let Ok(db) = redb::Database::create(&file) {
            return db;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    redb::Database::create(&file).expect("opening the store's file")
}

fn reopen(dir: &Path) -> Store {
    for _ in 0..500 {
        if let Ok(store) = Store::open(dir) {
            return store;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Store::open(dir).expect("reopening the store")
}

/// Overwrites one stored value with `bytes`.
fn overwrite<K: redb::Key + 'static>(
    dir: &Path,
    table: TableDefinition<K, &[u8]>,
    key: K::SelfType<'_>,
    bytes: &[u8],
) {
    let db = raw_database(dir);
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, bytes).unwrap();
    txn.commit().unwrap();
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, expected_what: &str) {
    match result {
        Err(StoreError::Corrupt { what, detail }) => {
            assert_eq!(what, expected_what, "{detail}");
        }
        other => panic!("expected corrupt {expected_what}, got {other:?}"),
    }
}

#[test]
fn a_corrupt_tag_list_is_reported_when_the_index_is_rebuilt() {
    with_store(|store, dir| async move {
        store.import_accounts(APP, strings(&["u"])).await.unwrap();
        let item = vec![("u".to_string(), strings(&["vip"]))];
        store
            .edit_tags(APP, TagEdit::Add, item, LIMITS)
            .await
            .unwrap();
        drop(store);
        // Five bytes: not a whole number of tag ids.
        overwrite(&dir, ACCOUNT_TAGS, (APP, 0), &[1, 0, 0, 0, 9]);
        let error = Store::open(&dir)
            .err()
            .expect("a corrupt tag list fails the open");
        assert_corrupt::<()>(Err(error.clone()), "account tag list");
        assert!(error.to_string().contains("(1400000001, 0)"), "{error}");
    });
}

#[test]
fn a_corrupt_schema_fails_reads_and_writes_that_need_it_but_not_the_store() {
    with_store(|store, dir| async move {
        store.import_accounts(APP, strings(&["u"])).await.unwrap();
        drop(store);
        // A slot index past the last slot.
        overwrite(&dir, ATTR_SCHEMAS, APP, &[42, 0, 1, 0, b'x']);
        let store = reopen(&dir);
        assert_corrupt(store.attr_schema(APP).await, "attribute schema");
        assert_corrupt(
            store.get_attrs(APP, &strings(&["u"])).await,
            "attribute schema",
        );
        let attrs = vec![("u".to_string(), [("city".into(), "sz".into())].into())];
        assert_corrupt(store.set_attrs(APP, attrs).await, "attribute schema");
        // Other data and other writes are fine, and the storage is healthy.
        store.import_accounts(APP, strings(&["v"])).await.unwrap();
        assert!(exists(&store, "v").await);
        let health = store.health();
        assert!(health.is_ok(), "{health:?}");
        assert_eq!(health.failed_commits, 1);
    });
}

#[test]
fn corrupt_tasks_and_audiences_are_reported() {
    with_store(|store, dir| async move {
        let task = NewTask {
            kind: TaskKind::All,
            from_account: "admin".into(),
            msg_random: 1,
            content: "{}".into(),
            lifetime_secs: 3600,
            data_id: None,
            has_offline_push_info: false,
            notify_devices: false,
            audience: [0u32].into_iter().collect::<RoaringBitmap>(),
        };
        let policy = PushPolicy {
            daily_quota: None,
            min_interval_ms: 0,
            dedupe_window_ms: 0,
            task_id: |parts| format!("task-{}", parts.seq),
        };
        let now = 1_700_000_000_000;
        store.create_task(APP, task, policy, now).await.unwrap();
        drop(store);
        overwrite(&dir, TASK_AUDIENCES, (APP, 1), b"not a bitmap");
        let store = reopen(&dir);
        assert_corrupt(store.task_audience(APP, 1).await, "task audience");
        assert_corrupt(store.live_tasks(now).await, "task audience");
        drop(store);
        overwrite(&dir, TASKS, (APP, 1), br#"{"task_id":"#);
        let store = reopen(&dir);
        assert_corrupt(store.task(APP, 1).await, "push task");
        assert_corrupt(
            store.tasks_created_between(APP, 0, u64::MAX).await,
            "push task",
        );
        assert_corrupt(store.revoke_task(APP, 1, now, None).await, "push task");
    });
}

// --- A full disk ------------------------------------------------------------------------------

/// A small tmpfs, unmounted (lazily, even while busy) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (and a note on stderr) where mounting is not allowed, e.g. without root.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `dir` with one file until it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0xa5u8; 64 << 10];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_fails_writes_until_space_is_freed_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let data = disk.path().join("data");
    let filler = disk.path().join("filler");
    runtime().block_on(async {
        let options = StoreOptions {
            cache_bytes: 1 << 20,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&data, options.clone()).unwrap();
        let mut acknowledged: Vec<String> = Vec::new();
        let batch_no = std::cell::Cell::new(0);
        let batch = || {
            batch_no.set(batch_no.get() + 1);
            let n = batch_no.get();
            (0..100)
                .map(|i| format!("{n:04}-{i:03}-{}", "x".repeat(200)))
                .collect::<Vec<_>>()
        };
        let first = batch();
        store.import_accounts(APP, first.clone()).await.unwrap();
        acknowledged.extend(first);

        fill(&filler);
        let error = loop {
            let names = batch();
            match store.import_accounts(APP, names.clone()).await {
                Ok(_) => acknowledged.extend(names),
                Err(error) => break error,
            }
            assert!(batch_no.get() < 2000, "the disk never filled up");
        };
        assert!(matches!(error, StoreError::Storage(_)), "{error:?}");
        let health = store.health();
        let HealthStatus::Failing { reason, since_ms } = &health.status else {
            panic!("health must report the failure: {health:?}");
        };
        assert!(reason.contains("No space left on device"), "{reason}");
        assert!(*since_ms > 0);
        // While the disk is full, writes are refused at once, naming the cause.
        let refused = store.import_accounts(APP, batch()).await.unwrap_err();
        assert!(refused.to_string().contains("No space left"), "{refused}");

        std::fs::remove_file(&filler).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names = batch();
            match store.import_accounts(APP, names.clone()).await {
                Ok(_) => {
                    acknowledged.extend(names);
                    break;
                }
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "writes still fail after space was freed: {error}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let health = store.health();
        assert!(health.is_ok(), "{health:?}");
        assert!(
            health.reopens >= 1,
            "redb needs a reopen after an I/O error: {health:?}"
        );
        assert!(health.failed_commits >= 1);
        assert!(
            health
                .last_failure
                .unwrap()
                .reason
                .contains("No space left"),
            "the failure is remembered"
        );

        // Nothing acknowledged is lost: in the index, in the tables, and after a reopen.
        let check = async |store: &Store| {
            let ids = store.account_ids(APP, &acknowledged).await.unwrap();
            let missing = ids.iter().filter(|id| id.is_none()).count();
            assert_eq!(missing, 0, "{missing} acknowledged accounts are missing");
            let indexed = store.with_audience(APP, |i| i.accounts().len());
            assert!(
                indexed >= acknowledged.len() as u64,
                "{indexed} in the index"
            );
        };
        check(&store).await;
        drop(store);
        let store = {
            let mut opened = None;
            for _ in 0..500 {
                if let Ok(store) = Store::open_with(&data, options.clone()) {
                    opened = Some(store);
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            opened.expect("reopening the store")
        };
        check(&store).await;
        drop(store);
    });
    drop(disk);
}
