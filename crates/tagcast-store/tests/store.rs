//! The store through its public API: dense account ids, app isolation, exact tag refcounts and
//! distinct-tag counts (checked against a model), refused writes, group commit, reopening.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tagcast_store::{
    AccountId, AccountKind, AppId, CallbackBatch, Deliveries, DeviceSend, ItemError, ItemResult,
    Location, MAX_CALLBACK_BATCHES, NewDevice, NewTask, Platform, Progress, PushPolicy, Registered,
    RequestError, RoaringBitmap, SendStatus, Settled, SlotUpdate, Store, TagEdit, TagLimits,
    TaskKind, registration_id,
};

const APP: AppId = 1_400_000_001;
const OTHER: AppId = 1_400_000_002;

const NO_LIMITS: TagLimits = limits(1000, 100_000);

/// The account the distinct-tag probe writes to; tests never use it otherwise.
const PROBE: &str = "__probe";
const PROBE_TAG: &str = "__probe_tag";

fn s(v: &str) -> String {
    v.to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|t| t.to_string()).collect()
}

const fn limits(max_tags_per_account: usize, max_tags_per_app: usize) -> TagLimits {
    TagLimits {
        max_tags_per_account,
        max_tags_per_app,
    }
}

/// Runs `test` on a current-thread runtime with a store opened in a fresh temp dir, whose path
/// it is given for reopening.
fn with_store<F: Future<Output = ()>>(test: impl FnOnce(Store, PathBuf) -> F) {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let store = Store::open(dir.path()).unwrap();
            test(store, dir.path().to_path_buf()).await;
        });
}

/// Closes `store` and opens the one in `dir` again: once closed, the file is free at once.
fn reopen(store: Store, dir: &Path) -> Store {
    let clone = store.clone();
    assert!(
        !clone.close(Duration::from_millis(50)),
        "closed while a handle is left"
    );
    assert!(
        store.close(Duration::from_secs(10)),
        "the store did not close"
    );
    Store::open(dir).expect("reopening the store")
}

async fn import(store: &Store, app: AppId, names: &[&str]) -> Vec<bool> {
    store
        .import_accounts(app, strings(names))
        .await
        .expect("import")
}

async fn edit(
    store: &Store,
    app: AppId,
    edit: TagEdit,
    account: &str,
    tags: &[&str],
    limits: TagLimits,
) -> ItemResult {
    let mut results = store
        .edit_tags(app, edit, vec![(s(account), strings(tags))], limits)
        .await
        .expect("edit_tags");
    assert_eq!(results.len(), 1);
    results.pop().unwrap()
}

/// Asserts that `edit` of `tags` on `account` (in APP, under `limits`) has the result `expected`.
async fn assert_edit(
    store: &Store,
    edit_kind: TagEdit,
    account: &str,
    tags: &[&str],
    limits: TagLimits,
    expected: ItemResult,
) {
    let got = edit(store, APP, edit_kind, account, tags, limits).await;
    assert_eq!(got, expected, "{edit_kind:?} {tags:?} on {account}");
}

/// A `SlotUpdate` naming `slot`.
fn slot(slot: u8, name: &str, account_type: Option<u8>) -> SlotUpdate {
    SlotUpdate {
        slot,
        name: s(name),
        account_type,
    }
}

/// One account's attributes: `{k: v}`.
fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

async fn tags_of(store: &Store, app: AppId, account: &str) -> Option<Vec<String>> {
    store
        .get_tags(app, &[s(account)])
        .await
        .expect("get_tags")
        .pop()
        .unwrap()
}

async fn attrs_of(store: &Store, app: AppId, account: &str) -> Option<BTreeMap<String, String>> {
    store
        .get_attrs(app, &[s(account)])
        .await
        .expect("get_attrs")
        .pop()
        .unwrap()
}

async fn id_of(store: &Store, app: AppId, account: &str) -> Option<AccountId> {
    store
        .account_ids(app, &[s(account)])
        .await
        .expect("ids")
        .pop()
        .unwrap()
}

/// The number of distinct tags the store counts for `app`, found exactly through the app limit:
/// one brand-new tag must be refused with a cap of `live` and accepted with a cap of `live + 1`.
/// The probe account must exist and be tagless; it is left tagless.
async fn assert_distinct_tags(store: &Store, app: AppId, expected: usize) {
    let at = |cap| limits(1000, cap);
    assert_eq!(
        edit(store, app, TagEdit::Add, PROBE, &[PROBE_TAG], at(expected)).await,
        Err(ItemError::TooManyTagsForApp { limit: expected }),
        "app {app} counts fewer than {expected} distinct tags"
    );
    assert_eq!(
        edit(
            store,
            app,
            TagEdit::Add,
            PROBE,
            &[PROBE_TAG],
            at(expected + 1)
        )
        .await,
        Ok(()),
        "app {app} counts more than {expected} distinct tags"
    );
    assert_eq!(
        edit(store, app, TagEdit::Remove, PROBE, &[PROBE_TAG], at(0)).await,
        Ok(())
    );
    assert_eq!(tags_of(store, app, PROBE).await, Some(vec![]));
}

#[test]
fn account_ids_are_dense_per_app_and_never_reused() {
    with_store(|store, dir| async move {
        assert_eq!(
            import(&store, APP, &["a", "b", "c"]).await,
            [true, true, true]
        );
        assert_eq!(import(&store, OTHER, &["x", "a"]).await, [true, true]);
        // Importing twice is harmless: same id, not new.
        assert_eq!(import(&store, APP, &["b", "d"]).await, [false, true]);
        let ids = store
            .account_ids(APP, &strings(&["a", "b", "c", "d", "x"]))
            .await
            .unwrap();
        assert_eq!(ids, [Some(0), Some(1), Some(2), Some(3), None]);
        let ids = store
            .account_ids(OTHER, &strings(&["x", "a", "b"]))
            .await
            .unwrap();
        assert_eq!(ids, [Some(0), Some(1), None]);
        // A deleted account's id is not handed out again.
        assert_eq!(
            store
                .delete_accounts(APP, strings(&["b", "zz"]))
                .await
                .unwrap(),
            [true, false]
        );
        assert_eq!(import(&store, APP, &["e", "b"]).await, [true, true]);
        assert_eq!(id_of(&store, APP, "e").await, Some(4));
        assert_eq!(id_of(&store, APP, "b").await, Some(5));
        assert_eq!(import(&store, OTHER, &["y"]).await, [true]);
        assert_eq!(id_of(&store, OTHER, "y").await, Some(2));
        // The counters are durable: after reopening, numbering continues.
        let store = reopen(store, &dir);
        assert_eq!(id_of(&store, APP, "a").await, Some(0));
        assert_eq!(import(&store, APP, &["f"]).await, [true]);
        assert_eq!(id_of(&store, APP, "f").await, Some(6));
    });
}

#[test]
fn apps_never_see_each_other() {
    with_store(|store, _| async move {
        import(&store, APP, &["u", "only_app", PROBE]).await;
        import(&store, OTHER, &["u", PROBE]).await;
        for (app, slots) in [
            (APP, vec![slot(0, "sex", None), slot(1, "city", None)]),
            (OTHER, vec![slot(0, "level", None)]),
        ] {
            store.set_attr_names(app, slots).await.unwrap().unwrap();
        }
        assert_eq!(
            store.attr_schema(APP).await.unwrap().slot_of("city"),
            Some(1)
        );
        assert_eq!(
            store.attr_schema(OTHER).await.unwrap().slot_of("city"),
            None
        );
        assert_eq!(
            store.attr_schema(OTHER).await.unwrap().slot_of("level"),
            Some(0)
        );

        // (app, account, attribute, value, result)
        let writes = [
            (APP, "u", "sex", "male", Ok(vec![Ok(())])),
            // Another app's attribute name is unknown here: the whole write is refused.
            (
                OTHER,
                "u",
                "sex",
                "female",
                Err(RequestError::UnknownAttribute(s("sex"))),
            ),
            (OTHER, "u", "level", "9", Ok(vec![Ok(())])),
            // An account of one app does not exist in the other.
            (
                OTHER,
                "only_app",
                "level",
                "1",
                Ok(vec![Err(ItemError::AccountNotFound)]),
            ),
        ];
        for (app, account, key, value, expected) in writes {
            let item = (s(account), attrs(&[(key, value)]));
            let r = store.set_attrs(app, vec![item]).await.unwrap();
            assert_eq!(r, expected, "{app} {account} {key}={value}");
        }

        edit(&store, APP, TagEdit::Add, "u", &["gold", "vip"], NO_LIMITS)
            .await
            .unwrap();
        edit(&store, OTHER, TagEdit::Add, "u", &["silver"], NO_LIMITS)
            .await
            .unwrap();
        assert_eq!(
            edit(&store, OTHER, TagEdit::Add, "only_app", &["x"], NO_LIMITS).await,
            Err(ItemError::AccountNotFound)
        );
        assert_eq!(
            tags_of(&store, APP, "u").await,
            Some(strings(&["gold", "vip"]))
        );
        assert_eq!(
            tags_of(&store, OTHER, "u").await,
            Some(strings(&["silver"]))
        );
        assert_eq!(tags_of(&store, OTHER, "only_app").await, None);
        assert_eq!(
            attrs_of(&store, APP, "u").await,
            Some(attrs(&[("sex", "male")]))
        );
        assert_eq!(
            attrs_of(&store, OTHER, "u").await,
            Some(attrs(&[("level", "9")]))
        );
        assert_distinct_tags(&store, APP, 2).await;
        assert_distinct_tags(&store, OTHER, 1).await;

        // Deleting in one app leaves the other's account, tags and attributes alone.
        assert_eq!(
            store.delete_accounts(OTHER, strings(&["u"])).await.unwrap(),
            [true]
        );
        assert_eq!(tags_of(&store, OTHER, "u").await, None);
        assert_eq!(attrs_of(&store, OTHER, "u").await, None);
        assert_eq!(
            tags_of(&store, APP, "u").await,
            Some(strings(&["gold", "vip"]))
        );
        assert_eq!(
            attrs_of(&store, APP, "u").await,
            Some(attrs(&[("sex", "male")]))
        );
        assert_distinct_tags(&store, APP, 2).await;
        assert_distinct_tags(&store, OTHER, 0).await;

        // Re-imported, the account starts empty.
        import(&store, OTHER, &["u"]).await;
        assert_eq!(tags_of(&store, OTHER, "u").await, Some(vec![]));
        assert_eq!(attrs_of(&store, OTHER, "u").await, Some(BTreeMap::new()));
    });
}

#[test]
fn distinct_tag_count_follows_add_replace_remove_and_delete() {
    use TagEdit::{Add, Remove, Replace};
    with_store(|store, dir| async move {
        import(&store, APP, &["a", "b", "c", PROBE]).await;
        let cap3 = limits(100, 3);
        let too_many = || Err(ItemError::TooManyTagsForApp { limit: 3 });
        assert_edit(&store, Add, "a", &["x", "y"], cap3, Ok(())).await;
        assert_edit(&store, Add, "b", &["y", "z"], cap3, Ok(())).await;
        assert_distinct_tags(&store, APP, 3).await;
        // At the cap: a brand-new tag is refused, an existing one is fine.
        assert_edit(&store, Add, "c", &["w"], cap3, too_many()).await;
        assert_edit(&store, Add, "c", &["x", "y", "z"], cap3, Ok(())).await;
        assert_eq!(
            tags_of(&store, APP, "c").await,
            Some(strings(&["x", "y", "z"]))
        );
        assert_distinct_tags(&store, APP, 3).await;
        // Removing a tag some other account still has frees nothing.
        assert_edit(&store, Remove, "c", &["z", "nope"], cap3, Ok(())).await;
        assert_edit(&store, Remove, "b", &["z"], cap3, Ok(())).await;
        // Now no account has z: one slot free.
        assert_distinct_tags(&store, APP, 2).await;
        assert_edit(&store, Add, "c", &["w"], cap3, Ok(())).await;
        assert_distinct_tags(&store, APP, 3).await;
        // Replace counts what the same write frees: c holds w alone, so w -> v fits.
        assert_edit(&store, Replace, "c", &["v", "x"], cap3, Ok(())).await;
        assert_eq!(tags_of(&store, APP, "c").await, Some(strings(&["v", "x"])));
        assert_distinct_tags(&store, APP, 3).await;
        // ...but x is shared, so replacing x as well does not free it.
        assert_edit(&store, Replace, "c", &["v", "u", "t"], cap3, too_many()).await;
        assert_eq!(tags_of(&store, APP, "c").await, Some(strings(&["v", "x"])));
        // Deleting an account releases its tags: a has x, y; b has y; c has v, x.
        for (account, distinct_after) in [("c", 2), ("a", 1)] {
            let deleted = store.delete_accounts(APP, strings(&[account])).await;
            assert_eq!(deleted.unwrap(), [true], "{account}");
            assert_distinct_tags(&store, APP, distinct_after).await;
        }
        // A freed tag that comes back is a new tag again, and reads by its name.
        assert_edit(&store, Add, "b", &["x", "z", "w"], cap3, too_many()).await;
        assert_edit(&store, Add, "b", &["x", "z"], cap3, Ok(())).await;
        assert_eq!(
            tags_of(&store, APP, "b").await,
            Some(strings(&["y", "x", "z"]))
        );
        // Clearing releases everything.
        assert_eq!(
            store.clear_tags(APP, strings(&["b"]), cap3).await.unwrap(),
            [Ok(())]
        );
        assert_distinct_tags(&store, APP, 0).await;
        let store = reopen(store, &dir);
        assert_distinct_tags(&store, APP, 0).await;
        assert_eq!(tags_of(&store, APP, "b").await, Some(vec![]));
        assert_eq!(tags_of(&store, APP, "a").await, None);
    });
}

#[test]
fn per_account_cap_counts_distinct_tags_and_never_blocks_shrinking() {
    use TagEdit::{Add, Remove, Replace};
    with_store(|store, _| async move {
        import(&store, APP, &["a"]).await;
        let cap = limits(3, 100);
        let too_many = || {
            Err(ItemError::TooManyTagsForAccount {
                would_have: 4,
                limit: 3,
            })
        };
        // Duplicates inside one write count once.
        assert_edit(&store, Add, "a", &["x", "y", "x", "y"], cap, Ok(())).await;
        // Adding what the account already has is a no-op.
        assert_edit(&store, Add, "a", &["y", "x", "z"], cap, Ok(())).await;
        assert_eq!(
            tags_of(&store, APP, "a").await,
            Some(strings(&["x", "y", "z"]))
        );
        assert_edit(&store, Add, "a", &["w"], cap, too_many()).await;
        assert_edit(&store, Replace, "a", &["p", "q", "r", "s"], cap, too_many()).await;
        assert_eq!(
            tags_of(&store, APP, "a").await,
            Some(strings(&["x", "y", "z"]))
        );
        // A tighter cap never stops a write that does not grow the account.
        let tighter = limits(1, 1);
        assert_edit(&store, Replace, "a", &["z", "y"], tighter, Ok(())).await;
        assert_eq!(tags_of(&store, APP, "a").await, Some(strings(&["z", "y"])));
        assert_edit(&store, Remove, "a", &["y"], tighter, Ok(())).await;
        assert_eq!(tags_of(&store, APP, "a").await, Some(strings(&["z"])));
    });
}

#[test]
fn refused_writes_store_nothing() {
    with_store(|store, dir| async move {
        import(&store, APP, &["a", "b"]).await;
        store
            .set_attr_names(APP, vec![slot(0, "sex", Some(0)), slot(1, "city", None)])
            .await
            .unwrap()
            .unwrap();
        let schema = store.attr_schema(APP).await.unwrap();
        let before = attrs(&[("sex", "m")]);
        let r = store
            .set_attrs(APP, vec![(s("a"), before.clone())])
            .await
            .unwrap();
        assert_eq!(r, Ok(vec![Ok(())]));

        // A refused write and a good one, submitted together: the good one lands, the refused
        // one leaves no trace, even for the accounts listed before the unknown name.
        let refused = store.set_attrs(
            APP,
            vec![
                (s("b"), attrs(&[("city", "sz")])),
                (s("a"), attrs(&[("city", "bj"), ("nope", "1")])),
            ],
        );
        let good = store.edit_tags(
            APP,
            TagEdit::Add,
            vec![(s("b"), strings(&["kept"]))],
            NO_LIMITS,
        );
        let refused_remove = store.remove_attrs(APP, vec![(s("a"), strings(&["sex", "missing"]))]);
        let (refused, good, refused_remove) = tokio::join!(refused, good, refused_remove);
        assert_eq!(
            refused.unwrap(),
            Err(RequestError::UnknownAttribute(s("nope")))
        );
        assert_eq!(good.unwrap(), [Ok(())]);
        assert_eq!(
            refused_remove.unwrap(),
            Err(RequestError::UnknownAttribute(s("missing")))
        );

        // Attribute names: a duplicate name or a changed type refuses the whole update.
        let refusals = [
            (
                slot(3, "city", None),
                RequestError::DuplicateAttrName {
                    name: s("city"),
                    slot: 1,
                },
            ),
            (
                slot(0, "sex", Some(1)),
                RequestError::AttrTypeChange {
                    slot: 0,
                    current: 0,
                },
            ),
        ];
        for (update, expected) in refusals {
            let r = store
                .set_attr_names(APP, vec![slot(2, "tier", None), update])
                .await
                .unwrap();
            assert_eq!(r, Err(expected));
        }

        let check = async |store: &Store| {
            assert_eq!(store.attr_schema(APP).await.unwrap(), schema);
            assert_eq!(attrs_of(store, APP, "a").await, Some(before.clone()));
            assert_eq!(attrs_of(store, APP, "b").await, Some(BTreeMap::new()));
            assert_eq!(tags_of(store, APP, "b").await, Some(strings(&["kept"])));
        };
        check(&store).await;
        check(&reopen(store, &dir)).await;
    });
}

/// Every callback batch waiting, whenever due.
async fn outbox(store: &Store) -> Vec<CallbackBatch> {
    store.due_callbacks(u64::MAX, usize::MAX).await.unwrap()
}

#[test]
fn the_callback_outbox_is_bounded_per_app_and_settles_each_batch() {
    with_store(|store, dir| async move {
        let bodies = (0..MAX_CALLBACK_BATCHES + 3)
            .map(|i| (APP, format!("{{\"n\":{i}}}")))
            .collect();
        let dropped = store.record_deliveries(vec![], vec![], bodies).await;
        let full = MAX_CALLBACK_BATCHES as usize;
        assert_eq!(dropped.unwrap(), vec![full, full + 1, full + 2]);
        let other = vec![(OTHER, "other".to_string())];
        let dropped = store.record_deliveries(vec![], vec![], other).await;
        assert!(dropped.unwrap().is_empty(), "each app has its own room");
        let waiting = outbox(&store).await;
        assert_eq!(waiting.len(), full + 1);
        assert!(waiting.iter().all(|b| b.callback.attempts == 0));
        assert!(
            store.due_callbacks(0, 10).await.unwrap().is_empty(),
            "nothing is due before it was queued"
        );
        assert_eq!(store.due_callbacks(u64::MAX, 7).await.unwrap().len(), 7);

        let (retried, sent) = (&waiting[0], &waiting[1]);
        let later = u64::MAX - 1;
        store
            .settle_callbacks(vec![
                (
                    retried.app,
                    retried.id,
                    Settled::Retry {
                        next_attempt_ms: later,
                    },
                ),
                (sent.app, sent.id, Settled::Done),
            ])
            .await
            .unwrap();
        let due_now = store.due_callbacks(later - 1, usize::MAX).await.unwrap();
        assert_eq!(due_now.len(), full - 1, "one sent, one due later");
        let store = reopen(store, &dir);
        let waiting = outbox(&store).await;
        assert_eq!(waiting.len(), full, "the outbox survives a restart");
        let again = waiting.iter().find(|b| b.id == retried.id).unwrap();
        assert_eq!(again.callback.attempts, 1);
        assert_eq!(again.callback.body, retried.callback.body);
        assert!(!waiting.iter().any(|b| b.id == sent.id));
    });
}

/// Fills an embedded store with `fill`, migrates it into an empty one, and runs `check` on the
/// target with the target's record counts and what `fill` returned.
fn migrated<T>(
    fill: impl AsyncFnOnce(&Store) -> T,
    check: impl AsyncFnOnce(Store, tagcast_store::RecordCounts, T),
) {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let filled = runtime.block_on(async {
        let store = Store::open(from.path()).unwrap();
        let filled = fill(&store).await;
        assert!(store.close(Duration::from_secs(10)));
        filled
    });
    let (source, target) = (
        Location::Embedded(from.path().to_path_buf()),
        Location::Embedded(to.path().to_path_buf()),
    );
    let migrated = tagcast_store::migrate(&source, &target, |_, _| {}).unwrap();
    runtime
        .block_on(async { check(Store::open(to.path()).unwrap(), migrated.target, filled).await });
}

#[test]
fn migrate_copies_the_callbacks_still_waiting() {
    migrated(
        async |store| {
            let bodies = vec![(APP, "a".to_string()), (OTHER, "b".to_string())];
            store
                .record_deliveries(vec![], vec![], bodies)
                .await
                .unwrap();
            outbox(store).await
        },
        async |store, counts, before| {
            assert_eq!(counts.callbacks, 2);
            assert_eq!(outbox(&store).await, before);
        },
    );
}

fn apns(token: &str) -> NewDevice {
    NewDevice {
        platform: Platform::Apns,
        token: token.into(),
        sandbox: false,
    }
}

/// The RegistrationIDs of the account's devices, oldest first.
async fn device_ids(store: &Store, account: AccountId) -> Vec<String> {
    let devices = store.devices(APP, account).await.unwrap();
    devices.into_iter().map(|d| d.registration_id).collect()
}

#[test]
fn devices_register_once_move_between_accounts_and_stay_within_the_limit() {
    with_store(|store, dir| async move {
        import(&store, APP, &["ann", "bob"]).await;
        let ann = id_of(&store, APP, "ann").await.unwrap();
        let bob = id_of(&store, APP, "bob").await.unwrap();
        let first = store
            .register_device(APP, Some(ann), apns("aa"), 2, 1)
            .await
            .unwrap()
            .unwrap();
        let again = store
            .register_device(APP, Some(ann), apns("aa"), 2, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            first.registration_id, again.registration_id,
            "the same device, the same id"
        );
        assert_eq!(
            device_ids(&store, ann).await,
            vec![first.registration_id.clone()]
        );

        // Registered by another account, the device moves.
        store
            .register_device(APP, Some(bob), apns("aa"), 2, 3)
            .await
            .unwrap()
            .unwrap();
        assert!(device_ids(&store, ann).await.is_empty());
        assert_eq!(
            device_ids(&store, bob).await,
            vec![first.registration_id.clone()]
        );

        // A third device of bob's drops his oldest.
        let second = store
            .register_device(APP, Some(bob), apns("bb"), 2, 4)
            .await
            .unwrap()
            .unwrap();
        let third = store
            .register_device(APP, Some(bob), apns("cc"), 2, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(third.dropped, vec![first.registration_id.clone()]);
        let kept = vec![
            second.registration_id.clone(),
            third.registration_id.clone(),
        ];
        assert_eq!(device_ids(&store, bob).await, kept);

        // Only its owner's unregistration counts; an admin's (no account) always does.
        let id = second.registration_id.clone();
        assert!(
            !store
                .unregister_device(APP, Some(ann), id.clone())
                .await
                .unwrap()
        );
        assert!(
            store
                .unregister_device(APP, Some(bob), id.clone())
                .await
                .unwrap()
        );
        assert!(!store.unregister_device(APP, None, id).await.unwrap());
        let store = reopen(store, &dir);
        assert_eq!(
            device_ids(&store, bob).await,
            vec![third.registration_id.clone()]
        );
        let device = &store.devices(APP, bob).await.unwrap()[0];
        assert_eq!(
            (device.platform, device.token.as_str()),
            (Platform::Apns, "cc")
        );

        // Deleting the account deletes its devices.
        store.delete_accounts(APP, strings(&["bob"])).await.unwrap();
        assert!(device_ids(&store, bob).await.is_empty());
        let gone = third.registration_id;
        assert!(!store.unregister_device(APP, None, gone).await.unwrap());
    });
}

async fn register_alone(store: &Store, token: &str) -> Result<Registered, RequestError> {
    store
        .register_device(APP, None, apns(token), 10, 1)
        .await
        .unwrap()
}

fn bound(what: &'static str, name: &str, bound_to: AccountKind) -> ItemResult {
    Err(ItemError::AccountTypeMismatch {
        what,
        name: s(name),
        bound_to,
    })
}

#[test]
fn a_device_registered_alone_is_a_registration_id_account_of_its_own_tags_and_slots() {
    with_store(|store, dir| async move {
        import(&store, APP, &["ann"]).await;
        let ann = id_of(&store, APP, "ann").await.unwrap();
        let rid = register_alone(&store, "aa").await.unwrap().registration_id;
        let account = id_of(&store, APP, &rid).await.expect("its account");
        assert_eq!(device_ids(&store, account).await, vec![rid.clone()]);
        assert_eq!(
            register_alone(&store, "aa").await.unwrap().registration_id,
            rid
        );
        assert_eq!(
            id_of(&store, APP, &rid).await,
            Some(account),
            "the same account"
        );

        // A tag is for the kind of account that first had it.
        let (l, rid_kind, user_kind) = (
            limits(100, 1000),
            AccountKind::RegistrationId,
            AccountKind::UserId,
        );
        assert_edit(&store, TagEdit::Add, &rid, &["beta"], l, Ok(())).await;
        let mismatch = bound("tag", "beta", rid_kind);
        assert_edit(&store, TagEdit::Add, "ann", &["beta"], l, mismatch.clone()).await;
        assert_edit(&store, TagEdit::Add, "ann", &["vip"], l, Ok(())).await;
        let other = bound("tag", "vip", user_kind);
        assert_edit(&store, TagEdit::Replace, &rid, &["beta", "vip"], l, other).await;
        assert_eq!(tags_of(&store, APP, &rid).await, Some(strings(&["beta"])));

        // An attribute slot is for the accounts of its AttrTypes.
        let names = vec![slot(0, "city", None), slot(1, "model", Some(1))];
        store.set_attr_names(APP, names).await.unwrap().unwrap();
        let items = vec![
            (rid.clone(), attrs(&[("model", "x1")])),
            (s("ann"), attrs(&[("model", "x1")])),
            (rid.clone(), attrs(&[("city", "sz")])),
            (s("ann"), attrs(&[("city", "sz")])),
        ];
        let results = store.set_attrs(APP, items).await.unwrap().unwrap();
        let expected = vec![
            Ok(()),
            bound("attribute", "model", rid_kind),
            bound("attribute", "city", user_kind),
            Ok(()),
        ];
        assert_eq!(results, expected);

        // Its one device is its own; a UserID account keeps its name.
        let another = store
            .register_device(APP, Some(account), apns("bb"), 10, 2)
            .await;
        assert_eq!(
            another.unwrap(),
            Err(RequestError::OwnDeviceOnly(rid.clone()))
        );
        let squatter = registration_id(APP, Platform::Apns, "cc");
        import(&store, APP, &[&squatter]).await;
        assert_eq!(
            register_alone(&store, "cc").await,
            Err(RequestError::NameOfUserId(squatter))
        );

        // The kinds outlive a reopen.
        let store = reopen(store, &dir);
        assert_edit(&store, TagEdit::Add, "ann", &["beta"], l, mismatch).await;

        // Moving to ann, the device takes its account's tags and attributes with it.
        let moved = store
            .register_device(APP, Some(ann), apns("aa"), 10, 3)
            .await;
        assert_eq!(moved.unwrap().unwrap().registration_id, rid);
        assert_eq!(id_of(&store, APP, &rid).await, None);
        assert_eq!(device_ids(&store, ann).await, vec![rid.clone()]);
        assert_edit(&store, TagEdit::Add, "ann", &["beta"], l, Ok(())).await;

        // Unregistered, it takes its account.
        let alone = register_alone(&store, "dd").await.unwrap().registration_id;
        assert!(id_of(&store, APP, &alone).await.is_some());
        assert!(
            store
                .unregister_device(APP, None, alone.clone())
                .await
                .unwrap()
        );
        assert_eq!(id_of(&store, APP, &alone).await, None);
    });
}

/// A push to `audience` that notifies devices; its sequence number.
async fn device_push(store: &Store, audience: &[AccountId]) -> u64 {
    device_push_at(store, audience, 1_000).await
}

/// `device_push`, made at `now_ms` (it lives an hour).
async fn device_push_at(store: &Store, audience: &[AccountId], now_ms: u64) -> u64 {
    let task = NewTask {
        kind: TaskKind::All,
        from_account: "admin".into(),
        msg_random: rand_seed(audience),
        content: "{}".into(),
        lifetime_secs: 3600,
        data_id: None,
        has_offline_push_info: true,
        notify_devices: true,
        audience: audience.iter().copied().collect(),
    };
    let policy = PushPolicy {
        daily_quota: None,
        min_interval_ms: 0,
        dedupe_window_ms: 0,
        task_id: |parts| format!("task-{}", parts.seq),
    };
    match store.create_task(APP, task, policy, now_ms).await.unwrap() {
        tagcast_store::Created::New(meta) => meta.seq,
        other => panic!("not created: {other:?}"),
    }
}

fn rand_seed(audience: &[AccountId]) -> u32 {
    audience.iter().sum::<u32>() + audience.len() as u32
}

fn send(registration_id: &str, status: SendStatus, next_attempt_ms: u64) -> DeviceSend {
    DeviceSend {
        registration_id: registration_id.into(),
        platform: Platform::Apns,
        status,
        reason: String::new(),
        attempts: 1,
        next_attempt_ms,
        at_ms: 2_000,
    }
}

#[test]
fn a_device_fan_out_resumes_where_it_was_recorded_and_keeps_its_retries_due() {
    with_store(|store, dir| async move {
        import(&store, APP, &["ann", "bob", "cy", "dee"]).await;
        let mut ids = Vec::new();
        for name in ["ann", "bob", "cy", "dee"] {
            ids.push(id_of(&store, APP, name).await.unwrap());
        }
        let (ann, bob, cy, dee) = (ids[0], ids[1], ids[2], ids[3]);
        let a = store
            .register_device(APP, Some(ann), apns("aa"), 5, 1)
            .await
            .unwrap()
            .unwrap();
        let b = store
            .register_device(APP, Some(bob), apns("bb"), 5, 1)
            .await
            .unwrap()
            .unwrap();
        store
            .register_device(APP, Some(cy), apns("cc"), 5, 1)
            .await
            .unwrap()
            .unwrap();
        // dee has no device; the push leaves cy out.
        let seq = device_push(&store, &[ann, bob, dee]).await;
        assert_eq!(store.open_dispatches().await.unwrap(), vec![(APP, seq)]);
        let fan_out = store.fan_out(APP, seq).await.unwrap().unwrap();
        let targets: Vec<u32> = fan_out.targets.iter().collect();
        assert_eq!(
            targets,
            vec![ann, bob],
            "the audience's accounts with devices"
        );

        // ann was reached online: only bob's device is to be notified.
        let online = deliveries(seq, 1, &[ann], &[]);
        store
            .record_deliveries(vec![online], vec![], vec![])
            .await
            .unwrap();
        let batch = store.batch_devices(APP, seq, vec![ann]).await.unwrap();
        assert_eq!((batch.reached_online, batch.devices.len()), (vec![ann], 0));

        // The first batch (ann) is recorded; a crash then loses nothing recorded.
        let mut progress = Progress {
            next_account: Some(u64::from(ann) + 1),
            ..Progress::default()
        };
        progress.report.reached_online = 1;
        store.record_progress(APP, seq, progress).await.unwrap();
        let store = reopen(store, &dir);
        let fan_out = store.fan_out(APP, seq).await.unwrap().unwrap();
        assert_eq!(fan_out.targets.iter().collect::<Vec<_>>(), vec![bob]);
        let batch = store.batch_devices(APP, seq, vec![bob]).await.unwrap();
        assert_eq!(batch.devices[0].registration_id, b.registration_id);

        // bob's device asks to try again later; the fan-out is done.
        let mut progress = Progress {
            next_account: Some(u64::from(bob) + 1),
            finished: true,
            sends: vec![(
                bob,
                vec![send(&b.registration_id, SendStatus::Retrying, 5_000)],
            )],
            ..Progress::default()
        };
        progress.report.apns.requests = 1;
        progress.report.apns.retries = 1;
        store.record_progress(APP, seq, progress).await.unwrap();
        assert!(store.open_dispatches().await.unwrap().is_empty());
        assert!(store.due_sends(4_999, 10).await.unwrap().is_empty());
        let due = store.due_sends(5_000, 10).await.unwrap();
        assert_eq!((due.len(), due[0].account), (1, bob));

        // Its retry finds it gone: it leaves the store, and nothing is due any more.
        let mut progress = Progress {
            sends: vec![(bob, vec![send(&b.registration_id, SendStatus::Gone, 0)])],
            gone: vec![b.registration_id.clone()],
            ..Progress::default()
        };
        progress.report.apns.requests = 1;
        progress.report.apns.gone = 1;
        store.record_progress(APP, seq, progress).await.unwrap();
        assert!(store.due_sends(u64::MAX, 10).await.unwrap().is_empty());
        assert!(device_ids(&store, bob).await.is_empty());
        assert_eq!(device_ids(&store, ann).await, vec![a.registration_id]);
        let report = store.dispatch(APP, seq).await.unwrap().unwrap().report;
        assert_eq!(
            (
                report.reached_online,
                report.apns.requests,
                report.apns.retries,
                report.apns.gone
            ),
            (1, 2, 1, 1)
        );
        let sends = store.device_sends(APP, seq, bob).await.unwrap();
        assert_eq!(sends[0].status, SendStatus::Gone);
    });
}

#[test]
fn migrate_copies_fan_outs_and_sends() {
    migrated(
        async |store| {
            import(store, APP, &["ann"]).await;
            let ann = id_of(store, APP, "ann").await.unwrap();
            let seq = device_push(store, &[ann]).await;
            let progress = Progress {
                sends: vec![(ann, vec![send("X", SendStatus::Retrying, 7)])],
                ..Progress::default()
            };
            store.record_progress(APP, seq, progress).await.unwrap();
            seq
        },
        async |store, counts, seq| {
            assert_eq!((counts.dispatches, counts.device_sends), (1, 1));
            assert_eq!(store.open_dispatches().await.unwrap(), vec![(APP, seq)]);
            assert_eq!(store.due_sends(7, 10).await.unwrap().len(), 1);
        },
    );
}

/// The deliveries of `seq` in one second: `live` reached when sent, `caught_up` from their
/// backlog.
fn deliveries(seq: u64, second: u64, live: &[AccountId], caught_up: &[AccountId]) -> Deliveries {
    let caught_up: RoaringBitmap = caught_up.iter().copied().collect();
    let mut accounts: RoaringBitmap = live.iter().copied().collect();
    accounts |= &caught_up;
    Deliveries {
        app: APP,
        seq,
        second,
        accounts,
        caught_up,
    }
}

#[test]
fn catch_ups_accumulate_per_task_apart_from_deliveries_at_send_and_survive_reopening() {
    with_store(|store, dir| async move {
        import(&store, APP, &["ann", "bob", "cy"]).await;
        let mut ids = Vec::new();
        for name in ["ann", "bob", "cy"] {
            ids.push(id_of(&store, APP, name).await.unwrap());
        }
        let (ann, bob, cy) = (ids[0], ids[1], ids[2]);
        let seq = device_push(&store, &ids).await;
        let first = deliveries(seq, 1, &[ann], &[bob]);
        let later = deliveries(seq, 2, &[], &[cy]);
        store
            .record_deliveries(vec![first, later], vec![], vec![])
            .await
            .unwrap();
        let expected: RoaringBitmap = [bob, cy].into_iter().collect();
        assert_eq!(store.caught_up(APP, seq).await.unwrap(), expected);
        assert_eq!(
            store.caught_up(APP, seq + 1).await.unwrap(),
            RoaringBitmap::new(),
            "another task has none"
        );

        let store = reopen(store, &dir);
        assert_eq!(store.caught_up(APP, seq).await.unwrap(), expected);
        let delivered: u64 = store
            .deliveries(APP, seq)
            .await
            .unwrap()
            .iter()
            .map(|(_, accounts)| accounts.len())
            .sum();
        assert_eq!(delivered, 3, "catch-ups are deliveries too");
    });
}

#[test]
fn migrate_copies_catch_ups() {
    migrated(
        async |store| {
            import(store, APP, &["ann"]).await;
            let ann = id_of(store, APP, "ann").await.unwrap();
            let seq = device_push(store, &[ann]).await;
            let caught_up = deliveries(seq, 1, &[], &[ann]);
            store
                .record_deliveries(vec![caught_up], vec![], vec![])
                .await
                .unwrap();
            (seq, ann)
        },
        async |store, counts, (seq, ann)| {
            assert_eq!(counts.catch_ups, 1);
            let expected: RoaringBitmap = [ann].into_iter().collect();
            assert_eq!(store.caught_up(APP, seq).await.unwrap(), expected);
        },
    );
}

#[test]
fn pruning_removes_ended_tasks_with_every_record_but_not_a_fan_out_still_going() {
    with_store(|store, dir| async move {
        import(&store, APP, &["ann"]).await;
        let ann = id_of(&store, APP, "ann").await.unwrap();
        // Both made at 1 s and ended at 3601 s; the first one's fan-out is finished.
        let ended = device_push(&store, &[ann]).await;
        let going = device_push(&store, &[ann]).await;
        let later = device_push_at(&store, &[ann], 10_000_000).await;
        let progress = Progress {
            finished: true,
            sends: vec![(ann, vec![send("X", SendStatus::Accepted, 0)])],
            ..Progress::default()
        };
        store.record_progress(APP, ended, progress).await.unwrap();
        let reached = [
            deliveries(ended, 5, &[], &[ann]),
            deliveries(later, 9, &[ann], &[]),
        ];
        store
            .record_deliveries(reached.to_vec(), vec![], vec![])
            .await
            .unwrap();

        let ended_before = 3_601_001;
        assert_eq!(store.prune_tasks(ended_before, 10).await.unwrap(), 1);
        assert_eq!(
            store.prune_tasks(ended_before, 10).await.unwrap(),
            0,
            "once"
        );
        let store = reopen(store, &dir);
        assert!(store.task(APP, ended).await.unwrap().is_none());
        assert!(store.task_audience(APP, ended).await.unwrap().is_none());
        assert!(store.deliveries(APP, ended).await.unwrap().is_empty());
        assert!(store.caught_up(APP, ended).await.unwrap().is_empty());
        assert!(store.fan_out(APP, ended).await.unwrap().is_none());
        assert!(
            store
                .device_sends(APP, ended, ann)
                .await
                .unwrap()
                .is_empty()
        );
        for kept in [going, later] {
            assert!(store.task(APP, kept).await.unwrap().is_some(), "{kept}");
            assert!(
                store.task_audience(APP, kept).await.unwrap().is_some(),
                "{kept}"
            );
        }
        assert_eq!(store.deliveries(APP, later).await.unwrap().len(), 1);
        assert_eq!(
            store.open_dispatches().await.unwrap(),
            vec![(APP, going), (APP, later)]
        );
        assert!(store.close(Duration::from_secs(10)));

        // Nothing of it is left anywhere: the copy counts every record.
        let copy = tempfile::tempdir().unwrap();
        let (from, to) = (
            Location::Embedded(dir),
            Location::Embedded(copy.path().into()),
        );
        let counts = tagcast_store::migrate(&from, &to, |_, _| {})
            .unwrap()
            .source;
        let left = (
            counts.tasks,
            counts.audiences,
            counts.deliveries,
            counts.catch_ups,
        );
        assert_eq!(left, (2, 2, 1, 0));
        assert_eq!((counts.dispatches, counts.device_sends), (2, 0));
    });
}

#[test]
fn group_commit_folds_concurrent_writes_into_few_commits() {
    const WRITES: usize = 400;
    with_store(|store, _| async move {
        let names: Vec<String> = (0..WRITES).map(|i| format!("u{i}")).collect();
        store.import_accounts(APP, names.clone()).await.unwrap();
        let before = store.commit_count();
        assert!(before >= 1, "the import was committed");

        // One at a time, each write is its own commit.
        for name in &names[..5] {
            let item = (name.clone(), strings(&["solo"]));
            store
                .edit_tags(APP, TagEdit::Add, vec![item], NO_LIMITS)
                .await
                .unwrap();
        }
        assert_eq!(store.commit_count(), before + 5);

        // All at once, they share commits.
        let before = store.commit_count();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, name) in names.iter().enumerate() {
            let store = store.clone();
            let item = (name.clone(), vec![format!("t{}", i % 50)]);
            tasks.spawn(async move {
                store
                    .edit_tags(APP, TagEdit::Add, vec![item], NO_LIMITS)
                    .await
            });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.unwrap().unwrap(), [Ok(())]);
        }
        let commits = store.commit_count() - before;
        assert!(
            commits >= 2,
            "{WRITES} writes cannot fit one batch: {commits}"
        );
        assert!(
            commits <= (WRITES / 10) as u64,
            "{WRITES} concurrent writes took {commits} commits"
        );
        let all = store.get_tags(APP, &names).await.unwrap();
        for (i, tags) in all.into_iter().enumerate() {
            let mut expected = if i < 5 { vec![s("solo")] } else { vec![] };
            expected.push(format!("t{}", i % 50));
            assert_eq!(tags, Some(expected), "account u{i}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Model check: random tag writes against an in-memory model, refcounts checked after each.

#[derive(Debug, Clone)]
enum Op {
    Edit(TagEdit, usize, Vec<&'static str>),
    Clear(usize),
    Import(usize),
    Delete(usize),
}

const ACCOUNTS: [&str; 3] = ["a", "b", "c"];
const TAGS: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];
/// Small enough that both caps are hit often, with tags freed and taken in the same write.
const LIMITS: TagLimits = limits(3, 3);

fn op() -> impl Strategy<Value = Op> {
    let account = 0..ACCOUNTS.len();
    let tags = proptest::collection::vec(proptest::sample::select(&TAGS[..]), 0..5);
    let edit = prop_oneof![
        2 => Just(TagEdit::Add),
        2 => Just(TagEdit::Replace),
        1 => Just(TagEdit::Remove)
    ];
    prop_oneof![
        6 => (edit, account.clone(), tags).prop_map(|(e, a, t)| Op::Edit(e, a, t)),
        1 => account.clone().prop_map(Op::Clear),
        1 => account.clone().prop_map(Op::Import),
        1 => account.prop_map(Op::Delete),
    ]
}

#[derive(Default)]
struct Model {
    /// Existing accounts and their tags, in order.
    accounts: BTreeMap<usize, Vec<&'static str>>,
}

impl Model {
    fn distinct(&self) -> BTreeSet<&'static str> {
        self.accounts.values().flatten().copied().collect()
    }

    fn holders(&self, tag: &str) -> usize {
        self.accounts.values().filter(|t| t.contains(&tag)).count()
    }

    fn edit(&mut self, edit: TagEdit, account: usize, tags: &[&'static str]) -> ItemResult {
        let Some(current) = self.accounts.get(&account).cloned() else {
            return Err(ItemError::AccountNotFound);
        };
        let wanted: Vec<&'static str> = match edit {
            TagEdit::Add => current.iter().chain(tags).copied().collect(),
            TagEdit::Replace => tags.to_vec(),
            TagEdit::Remove => current
                .iter()
                .copied()
                .filter(|t| !tags.contains(t))
                .collect(),
        };
        let mut target = Vec::new();
        for tag in wanted {
            if !target.contains(&tag) {
                target.push(tag);
            }
        }
        if target.len() > current.len() && target.len() > LIMITS.max_tags_per_account {
            return Err(ItemError::TooManyTagsForAccount {
                would_have: target.len(),
                limit: LIMITS.max_tags_per_account,
            });
        }
        let distinct = self.distinct();
        let created = target.iter().filter(|t| !distinct.contains(*t)).count();
        let freed = current
            .iter()
            .filter(|t| !target.contains(t) && self.holders(t) == 1)
            .count();
        if created > 0 && distinct.len() + created - freed > LIMITS.max_tags_per_app {
            return Err(ItemError::TooManyTagsForApp {
                limit: LIMITS.max_tags_per_app,
            });
        }
        self.accounts.insert(account, target);
        Ok(())
    }
}

async fn run_ops(store: Store, ops: Vec<Op>) {
    let mut model = Model::default();
    import(&store, APP, &[PROBE]).await;
    for (step, op) in ops.into_iter().enumerate() {
        match &op {
            Op::Edit(e, account, tags) => {
                let expected = model.edit(*e, *account, tags);
                let got = edit(&store, APP, *e, ACCOUNTS[*account], tags, LIMITS).await;
                assert_eq!(got, expected, "step {step}: {op:?}");
            }
            Op::Clear(account) => {
                let expected = model.edit(TagEdit::Replace, *account, &[]);
                let got = store
                    .clear_tags(APP, vec![s(ACCOUNTS[*account])], LIMITS)
                    .await
                    .unwrap();
                assert_eq!(got, [expected], "step {step}: {op:?}");
            }
            Op::Import(account) => {
                let new = !model.accounts.contains_key(account);
                model.accounts.entry(*account).or_default();
                assert_eq!(
                    import(&store, APP, &[ACCOUNTS[*account]]).await,
                    [new],
                    "step {step}: {op:?}"
                );
            }
            Op::Delete(account) => {
                let existed = model.accounts.remove(account).is_some();
                let got = store
                    .delete_accounts(APP, vec![s(ACCOUNTS[*account])])
                    .await
                    .unwrap();
                assert_eq!(got, [existed], "step {step}: {op:?}");
            }
        }
        let names: Vec<String> = ACCOUNTS.iter().map(|a| s(a)).collect();
        let expected: Vec<Option<Vec<String>>> = (0..ACCOUNTS.len())
            .map(|i| {
                model
                    .accounts
                    .get(&i)
                    .map(|t| t.iter().map(|t| s(t)).collect())
            })
            .collect();
        assert_eq!(
            store.get_tags(APP, &names).await.unwrap(),
            expected,
            "step {step}: {op:?}"
        );
        assert_distinct_tags(&store, APP, model.distinct().len()).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn tag_refcounts_match_a_model(ops in proptest::collection::vec(op(), 1..30)) {
        with_store(|store, _| run_ops(store, ops));
    }
}
