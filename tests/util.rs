//! Helpers shared by the integration tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fake_gleap::{FakeConfig, FakeGleap, Stream};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Every tap run in the tests uses this key at debug log level, and every
/// run asserts that it shows nowhere: stdout, stderr, state.
pub const CANARY_KEY: &str = "canary-KEY-7f3a9c1e-do-not-print";
pub const PROJECT: &str = "project-under-test";

/// Every stream of the tap.
pub const ALL_STREAMS: &[&str] = &[
    "tickets",
    "sessions",
    "messages",
    "teams",
    "surveys",
    "survey_responses",
    "message_templates",
    "team_members",
    "helpcenter_collections",
    "helpcenter_articles",
    "helpcenter_redirects",
    "news",
    "engagement_banners",
    "engagement_chat_messages",
    "engagement_cobrowse",
    "engagement_emails",
    "engagement_product_tours",
    "engagement_push_notifications",
    "engagement_tooltips",
    "engagement_whatsapp_messages",
    "engagement_checklists",
    "engagement_modals",
    "custom_components",
    "ticket_activity_logs",
    "session_activities",
    "session_events",
];

/// The streams read one request per changed parent: not selected by default.
pub const PER_PARENT: &[&str] = &[
    "ticket_activity_logs",
    "session_activities",
    "session_events",
];

/// The streams a sync without a catalog extracts: all but [`PER_PARENT`].
pub fn default_streams() -> Vec<&'static str> {
    ALL_STREAMS
        .iter()
        .copied()
        .filter(|s| !PER_PARENT.contains(s))
        .collect()
}

/// The field holding a record's version: `updatedAt`, or `createdAt` for
/// records that never change and carry no `updatedAt` (the fake's
/// snapshot gives it as `updated_at`).
pub fn version_field(stream: &str) -> &'static str {
    match stream {
        "session_activities" | "session_events" => "createdAt",
        _ => "updatedAt",
    }
}

pub fn fake_config() -> FakeConfig {
    FakeConfig {
        api_key: CANARY_KEY.into(),
        project_id: PROJECT.into(),
        ..FakeConfig::default()
    }
}

pub fn start(config: FakeConfig) -> FakeGleap {
    fake_gleap::start_blocking(config).expect("the fake Gleap API starts")
}

pub fn stream(name: &str) -> Stream {
    name.parse()
        .unwrap_or_else(|_| panic!("fake-gleap knows stream {name}"))
}

/// A scratch directory for config, state and catalog files.
/// The state to resume from after `runs`: the last STATE any of them
/// printed (a run killed before its first STATE leaves the one before), or
/// an empty state.
/// A state without its settle records (`lookback`), which hold the run's
/// own start: for comparing the bookmarks of two runs.
pub fn bookmarks_only(state: &Value) -> Value {
    match state {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| k.as_str() != "lookback")
                .map(|(k, v)| (k.clone(), bookmarks_only(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(bookmarks_only).collect()),
        v => v.clone(),
    }
}

pub fn latest_state(runs: &[Run]) -> Value {
    runs.iter()
        .rev()
        .find_map(|r| r.states().last().copied())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write scratch file");
        p
    }

    pub fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        self.write(name, &serde_json::to_string_pretty(v).unwrap())
    }

    /// Runs the tap with the config `cfg` and `state` (written here as
    /// `state.json`).
    pub fn tap_with_state(&self, cfg: &Path, state: &Value) -> Run {
        let st = self.write_json("state.json", state);
        tap(&["--config", path_str(cfg), "--state", path_str(&st)])
    }

    /// A config for `server`, fast for tests: a generous rate budget and a
    /// short request timeout; `extra` overrides.
    pub fn config(&self, server: &FakeGleap, extra: Value) -> PathBuf {
        let mut c = json!({
            "api_key": CANARY_KEY,
            "project_id": PROJECT,
            "api_url": server.url(),
            "requests_per_minute": 60000,
            "request_timeout_seconds": 5,
            "retry_budget_seconds": 60,
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            c[k] = v.clone();
        }
        self.write_json("config.json", &c)
    }
}

/// Singer messages, decoded strictly: an unexpected key fails the test.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Message {
    #[serde(rename = "SCHEMA")]
    Schema {
        stream: String,
        schema: Value,
        key_properties: Vec<String>,
        bookmark_properties: Option<Vec<String>>,
    },
    #[serde(rename = "RECORD")]
    Record {
        stream: String,
        record: Map<String, Value>,
        time_extracted: String,
        version: Option<i64>,
    },
    #[serde(rename = "STATE")]
    State { value: Value },
    #[serde(rename = "ACTIVATE_VERSION")]
    ActivateVersion { stream: String, version: i64 },
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub messages: Vec<Message>,
}

impl Run {
    pub fn records(&self, stream: &str) -> Vec<&Map<String, Value>> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                Message::Record {
                    stream: s, record, ..
                } if s == stream => Some(record),
                _ => None,
            })
            .collect()
    }

    pub fn ids(&self, stream: &str) -> BTreeSet<String> {
        self.records(stream)
            .iter()
            .map(|r| r["id"].as_str().expect("id is a string").to_string())
            .collect()
    }

    pub fn states(&self) -> Vec<&Value> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                Message::State { value } => Some(value),
                _ => None,
            })
            .collect()
    }

    pub fn last_state(&self) -> &Value {
        self.states()
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no STATE in the output; stderr:\n{}", self.stderr))
    }

    /// The error line the tap ends with: stderr's last non-empty line.
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, 0, "tap failed; stderr:\n{}", tail(&self.stderr));
        self
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn tap_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tap-gleap"));
    cmd.args(args)
        .env("RUST_LOG", "debug")
        .env_remove("TAP_GLEAP_API_KEY")
        .stdin(Stdio::null());
    cmd
}

/// Runs a sync to completion and decodes its output: every stdout line must
/// be a Singer message.
pub fn tap(args: &[&str]) -> Run {
    decode(
        tap_command(args).output().expect("the tap binary runs"),
        true,
    )
}

pub fn tap_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tap_command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    decode(cmd.output().expect("the tap binary runs"), true)
}

/// A tap running in the background, its output drained by threads so that
/// it never blocks on a full pipe while the test does something else.
pub struct Running {
    pub child: std::process::Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait on the tap").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait on the tap");
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        decode(
            Output {
                status,
                stdout,
                stderr,
            },
            true,
        )
    }
}

pub fn spawn_tap(args: &[&str]) -> Running {
    use std::io::Read;
    let mut child = tap_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tap binary starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let stderr = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    Running {
        child,
        stdout,
        stderr,
    }
}

/// Runs a command whose stdout is not Singer messages (`--about`, `--discover`).
pub fn tap_plain(args: &[&str]) -> Run {
    decode(
        tap_command(args).output().expect("the tap binary runs"),
        false,
    )
}

pub fn decode(out: Output, singer: bool) -> Run {
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_secret(&stdout, &stderr);
    let messages = if singer {
        parse_messages(&stdout)
    } else {
        Vec::new()
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        messages,
    }
}

pub fn parse_messages(stdout: &str) -> Vec<Message> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Message>(l)
                .unwrap_or_else(|e| panic!("stdout line is not a Singer message ({e}): {l}"))
        })
        .collect()
}

pub fn assert_no_secret(stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(CANARY_KEY),
        "the API key appeared on stdout"
    );
    assert!(
        !stderr.contains(CANARY_KEY),
        "the API key appeared on stderr"
    );
    // Nor a recognisable part of it.
    assert!(
        !stderr.contains("7f3a9c1e"),
        "part of the API key appeared on stderr"
    );
}

/// Validates every RECORD against the schema of its stream's SCHEMA message,
/// and checks SCHEMA comes before the stream's first RECORD.
pub fn assert_records_match_schemas(run: &Run) {
    let mut validators: BTreeMap<String, jsonschema::Validator> = BTreeMap::new();
    for (i, m) in run.messages.iter().enumerate() {
        match m {
            Message::Schema { stream, schema, .. } => {
                let v = jsonschema::options()
                    .should_validate_formats(true)
                    .build(schema)
                    .expect("SCHEMA is a valid JSON Schema");
                validators.insert(stream.clone(), v);
            }
            Message::Record {
                stream,
                record,
                time_extracted,
                ..
            } => {
                let v = validators
                    .get(stream)
                    .unwrap_or_else(|| panic!("RECORD of {stream} (line {i}) before its SCHEMA"));
                let rec = Value::Object(record.clone());
                if let Some(e) = v.iter_errors(&rec).next() {
                    panic!(
                        "{stream} record does not match its schema: {e} at {}\n{rec}",
                        e.instance_path()
                    );
                }
                assert!(
                    chrono::DateTime::parse_from_rfc3339(time_extracted).is_ok(),
                    "time_extracted {time_extracted}"
                );
            }
            _ => {}
        }
    }
}

/// Ids the fake holds for a stream.
pub fn fake_ids(server: &FakeGleap, name: &str) -> BTreeSet<String> {
    server
        .snapshot(stream(name))
        .into_iter()
        .map(|r| r.id)
        .collect()
}

pub fn fake_versions(server: &FakeGleap, name: &str) -> BTreeMap<String, String> {
    server
        .snapshot(stream(name))
        .into_iter()
        .map(|r| (r.id, r.updated_at))
        .collect()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A catalog from `--discover` where only `streams` are selected; `edit` may
/// change each selected entry. The catalog of `schemas/`: discovery is
/// given the config without its key, so that it calls no API (with
/// credentials it reads a page of each stream: `evolution.rs`).
pub fn catalog_selecting(config: &Path, streams: &[&str], edit: impl Fn(&mut Value)) -> Value {
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(config).expect("config")).expect("JSON");
    if let Some(o) = settings.as_object_mut() {
        o.remove("api_key");
    }
    let keyless = config.with_extension("keyless.json");
    std::fs::write(&keyless, settings.to_string()).expect("write keyless config");
    catalog_from(
        tap_plain(&["--config", path_str(&keyless), "--discover"]),
        streams,
        edit,
    )
}

/// As [`catalog_selecting`], from `--discover` with the config as it is:
/// with credentials, the fields the API sends are in it.
pub fn discovered_selecting(config: &Path, streams: &[&str], edit: impl Fn(&mut Value)) -> Value {
    catalog_from(
        tap_plain(&["--config", path_str(config), "--discover"]),
        streams,
        edit,
    )
}

fn catalog_from(run: Run, streams: &[&str], edit: impl Fn(&mut Value)) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut cat: Value = serde_json::from_str(&run.stdout).unwrap();
    for e in cat["streams"].as_array_mut().unwrap() {
        let name = e["tap_stream_id"].as_str().unwrap().to_string();
        let chosen = streams.contains(&name.as_str());
        e["metadata"][0]["metadata"]["selected"] = json!(chosen);
        if chosen {
            edit(e);
        }
    }
    cat
}

// ----------------------------------------------------- shared by topic modules

pub const INCREMENTAL: &[&str] = &[
    "tickets",
    "sessions",
    "messages",
    "survey_responses",
    "helpcenter_articles",
    "ticket_activity_logs",
    "session_activities",
    "session_events",
];

/// The incremental streams a sync without a catalog extracts.
pub fn default_incremental() -> Vec<&'static str> {
    INCREMENTAL
        .iter()
        .copied()
        .filter(|s| !PER_PARENT.contains(s))
        .collect()
}

pub const CONFIG_ERROR: i32 = 3;
pub const STATE_ERROR: i32 = 4;
pub const CATALOG_ERROR: i32 = 5;
pub const AUTH_ERROR: i32 = 6;

/// A small dataset, for tests that run many syncs.
pub fn small_config() -> FakeConfig {
    FakeConfig {
        tickets: 60,
        sessions: 40,
        messages: 60,
        surveys: 3,
        responses_per_survey: 10,
        ..fake_config()
    }
}

/// Calls `change` every `pause` while the tap runs; returns how many times.
/// A tap still running after two minutes chases the changes instead of
/// stopping at its signpost: it is killed and the test fails.
pub fn while_running(
    running: &mut Running,
    pause: std::time::Duration,
    mut change: impl FnMut(),
) -> usize {
    let started = std::time::Instant::now();
    let mut rounds = 0;
    while running.is_running() {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = running.child.kill();
            panic!("the tap still ran after 120 s of changes: it does not stop at its signpost");
        }
        change();
        rounds += 1;
        std::thread::sleep(pause);
    }
    rounds
}

/// What a set of outputs delivered, against what the fake holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    /// RECORD lines of incremental streams delivered again at the same
    /// version (boundary records, and what followed the last STATE before a kill).
    pub duplicates: u64,
}

impl Tally {
    pub fn add(&mut self, o: Tally) {
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
    }
}

/// Counts what `outputs` together delivered of every stream a sync without
/// a catalog extracts. A record of an incremental stream counts only at the
/// version the fake holds now; of a full-table stream, at any version. Lost
/// records are described (a few per stream) in the returned list.
pub fn count(server: &FakeGleap, outputs: &[&[Message]]) -> (Tally, Vec<String>) {
    count_streams(server, outputs, &default_streams())
}

pub fn count_streams(
    server: &FakeGleap,
    outputs: &[&[Message]],
    streams: &[&str],
) -> (Tally, Vec<String>) {
    let mut total = Tally::default();
    let mut lost_examples = Vec::new();
    for name in streams {
        let mut got: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for m in outputs.iter().flat_map(|msgs| msgs.iter()) {
            if let Message::Record { stream, record, .. } = m {
                if stream == name {
                    let at = record
                        .get(version_field(name))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let id = record["id"].as_str().expect("id is a string").to_string();
                    *got.entry(id).or_default().entry(at).or_default() += 1;
                }
            }
        }
        let incremental = INCREMENTAL.contains(name);
        let mut t = Tally::default();
        for (id, at) in fake_versions(server, name) {
            t.expected += 1;
            if got
                .get(&id)
                .is_some_and(|v| !incremental || v.contains_key(&at))
            {
                t.delivered += 1;
            } else {
                t.lost += 1;
                if t.lost <= 3 {
                    lost_examples.push(format!("{name} {id}@{at} (got {:?})", got.get(&id)));
                }
            }
        }
        if incremental {
            t.duplicates = got.values().flat_map(|v| v.values()).map(|n| n - 1).sum();
        }
        total.add(t);
    }
    (total, lost_examples)
}

/// The path of each request the tap retried, one per retry, as its log
/// lines name them (`/tickets`, without `/v3`; a warning at most once in
/// 30 s, the others at debug level, which the tests log). A loaded
/// machine can make any request time out and be retried: the fake then
/// counts it twice, so a test that counts requests subtracts these.
pub fn retried_paths(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| (l.contains(" WARN ") || l.contains(" DEBUG ")) && l.contains("; retry "))
        .filter_map(|l| l.split_once(": GET ")?.1.split(':').next())
        .map(str::to_string)
        .collect()
}

/// Every record the fake holds is in `outputs`, at its latest version.
pub fn assert_nothing_lost(server: &FakeGleap, outputs: &[&[Message]], what: &str) -> Tally {
    let (t, lost) = count(server, outputs);
    assert_eq!(t.lost, 0, "{what}: {} records lost: {lost:?}", t.lost);
    assert!(t.expected > 0, "{what}: the fake holds records");
    t
}
