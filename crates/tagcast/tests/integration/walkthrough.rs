//! The README's walk-through: `docs/walkthrough.sh`, which README.md shows verbatim, run with
//! bash twice in a row against one development server (`tagcast serve` without a config file),
//! with `tagcast listen` connected as xiaoming as in the README's second terminal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const SCRIPT: &str = "docs/walkthrough.sh";

/// The README line that precedes the fenced copy of the script.
const README_MARKER: &str = "<!-- docs/walkthrough.sh, verbatim";

/// Longest wait for a frame that must come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A spawned process, killed when dropped so a failing test leaves nothing behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced block of the README that follows `README_MARKER`.
fn readme_copy_of_the_script() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let after_marker = readme
        .split_once(README_MARKER)
        .unwrap_or_else(|| panic!("README.md has no line {README_MARKER:?}"))
        .1;
    let block = after_marker
        .split_once("```sh\n")
        .expect("a ```sh block after the marker")
        .1;
    let end = block.find("\n```\n").expect("the end of the block");
    format!("{}\n", &block[..end])
}

#[test]
fn the_readme_shows_the_walkthrough_script_verbatim() {
    let script = std::fs::read_to_string(repo_root().join(SCRIPT)).expect("read the script");
    assert!(
        readme_copy_of_the_script() == script,
        "README.md's copy of {SCRIPT} differs from the file: paste the file into the README"
    );
}

/// `tagcast listen` as `account`: its frames, one JSON value each, arrive on the receiver.
fn listen(base: &str, sdkappid: &str, account: &str, key: &str) -> (Running, Receiver<Value>) {
    let mut child = clean_tagcast(&[])
        .args(["listen", "--url", base, "--sdkappid", sdkappid])
        .args(["--identifier", account, "--key", key])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tagcast listen");
    let stdout = child.stdout.take().expect("listen's stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let frame = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("listen printed a line that is not JSON ({e}): {line}"));
            if tx.send(frame).is_err() {
                return;
            }
        }
    });
    (Running(child), rx)
}

fn next_frame(frames: &Receiver<Value>) -> Value {
    frames
        .recv_timeout(FRAME_TIMEOUT)
        .unwrap_or_else(|e| panic!("no frame within {FRAME_TIMEOUT:?}: {e}"))
}

/// Runs the script with bash in `dir` with the variables `env`; returns the JSON responses it
/// printed, asserting it ran cleanly.
fn run_script(dir: &Path, env: &[(&str, &str)]) -> Vec<Value> {
    let output = clean_command("bash")
        .arg(repo_root().join(SCRIPT))
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run bash (and curl) on the script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{SCRIPT}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{SCRIPT} printed a line that is not JSON ({e}): {line}")
            })
        })
        .collect()
}

/// What one run of the script printed, each response checked; returns the two TaskIds.
fn check_run(run: &str, responses: &[Value]) -> [String; 2] {
    let [import, tagged, tags, count, push1, push2, stats, trace] = responses else {
        panic!("{run}: 8 responses expected: {responses:#?}");
    };
    for (what, response) in [
        ("multiaccount_import", import),
        ("add_tag", tagged),
        ("get_tag", tags),
        ("audience_count", count),
        ("push (Condition)", push1),
        ("push (Audience)", push2),
        ("all_member_push_statistics", stats),
        ("all_member_push_trace", trace),
    ] {
        assert_ok_for(response, &format!("{run}, {what}"));
    }
    assert_eq!(import["FailAccounts"], json!([]), "{run}: {import}");
    assert_eq!(
        error_list(tagged),
        one_error("Mary", 70107),
        "{run}: {tagged}"
    );
    assert_eq!(
        tags["UserTags"],
        json!([
            {"To_Account": "xiaoming", "Tags": ["GoldMember"]},
            {"To_Account": "xiaohong", "Tags": ["GoldMember", "WeekPassUser"]},
        ]),
        "{run}: {tags}"
    );
    assert_eq!(count["Count"], 1, "{run}: {count}");

    let task_id = |push: &Value| {
        let id = push["TaskId"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "{run}: no TaskId: {push}");
        id
    };
    let tasks = [task_id(push1), task_id(push2)];
    assert_ne!(tasks[0], tasks[1], "{run}: two pushes, two tasks");

    // Both tasks, with the audience each push froze: xiaoming alone (a GoldMember without
    // WeekPassUser), then xiaoming and xiaohong. The first was delivered to the listener.
    let results = stats["Results"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}: no Results: {stats}"));
    assert_eq!(results.len(), 2, "{run}: {stats}");
    for (result, (task, audience, kind)) in results
        .iter()
        .zip([(&tasks[0], 1, "Tag"), (&tasks[1], 2, "Expression")])
    {
        assert_eq!(result["TaskID"], *task, "{run}: {stats}");
        assert_eq!(result["AudienceCount"], audience, "{run}: {stats}");
        assert_eq!(result["Type"], kind, "{run}: {stats}");
    }
    assert_eq!(results[0]["DeliveredCount"], 1, "{run}: {stats}");

    let instances = trace["InstanceTrace"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}: no InstanceTrace: {trace}"));
    assert_eq!(
        instances.len(),
        1,
        "{run}: xiaoming is in the audience: {trace}"
    );
    assert_eq!(
        instances[0]["InstanceId"],
        format!("{}_xiaoming", tasks[0]),
        "{run}: {trace}"
    );
    assert_eq!(
        instances[0]["IMCommitStat"]["IMStat"]["PushStatus"], "Delivered",
        "{run}: the listener got it: {trace}"
    );
    tasks
}

#[test]
fn the_walkthrough_works_twice_in_a_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = TestStore::fresh();
    let (server, banner, base) = spawn_listening(
        clean_tagcast(&[])
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("tagcast-data"))
            .args(store.args()),
    );
    let _server = Running(server);
    let sdkappid = banner_value(&banner, "sdkappid");
    let admin = banner_value(&banner, "admin");
    let key = banner_value(&banner, "secret key");
    let usersig = banner_value(&banner, "usersig");

    // The README's second terminal.
    let (_listener, frames) = listen(&base, &sdkappid, "xiaoming", &key);
    let hello = next_frame(&frames);
    assert_eq!(hello["Type"], "Connected", "{hello}");
    assert_eq!(hello["Identifier"], "xiaoming", "{hello}");

    // First with the banner's values, from a directory without the data dir.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("create a directory");
    let first = run_script(
        &elsewhere,
        &[
            ("TAGCAST_URL", &base),
            ("TAGCAST_SDKAPPID", &sdkappid),
            ("TAGCAST_ADMIN", &admin),
            ("TAGCAST_USERSIG", &usersig),
        ],
    );
    let first = check_run("first run", &first);

    // Then at once again, where the server was started: the defaults are the development
    // app's, the key is read from its data dir and the UserSig signed by `tagcast usersig`.
    let second = run_script(
        dir.path(),
        &[
            ("TAGCAST_URL", &base),
            ("TAGCAST_BIN", env!("CARGO_BIN_EXE_tagcast")),
        ],
    );
    let second = check_run("second run", &second);

    // Four new tasks (a repeated MsgRandom would have returned an old TaskId), and the listener
    // received each, in order, with the content of its push.
    let tasks: Vec<&String> = first.iter().chain(&second).collect();
    for (i, task) in tasks.iter().enumerate() {
        assert!(!tasks[..i].contains(task), "{task} twice: {tasks:?}");
    }
    let mut msg_randoms = Vec::new();
    for (task, text) in tasks.iter().zip(["hello", "for you", "hello", "for you"]) {
        let frame = next_frame(&frames);
        assert_eq!(frame["Type"], "Push", "{frame}");
        assert_eq!(frame["TaskId"], **task, "{frame}");
        assert_eq!(frame["From_Account"], admin, "{frame}");
        assert_eq!(frame["MsgBody"][0]["MsgContent"]["Text"], text, "{frame}");
        assert_eq!(
            frame.get("OfflinePushInfo").is_some(),
            text == "hello",
            "{frame}"
        );
        msg_randoms.push(frame["MsgRandom"].clone());
    }
    for (i, r) in msg_randoms.iter().enumerate() {
        assert!(
            r.is_u64() && !msg_randoms[..i].contains(r),
            "fresh MsgRandoms: {msg_randoms:?}"
        );
    }
}
