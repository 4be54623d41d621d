//! Model check of the tag and attribute APIs: random sequences of writes and reads over several
//! accounts (some never imported) and two apps, each response and the whole state compared with
//! an in-memory model after every step. A second variant runs on the app with tiny limits so the
//! per-account and per-app tag caps (90032) are model-checked too.
//!
//! One server serves all cases of a test; each case uses fresh account names.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::common::*;

/// Accounts of a case: 0..=2 imported at the start, 3 only by an `Import` step, 4 never.
const ACCOUNTS: usize = 5;
/// More tags than the tight app's 8 distinct tags.
const TAG_POOL: [&str; 10] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];
/// Longer than the tight app's 10-byte tags.
const LONG_TAG: &str = "tag-too-long";
/// 8 bytes is the tight app's longest value; 9 is too long there.
const VALUES: [&str; 4] = ["m", "f", "shenzhen", "beijing-x"];

/// What the model needs to know about an app.
#[derive(Debug, Clone)]
struct AppSpec {
    app: TestApp,
    accounts_per_request: usize,
    tags_per_add: usize,
    tags_per_replace: usize,
    tags_per_account: usize,
    tags_per_app: usize,
    tag_bytes: usize,
    attr_value_bytes: usize,
    /// Attribute slots set up before the cases: (name, account type).
    attrs: &'static [(&'static str, u8)],
}

fn default_limits(app: TestApp, attrs: &'static [(&'static str, u8)]) -> AppSpec {
    AppSpec {
        app,
        accounts_per_request: 100,
        tags_per_add: 10,
        tags_per_replace: 100,
        tags_per_account: 100,
        tags_per_app: 1000,
        tag_bytes: 50,
        attr_value_bytes: 50,
        attrs,
    }
}

/// The main app names a RegistrationID-only attribute; the other app names different ones, so
/// a name valid in one app is unknown in the other.
fn two_apps() -> Vec<AppSpec> {
    vec![
        default_limits(APP, &[("sex", 0), ("city", 0), ("regid", 1)]),
        default_limits(OTHER_APP, &[("sex", 0), ("level", 0)]),
    ]
}

/// See `common::config_toml`.
fn tight_app() -> Vec<AppSpec> {
    vec![AppSpec {
        app: TIGHT_APP,
        accounts_per_request: 3,
        tags_per_add: 3,
        tags_per_replace: 4,
        tags_per_account: 5,
        tags_per_app: 8,
        tag_bytes: 10,
        attr_value_bytes: 8,
        attrs: &[("sex", 0), ("city", 0)],
    }]
}

// ---------------------------------------------------------------------------------------------
// Steps.

type TagItems = Vec<(usize, Vec<&'static str>)>;

#[derive(Debug, Clone)]
enum Step {
    AddTag {
        app: usize,
        replace: bool,
        items: TagItems,
    },
    RemoveTag {
        app: usize,
        items: TagItems,
    },
    ClearAllTags {
        app: usize,
        accounts: Vec<usize>,
    },
    GetTag {
        app: usize,
        accounts: Vec<usize>,
    },
    SetAttr {
        app: usize,
        items: Vec<(usize, BTreeMap<&'static str, &'static str>)>,
    },
    RemoveAttr {
        app: usize,
        items: Vec<(usize, Vec<&'static str>)>,
    },
    GetAttr {
        app: usize,
        accounts: Vec<usize>,
    },
    Import {
        app: usize,
        account: usize,
    },
    Delete {
        app: usize,
        account: usize,
    },
}

fn tag() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        12 => proptest::sample::select(&TAG_POOL[..]),
        1 => Just(""),
        1 => Just(LONG_TAG),
    ]
}

/// Mostly within the tight app's 3 tags per add, sometimes over it, sometimes none.
fn tags() -> impl Strategy<Value = Vec<&'static str>> {
    use proptest::collection::vec;
    prop_oneof![1 => vec(tag(), 0..=0), 12 => vec(tag(), 1..=3), 2 => vec(tag(), 4..=5)]
}

/// Mostly names every app has or the main app has; sometimes one only the other app has, one
/// for RegistrationID accounts only (main app), or one no app has.
fn attr_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just("sex"),
        6 => Just("city"),
        2 => Just("level"),
        3 => Just("regid"),
        1 => Just("nope"),
    ]
}

/// How often each kind of step comes up.
#[derive(Debug, Clone, Copy)]
struct Weights {
    add_tag: u32,
    /// Of add_tag steps, how many in 4 have Replace 1.
    replace_in_4: u32,
    remove_tag: u32,
    clear_all_tags: u32,
    get_tag: u32,
    set_attr: u32,
    remove_attr: u32,
    get_attr: u32,
    import: u32,
    delete: u32,
}

/// Everything, attributes as much as tags.
const BALANCED: Weights = Weights {
    add_tag: 8,
    replace_in_4: 1,
    remove_tag: 3,
    clear_all_tags: 2,
    get_tag: 2,
    set_attr: 6,
    remove_attr: 3,
    get_attr: 1,
    import: 1,
    delete: 1,
};

/// Mostly adding tags, so the caps are reached often.
const TAG_HEAVY: Weights = Weights {
    add_tag: 16,
    replace_in_4: 2,
    remove_tag: 2,
    clear_all_tags: 1,
    get_tag: 1,
    set_attr: 2,
    remove_attr: 1,
    get_attr: 1,
    import: 1,
    delete: 1,
};

fn step(apps: usize, max_accounts: usize, w: Weights) -> impl Strategy<Value = Step> {
    let app = 0..apps;
    let account = prop_oneof![6 => 0..3usize, 1 => 3..ACCOUNTS];
    let accounts = proptest::collection::vec(account.clone(), 1..=max_accounts);
    let tag_items = || proptest::collection::vec((account.clone(), tags()), 1..=max_accounts);
    let attrs =
        proptest::collection::btree_map(attr_name(), proptest::sample::select(&VALUES[..]), 0..=2);
    let attr_items = proptest::collection::vec((account.clone(), attrs), 1..=max_accounts);
    let names = proptest::collection::vec(attr_name(), 0..=2);
    let name_items = proptest::collection::vec((account.clone(), names), 1..=max_accounts);
    let replace = prop_oneof![4 - w.replace_in_4 => Just(false), w.replace_in_4 => Just(true)];
    prop_oneof![
        w.add_tag => (app.clone(), replace, tag_items())
            .prop_map(|(app, replace, items)| Step::AddTag { app, replace, items }),
        w.remove_tag => (app.clone(), tag_items())
            .prop_map(|(app, items)| Step::RemoveTag { app, items }),
        w.clear_all_tags => (app.clone(), accounts.clone())
            .prop_map(|(app, accounts)| Step::ClearAllTags { app, accounts }),
        w.get_tag => (app.clone(), accounts.clone())
            .prop_map(|(app, accounts)| Step::GetTag { app, accounts }),
        w.set_attr => (app.clone(), attr_items)
            .prop_map(|(app, items)| Step::SetAttr { app, items }),
        w.remove_attr => (app.clone(), name_items)
            .prop_map(|(app, items)| Step::RemoveAttr { app, items }),
        w.get_attr => (app.clone(), accounts)
            .prop_map(|(app, accounts)| Step::GetAttr { app, accounts }),
        w.import => (app.clone(), 0..ACCOUNTS - 1)
            .prop_map(|(app, account)| Step::Import { app, account }),
        w.delete => (app, 0..ACCOUNTS).prop_map(|(app, account)| Step::Delete { app, account }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model.

/// Model paths worth knowing were taken; a run asserts the interesting ones were.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// An account would have more tags than allowed.
    AccountCap,
    /// The app would have more distinct tags than allowed.
    AppCap,
    /// The app would be over its cap, but for the tags the same write frees.
    AppCapFreed,
    /// A RegistrationID-only attribute set on a UserID account.
    TypeMismatch,
    /// An attribute name the app does not have: the whole request fails.
    UnknownAttr,
}

thread_local! {
    /// Per test: proptest runs every case on the test's own thread.
    static HITS: [Cell<u64>; 5] = const { [const { Cell::new(0) }; 5] };
}

fn hit(path: Path) {
    HITS.with(|hits| hits[path as usize].set(hits[path as usize].get() + 1));
}

fn hits(path: Path) -> u64 {
    HITS.with(|hits| hits[path as usize].get())
}

#[derive(Debug, Clone, Default)]
struct Account {
    tags: Vec<String>,
    attrs: BTreeMap<String, String>,
}

/// A response as the model predicts it: FAIL with a code, or OK with an ErrorList.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Fail(u64),
    Ok(Vec<(String, u64)>),
}

/// What a read predicts: the list of found accounts, and the ErrorList of the others.
type Reads = (Value, Vec<(String, u64)>);

const NOT_FOUND: u64 = 70107;
const TOO_MANY_TAGS: u64 = 90032;
const TAG_TOO_LONG: u64 = 90020;
const EMPTY_TAG: u64 = 90040;
const INVALID_ATTR: u64 = 90033;
const TYPE_MISMATCH: u64 = 90035;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Add,
    Replace,
    Remove,
}

struct AppModel {
    spec: AppSpec,
    accounts: BTreeMap<String, Account>,
}

impl AppModel {
    fn attr_type(&self, name: &str) -> Option<u8> {
        self.spec
            .attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    fn holders(&self, tag: &str) -> usize {
        self.accounts
            .values()
            .filter(|a| a.tags.iter().any(|t| t == tag))
            .count()
    }

    fn distinct(&self) -> usize {
        let mut all: Vec<&String> = self.accounts.values().flat_map(|a| &a.tags).collect();
        all.sort();
        all.dedup();
        all.len()
    }

    /// The per-account validation of a tag list, in the server's order.
    fn check_tags(&self, tags: &[&str], max: usize) -> Option<u64> {
        if tags.len() > max {
            return Some(TOO_MANY_TAGS);
        }
        tags.iter().find_map(|t| {
            if t.is_empty() {
                Some(EMPTY_TAG)
            } else if t.len() > self.spec.tag_bytes {
                Some(TAG_TOO_LONG)
            } else {
                None
            }
        })
    }

    fn edit(&mut self, name: &str, edit: Edit, tags: &[&str]) -> Option<u64> {
        let Some(current) = self.accounts.get(name).map(|a| a.tags.clone()) else {
            return Some(NOT_FOUND);
        };
        let wanted: Vec<String> = match edit {
            Edit::Add => current
                .iter()
                .cloned()
                .chain(tags.iter().map(|t| t.to_string()))
                .collect(),
            Edit::Replace => tags.iter().map(|t| t.to_string()).collect(),
            Edit::Remove => current
                .iter()
                .filter(|t| !tags.contains(&t.as_str()))
                .cloned()
                .collect(),
        };
        let mut target: Vec<String> = Vec::new();
        for tag in wanted {
            if !target.contains(&tag) {
                target.push(tag);
            }
        }
        if target.len() > current.len() && target.len() > self.spec.tags_per_account {
            hit(Path::AccountCap);
            return Some(TOO_MANY_TAGS);
        }
        let created = target.iter().filter(|t| self.holders(t) == 0).count();
        let freed = current
            .iter()
            .filter(|t| !target.contains(t) && self.holders(t) == 1)
            .count();
        if created > 0 && self.distinct() + created > self.spec.tags_per_app {
            if self.distinct() + created - freed > self.spec.tags_per_app {
                hit(Path::AppCap);
                return Some(TOO_MANY_TAGS);
            }
            hit(Path::AppCapFreed);
        }
        self.accounts.get_mut(name).unwrap().tags = target;
        None
    }

    fn edit_tags(&mut self, edit: Edit, items: &[(String, Vec<&str>)]) -> Outcome {
        let max = match edit {
            Edit::Add => self.spec.tags_per_add,
            Edit::Replace => self.spec.tags_per_replace,
            Edit::Remove => usize::MAX,
        };
        let mut errors = Vec::new();
        for (name, tags) in items {
            let error = self
                .check_tags(tags, max)
                .or_else(|| self.edit(name, edit, tags));
            errors.extend(error.map(|code| (name.clone(), code)));
        }
        Outcome::Ok(errors)
    }

    fn clear(&mut self, names: &[String]) -> Outcome {
        let errors = names
            .iter()
            .filter_map(|name| {
                self.edit(name, Edit::Replace, &[])
                    .map(|c| (name.clone(), c))
            })
            .collect();
        Outcome::Ok(errors)
    }

    /// The whole-request refusal of an attribute write that names an attribute the app lacks.
    fn refuse_unknown_attrs<N: AsRef<str>>(
        &self,
        names: impl IntoIterator<Item = N>,
    ) -> Option<Outcome> {
        let mut names = names.into_iter();
        names
            .any(|name| self.attr_type(name.as_ref()).is_none())
            .then(|| {
                hit(Path::UnknownAttr);
                Outcome::Fail(INVALID_ATTR)
            })
    }

    fn set_attrs(&mut self, items: &[(String, BTreeMap<&str, &str>)]) -> Outcome {
        let max = self.spec.attr_value_bytes;
        let valid = |attrs: &BTreeMap<&str, &str>| attrs.values().all(|v| v.len() <= max);
        let named = items
            .iter()
            .filter(|(_, attrs)| valid(attrs))
            .flat_map(|(_, attrs)| attrs.keys());
        if let Some(refused) = self.refuse_unknown_attrs(named) {
            return refused;
        }
        let mut errors = Vec::new();
        for (name, attrs) in items {
            let error = if !valid(attrs) {
                Some(INVALID_ATTR)
            } else if !self.accounts.contains_key(name) {
                Some(NOT_FOUND)
            } else if attrs.keys().any(|a| self.attr_type(a) == Some(1)) {
                hit(Path::TypeMismatch);
                Some(TYPE_MISMATCH)
            } else {
                let account = self.accounts.get_mut(name).unwrap();
                for (attr, value) in attrs {
                    account.attrs.insert(attr.to_string(), value.to_string());
                }
                None
            };
            errors.extend(error.map(|code| (name.clone(), code)));
        }
        Outcome::Ok(errors)
    }

    fn remove_attrs(&mut self, items: &[(String, Vec<&str>)]) -> Outcome {
        let named = items.iter().flat_map(|(_, names)| names);
        if let Some(refused) = self.refuse_unknown_attrs(named) {
            return refused;
        }
        let mut errors = Vec::new();
        for (name, attrs) in items {
            match self.accounts.get_mut(name) {
                Some(account) => account.attrs.retain(|a, _| !attrs.contains(&a.as_str())),
                None => errors.push((name.clone(), NOT_FOUND)),
            }
        }
        Outcome::Ok(errors)
    }

    fn expected_tags(&self, names: &[String]) -> Reads {
        self.expected_reads(names, |account| json!({ "Tags": account.tags }))
    }

    fn expected_attrs(&self, names: &[String]) -> Reads {
        self.expected_reads(names, |account| json!({ "Attrs": account.attrs }))
    }

    /// What a read of `names` answers: an entry for each existing account (its `To_Account` and
    /// the fields of `fields`), and the ErrorList of the others.
    fn expected_reads(&self, names: &[String], fields: impl Fn(&Account) -> Value) -> Reads {
        let found = names
            .iter()
            .filter_map(|n| {
                let mut entry = fields(self.accounts.get(n)?);
                entry["To_Account"] = json!(n);
                Some(entry)
            })
            .collect();
        (Value::Array(found), self.not_found(names))
    }

    fn not_found(&self, names: &[String]) -> Vec<(String, u64)> {
        names
            .iter()
            .filter(|n| !self.accounts.contains_key(*n))
            .map(|n| (n.clone(), NOT_FOUND))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// Most tries of one call while the app's rate limit refuses it: 10 s of 20 ms pauses, far
/// more than one second's bucket needs to refill.
const RATE_LIMIT_TRIES: usize = 500;

/// Calls `path`, retrying (a bounded number of times) while the app's rate limit (60007) says
/// so.
async fn call(server: &Server, app: &TestApp, path: &str, body: Value) -> Value {
    for _ in 0..RATE_LIMIT_TRIES {
        let response = server.call(app, path, body.clone()).await;
        if response["ErrorCode"] != 60007 {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} was still rate limited after {RATE_LIMIT_TRIES} tries");
}

fn outcome(response: &Value) -> Outcome {
    match response["ActionStatus"].as_str() {
        Some("OK") => {
            assert_eq!(response["ErrorCode"], 0, "{response}");
            Outcome::Ok(error_list(response))
        }
        _ => Outcome::Fail(response["ErrorCode"].as_u64().unwrap_or(0)),
    }
}

struct Case<'a> {
    server: &'a Server,
    models: Vec<AppModel>,
    names: Vec<String>,
}

/// A write body: `{list: [{"To_Account": account, field: value}, ..]}`.
fn per_account<T: serde::Serialize>(list: &str, field: &str, items: &[(String, T)]) -> Value {
    let entries: Vec<Value> = items
        .iter()
        .map(|(account, value)| json!({ "To_Account": account, field: value }))
        .collect();
    json!({ list: entries })
}

impl Case<'_> {
    fn names(&self, accounts: &[usize]) -> Vec<String> {
        accounts.iter().map(|&i| self.names[i].clone()).collect()
    }

    /// `items` with each account index replaced by the account's name.
    fn named<T: Clone>(&self, items: &[(usize, T)]) -> Vec<(String, T)> {
        items
            .iter()
            .map(|(i, value)| (self.names[*i].clone(), value.clone()))
            .collect()
    }

    /// Calls `path` as the admin of app `app`.
    async fn send(&self, app: usize, path: &str, body: Value) -> Value {
        call(self.server, &self.models[app].spec.app, path, body).await
    }

    /// Applies a tag or attribute write to the model; returns the app, the API path, the request
    /// body and the outcome the model predicts.
    fn apply_write(&mut self, step: &Step) -> (usize, &'static str, Value, Outcome) {
        match step {
            Step::AddTag {
                app,
                replace,
                items,
            } => {
                let items = self.named(items);
                let body = per_account("UserTags", "Tags", &items);
                let body = with_replace(body, u8::from(*replace));
                let edit = if *replace { Edit::Replace } else { Edit::Add };
                let expected = self.models[*app].edit_tags(edit, &items);
                (*app, "timpush/add_tag", body, expected)
            }
            Step::RemoveTag { app, items } => {
                let items = self.named(items);
                let body = per_account("UserTags", "Tags", &items);
                let expected = self.models[*app].edit_tags(Edit::Remove, &items);
                (*app, "timpush/remove_tag", body, expected)
            }
            Step::ClearAllTags { app, accounts } => {
                let names = self.names(accounts);
                let expected = self.models[*app].clear(&names);
                let body = json!({ "To_Account": names });
                (*app, "timpush/clear_all_tags", body, expected)
            }
            Step::SetAttr { app, items } => {
                let items = self.named(items);
                let body = per_account("UserAttrs", "Attrs", &items);
                let expected = self.models[*app].set_attrs(&items);
                (*app, "timpush/set_attr", body, expected)
            }
            Step::RemoveAttr { app, items } => {
                let items = self.named(items);
                let body = per_account("UserAttrs", "Attrs", &items);
                let expected = self.models[*app].remove_attrs(&items);
                (*app, "timpush/remove_attr", body, expected)
            }
            _ => unreachable!("not a tag or attribute write: {step:?}"),
        }
    }

    async fn step(&mut self, at: &str, step: &Step) {
        let (app, outcome_expected, response) = match step {
            Step::GetTag { app, accounts } => {
                let names = self.names(accounts);
                self.check_reads(at, *app, &names, Read::TAGS).await;
                return;
            }
            Step::GetAttr { app, accounts } => {
                let names = self.names(accounts);
                self.check_reads(at, *app, &names, Read::ATTRS).await;
                return;
            }
            Step::Import { app, account } => {
                let name = self.names[*account].clone();
                self.models[*app].accounts.entry(name.clone()).or_default();
                let body = json!({ "Accounts": [name] });
                let r = self
                    .send(*app, "im_open_login_svc/multiaccount_import", body)
                    .await;
                assert_ok(&r);
                assert_eq!(r["FailAccounts"], json!([]), "{at}: {r}");
                (*app, Outcome::Ok(vec![]), r)
            }
            Step::Delete { app, account } => {
                let name = self.names[*account].clone();
                let existed = self.models[*app].accounts.remove(&name).is_some();
                let body = user_items("DeleteItem", &[&name]);
                let r = self
                    .send(*app, "im_open_login_svc/account_delete", body)
                    .await;
                assert_ok(&r);
                let code = if existed { 0 } else { NOT_FOUND };
                assert_eq!(r["ResultItem"][0]["ResultCode"], code, "{at}: {r}");
                assert_eq!(r["ResultItem"][0]["UserID"], name.as_str(), "{at}: {r}");
                (*app, Outcome::Ok(vec![]), r)
            }
            write => {
                let (app, path, body, expected) = self.apply_write(write);
                (app, expected, self.send(app, path, body).await)
            }
        };
        assert_eq!(
            outcome(&response),
            outcome_expected,
            "{at}: response {response}"
        );
        // The whole state of the app, after every write.
        let all = self.names.clone();
        self.check_reads(at, app, &all, Read::TAGS).await;
        self.check_reads(at, app, &all, Read::ATTRS).await;
    }

    /// Reads `names` with `timpush/{api}`, as many per request as the app allows, and compares
    /// the `field` list and the ErrorList with what `expected` predicts.
    async fn check_reads(&self, at: &str, app: usize, names: &[String], read: Read) {
        let Read {
            api,
            field,
            expected,
        } = read;
        let model = &self.models[app];
        for chunk in names.chunks(model.spec.accounts_per_request) {
            let body = json!({ "To_Account": chunk });
            let r = self.send(app, &format!("timpush/{api}"), body).await;
            assert_ok(&r);
            let (found, missing) = expected(model, chunk);
            assert_eq!(r[field], found, "{at}: {api} in app {app}: {r}");
            assert_eq!(error_list(&r), missing, "{at}: {api} in app {app}: {r}");
        }
    }
}

/// One of the read APIs, and what the model predicts it answers.
struct Read {
    api: &'static str,
    /// The list of found accounts in the response.
    field: &'static str,
    /// `AppModel::expected_tags` or `AppModel::expected_attrs`.
    expected: fn(&AppModel, &[String]) -> Reads,
}

impl Read {
    const TAGS: Read = Read {
        api: "get_tag",
        field: "UserTags",
        expected: AppModel::expected_tags,
    };
    const ATTRS: Read = Read {
        api: "get_attr",
        field: "UserAttrs",
        expected: AppModel::expected_attrs,
    };
}

/// Names each app's attribute slots, once per server.
async fn set_up_attr_names(server: &Server, specs: &[AppSpec]) {
    for spec in specs {
        let slots = || spec.attrs.iter().enumerate();
        let names: BTreeMap<String, &str> =
            slots().map(|(i, (n, _))| (i.to_string(), *n)).collect();
        let types: BTreeMap<String, u8> = slots().map(|(i, (_, t))| (i.to_string(), *t)).collect();
        name_typed_attrs(server, &spec.app, json!(names), json!(types)).await;
    }
}

/// One model-check test: `cases` random sequences of up to `max_steps` steps, on one server.
struct Variant {
    specs: Vec<AppSpec>,
    /// Model paths the run must have taken at least once.
    must_take: &'static [Path],
    weights: Weights,
    cases: u32,
    max_steps: usize,
    /// Delete every account earlier cases used before each case, so app-wide counts start from
    /// zero.
    clean_slate: bool,
}

fn run_model_check(variant: Variant) {
    let Variant {
        specs,
        must_take,
        weights,
        cases,
        max_steps,
        clean_slate,
    } = variant;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = Server::start();
    runtime.block_on(set_up_attr_names(&server, &specs));
    let next_case = AtomicU64::new(0);
    let used: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let max_accounts = specs
        .iter()
        .map(|s| s.accounts_per_request)
        .min()
        .unwrap()
        .min(3);
    let steps = proptest::collection::vec(step(specs.len(), max_accounts, weights), 1..=max_steps);

    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&steps, |steps| {
        let case = next_case.fetch_add(1, Ordering::Relaxed);
        let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("c{case}_a{i}")).collect();
        runtime.block_on(async {
            if clean_slate {
                let old = std::mem::take(&mut *used.lock().unwrap());
                for spec in &specs {
                    for chunk in old.chunks(100) {
                        let body = user_items("DeleteItem", &as_strs(chunk));
                        let path = "im_open_login_svc/account_delete";
                        server.ok(&spec.app, path, body).await;
                    }
                }
                used.lock().unwrap().extend(names.iter().cloned());
            }
            let mut models = Vec::new();
            for spec in &specs {
                let initial: Vec<&str> = names[..3].iter().map(String::as_str).collect();
                import(&server, &spec.app, &initial).await;
                models.push(AppModel {
                    spec: spec.clone(),
                    accounts: initial
                        .iter()
                        .map(|n| (n.to_string(), Account::default()))
                        .collect(),
                });
            }
            let mut case = Case {
                server: &server,
                models,
                names,
            };
            for (i, step) in steps.iter().enumerate() {
                case.step(&format!("step {i} ({step:?})"), step).await;
            }
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    for path in must_take {
        assert!(hits(*path) > 0, "no case took the path {path:?}");
    }
}

#[test]
fn tags_and_attrs_match_a_model_in_two_apps() {
    run_model_check(Variant {
        specs: two_apps(),
        must_take: &[Path::TypeMismatch, Path::UnknownAttr],
        weights: BALANCED,
        cases: 32,
        max_steps: 40,
        clean_slate: false,
    });
}

#[test]
fn tag_limits_match_a_model_in_the_tight_app() {
    run_model_check(Variant {
        specs: tight_app(),
        must_take: &[Path::AccountCap, Path::AppCap, Path::AppCapFreed],
        weights: TAG_HEAVY,
        // Enough that the rarest path (a write under the app cap only thanks to the tags it
        // frees) comes up about 15 times a run.
        cases: 96,
        max_steps: 60,
        clean_slate: true,
    });
}
