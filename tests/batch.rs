//! BATCH messages (`batch_config`): records written to files, each file
//! named by a BATCH line once complete, a STATE only after the files that
//! hold what it covers. Every stdout line is decoded strictly (BATCH
//! included), every file a manifest names is read whole, and each BATCH is
//! then replaced by its records as RECORD messages, so that the checks of
//! plain runs (`util::count`, `assert_records_match_schemas`) apply to what
//! a target loads. The slices of a run write in whatever order they
//! finish: only promises are asserted, never one run's order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::util::*;

/// Singer messages with BATCH, decoded strictly: an unexpected key fails.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "type", deny_unknown_fields)]
enum Line {
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
    #[serde(rename = "BATCH")]
    Batch {
        stream: String,
        encoding: Encoding,
        manifest: Vec<String>,
    },
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
struct Encoding {
    format: String,
    compression: String,
}

struct BatchRun {
    code: i32,
    stderr: String,
    stdout: String,
    lines: Vec<Line>,
    /// The lines with each BATCH replaced by its files' records, as RECORD
    /// messages (without a version, as a target loads them).
    expanded: Vec<Message>,
}

impl BatchRun {
    fn assert_ok(&self) -> &BatchRun {
        assert_eq!(self.code, 0, "tap failed; stderr:\n{}", self.stderr);
        self
    }

    fn batches(&self) -> impl Iterator<Item = (&str, &Encoding, &[String])> {
        self.lines.iter().filter_map(|l| match l {
            Line::Batch {
                stream,
                encoding,
                manifest,
            } => Some((stream.as_str(), encoding, manifest.as_slice())),
            _ => None,
        })
    }

    /// Records of `stream` by id, from files and RECORD lines alike.
    fn by_id(&self, stream: &str) -> BTreeMap<String, Map<String, Value>> {
        records_by_id(&self.expanded, stream)
    }
}

fn records_by_id(messages: &[Message], name: &str) -> BTreeMap<String, Map<String, Value>> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Record { stream, record, .. } if stream == name => {
                Some((record["id"].as_str().unwrap().to_string(), record.clone()))
            }
            _ => None,
        })
        .collect()
}

/// `batch_config` writing into `root`.
fn batch_config(root: &Path, compression: &str, batch_size: u64) -> Value {
    json!({
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": format!("file://{}", root.display()), "prefix": "t-"},
        "batch_size": batch_size,
    })
}

fn run_batch(args: &[&str]) -> BatchRun {
    decode_batch(tap_command(args).output().expect("the tap binary runs"))
}

fn decode_batch(out: Output) -> BatchRun {
    // Not Singer for `util::decode`, which knows no BATCH: it still checks
    // that the key shows nowhere.
    let run = decode(out, false);
    let lines: Vec<Line> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not a Singer message ({e}): {l}"))
        })
        .collect();
    let mut expanded = Vec::new();
    for l in &lines {
        expanded.extend(match l.clone() {
            Line::Schema {
                stream,
                schema,
                key_properties,
                bookmark_properties,
            } => vec![Message::Schema {
                stream,
                schema,
                key_properties,
                bookmark_properties,
            }],
            Line::Record {
                stream,
                record,
                time_extracted,
                version,
            } => vec![Message::Record {
                stream,
                record,
                time_extracted,
                version,
            }],
            Line::State { value } => vec![Message::State { value }],
            Line::ActivateVersion { stream, version } => {
                vec![Message::ActivateVersion { stream, version }]
            }
            Line::Batch {
                stream,
                encoding,
                manifest,
            } => manifest
                .iter()
                .flat_map(|url| read_file(url, &encoding))
                .map(|record| Message::Record {
                    stream: stream.clone(),
                    record,
                    time_extracted: "1970-01-01T00:00:00Z".into(),
                    version: None,
                })
                .collect(),
        });
    }
    BatchRun {
        code: run.code,
        stderr: run.stderr,
        stdout: run.stdout,
        lines,
        expanded,
    }
}

/// A file a manifest names, read as an SDK target reads it: it must be in
/// place (never a `.tmp`), whole (gzip to its end), one JSON object a line.
fn read_file(url: &str, encoding: &Encoding) -> Vec<Map<String, Value>> {
    assert_eq!(encoding.format, "jsonl");
    let path = PathBuf::from(url.strip_prefix("file://").expect("a file:// URL"));
    assert!(path.is_absolute(), "{url}");
    assert!(
        !url.ends_with(".tmp"),
        "a manifest names a file being written: {url}"
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{url}: {e}"));
    let text = match encoding.compression.as_str() {
        "gzip" => {
            assert!(url.ends_with(".json.gz"), "{url}");
            assert!(bytes.starts_with(&[0x1f, 0x8b]), "{url} is not gzip");
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("{url} is not whole: {e}"));
            text
        }
        "none" => {
            assert!(url.ends_with(".json"), "{url}");
            String::from_utf8(bytes).expect("UTF-8")
        }
        other => panic!("encoding.compression {other}"),
    };
    assert!(text.ends_with('\n'), "{url}: a file ends with a whole line");
    text.lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(o)) => o,
            _ => panic!("{url}: not a raw record (a JSON object): {l}"),
        })
        .collect()
}

/// A STATE is printed only once every record its bookmarks cover is in a
/// file announced before it (or a RECORD line): every record of the fake
/// below a stream's bookmark was delivered before the STATE. (Checked for
/// the streams whose bookmark is one value; `progress` above it is left out.)
fn assert_states_follow_their_files(server: &fake_gleap::FakeGleap, run: &BatchRun) {
    let ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .timestamp_millis()
    };
    let fake: BTreeMap<&str, BTreeMap<String, String>> = [
        "sessions",
        "messages",
        "survey_responses",
        "helpcenter_articles",
    ]
    .into_iter()
    .map(|s| (s, fake_versions(server, s)))
    .collect();
    let mut delivered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut checked = 0;
    for m in &run.expanded {
        match m {
            Message::Record { stream, record, .. } => {
                delivered
                    .entry(stream.clone())
                    .or_default()
                    .insert(record["id"].as_str().unwrap().to_string());
            }
            Message::State { value } => {
                for (stream, versions) in &fake {
                    let Some(bookmark) =
                        value["bookmarks"][stream]["replication_key_value"].as_str()
                    else {
                        continue;
                    };
                    let got = delivered.get(*stream).cloned().unwrap_or_default();
                    let missing: Vec<&String> = versions
                        .iter()
                        .filter(|(id, at)| ms(at) < ms(bookmark) && !got.contains(*id))
                        .map(|(id, _)| id)
                        .collect();
                    assert!(
                        missing.is_empty(),
                        "a STATE with {stream} at {bookmark} came before the records {missing:?}"
                    );
                    checked += 1;
                }
            }
            _ => {}
        }
    }
    assert!(checked > 0, "no STATE with a bookmark was checked");
}

/// Records a plain run (RECORD lines) of the same config sends, by stream and id.
fn plain_records(
    cfg: &Path,
    extra: &[&str],
    streams: &[&str],
) -> BTreeMap<String, BTreeMap<String, Map<String, Value>>> {
    let mut settings: Value = serde_json::from_str(&std::fs::read_to_string(cfg).unwrap()).unwrap();
    settings.as_object_mut().unwrap().remove("batch_config");
    let plain = cfg.with_extension("plain.json");
    std::fs::write(&plain, settings.to_string()).unwrap();
    let mut args = vec!["--config", path_str(&plain)];
    args.extend_from_slice(extra);
    let run = tap(&args);
    run.assert_ok();
    streams
        .iter()
        .map(|s| (s.to_string(), records_by_id(&run.messages, s)))
        .collect()
}

#[test]
fn every_stream_lands_in_files_after_its_schema_and_before_its_state() {
    let server = start(fake_config());
    let s = Scratch::new();
    let root = s.dir.path().join("batches");
    let cfg = s.config(
        &server,
        json!({"page_size": 30, "batch_config": batch_config(&root, "gzip", 40)}),
    );
    // The per-parent streams too: their records come from many small lists.
    let catalog = s.write_json(
        "catalog.json",
        &catalog_selecting(&cfg, ALL_STREAMS, |_| {}),
    );
    let args = ["--config", path_str(&cfg), "--catalog", path_str(&catalog)];
    let run = run_batch(&args);
    run.assert_ok();

    assert!(
        !run.lines.iter().any(|l| matches!(l, Line::Record { .. })),
        "no RECORD line: every record is in a file"
    );
    let gzip = Encoding {
        format: "jsonl".into(),
        compression: "gzip".into(),
    };
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for (stream, encoding, manifest) in run.batches() {
        assert_eq!(encoding, &gzip);
        assert_eq!(
            manifest.len(),
            1,
            "one file a BATCH, as the SDK's taps send"
        );
        assert!(manifest[0].starts_with(&format!("file://{}/t-tap-gleap--", root.display())));
        *files.entry(stream).or_default() += 1;
    }
    for name in ALL_STREAMS {
        let got: BTreeSet<String> = run.by_id(name).into_keys().collect();
        assert_eq!(
            got,
            fake_ids(&server, name),
            "{name}: the files hold every record"
        );
    }
    assert!(
        files["tickets"] > 1,
        "batch_size 40 cuts tickets into several files: {files:?}"
    );
    // SCHEMA before the BATCH of its stream, a new field's SCHEMA before
    // the file that first carries it: every record from the files is valid
    // against the last SCHEMA of its stream before its BATCH.
    assert_records_match_schemas(&Run {
        code: run.code,
        stdout: String::new(),
        stderr: String::new(),
        messages: run.expanded.clone(),
    });
    assert_states_follow_their_files(&server, &run);
    assert!(
        matches!(run.lines.last(), Some(Line::State { .. })),
        "the output ends with a STATE"
    );
    // Exactly the records RECORD lines would have carried.
    let plain = plain_records(&cfg, &["--catalog", path_str(&catalog)], ALL_STREAMS);
    for name in ALL_STREAMS {
        assert_eq!(
            run.by_id(name),
            plain[*name],
            "{name}: the same records as RECORD lines"
        );
    }
    // Nothing is left half-written once the run ended.
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn uncompressed_files_are_plain_json_lines() {
    let server = start(small_config());
    let s = Scratch::new();
    let root = s.dir.path().join("plain");
    let cfg = s.config(
        &server,
        json!({"batch_config": batch_config(&root, "none", 25)}),
    );
    let run = run_batch(&["--config", path_str(&cfg)]);
    run.assert_ok();
    assert!(run.batches().all(|(_, e, _)| e.compression == "none"));
    for name in default_streams() {
        let got: BTreeSet<String> = run.by_id(name).into_keys().collect();
        assert_eq!(got, fake_ids(&server, name), "{name}");
    }
    let outputs = [run.expanded.as_slice()];
    assert_nothing_lost(&server, &outputs, "an uncompressed batch run");
}

#[test]
fn a_new_fields_schema_comes_before_the_batch_that_carries_it() {
    let server = start(fake_config());
    let s = Scratch::new();
    let root = s.dir.path().join("b");
    let cfg = s.config(
        &server,
        json!({"page_size": 40, "batch_config": batch_config(&root, "gzip", 1000)}),
    );
    let run = run_batch(&["--config", path_str(&cfg)]);
    run.assert_ok();
    // `escalation` (in no schema) first comes with a ticket in the middle
    // of the stream.
    let mut schema_has_it = false;
    let mut carried = 0;
    for l in &run.lines {
        match l {
            Line::Schema { stream, schema, .. } if stream == "tickets" => {
                schema_has_it = schema["properties"].get("escalation").is_some();
            }
            Line::Batch {
                stream,
                encoding,
                manifest,
            } if stream == "tickets" => {
                let with = manifest
                    .iter()
                    .flat_map(|u| read_file(u, encoding))
                    .filter(|r| r.contains_key("escalation"))
                    .count();
                assert!(
                    with == 0 || schema_has_it,
                    "a file with escalation was announced before a SCHEMA that has it"
                );
                carried += with;
            }
            _ => {}
        }
    }
    assert!(carried > 0, "the fake sends escalation on some tickets");
}

#[test]
fn stream_maps_and_flattening_land_in_the_files() {
    let server = start(small_config());
    let s = Scratch::new();
    let root = s.dir.path().join("mapped");
    let cfg = s.config(
        &server,
        json!({
            "batch_config": batch_config(&root, "gzip", 15),
            "stream_maps": {
                "teams": {"__alias__": "gleap_teams"},
                "sessions": {"email": "md5(email) if email else None"},
                "ticket_ids": {"__source__": "tickets", "__else__": null, "id": "id", "status": "status"},
            },
            "flattening_enabled": true,
            "flattening_max_depth": 1,
        }),
    );
    let run = run_batch(&["--config", path_str(&cfg)]);
    run.assert_ok();
    let named = |stream: &str| {
        run.batches()
            .filter(|(s, _, _)| *s == stream)
            .flat_map(|(_, _, m)| m.to_vec())
            .collect::<Vec<String>>()
    };
    assert!(named("teams").is_empty(), "teams goes out as its alias");
    for alias in ["gleap_teams", "ticket_ids"] {
        let files = named(alias);
        assert!(!files.is_empty(), "{alias} has BATCH messages");
        assert!(
            files.iter().all(|u| u.contains(&format!("--{alias}-"))),
            "{alias} has files of its own: {files:?}"
        );
    }
    let mut outputs: Vec<&str> = default_streams()
        .into_iter()
        .filter(|s| *s != "teams")
        .collect();
    outputs.extend(["gleap_teams", "ticket_ids"]);
    let plain = plain_records(&cfg, &[], &outputs);
    for name in &outputs {
        assert!(!plain[*name].is_empty(), "{name}");
        assert_eq!(
            run.by_id(name),
            plain[*name],
            "{name}: as the mapped RECORD lines"
        );
    }
    let session = plain["sessions"]
        .values()
        .find(|r| r["email"].is_string())
        .unwrap();
    assert_eq!(session["email"].as_str().unwrap().len(), 32, "hashed");
    assert!(
        run.by_id("tickets")
            .values()
            .any(|r| r["formData"].is_string()),
        "flattened: objects without properties become JSON strings"
    );
    assert!(plain["ticket_ids"].values().all(|r| r.len() == 2));
}

/// Records that carry a table version (a reconciling pass) stay RECORD
/// lines: a raw record in a file cannot carry it, and the SDK's targets
/// load a file's rows without one, which the ACTIVATE_VERSION would then
/// mark deleted. So each ACTIVATE_VERSION follows every record of its
/// version, as RECORD lines, and no file of its stream; the other streams
/// still go to files.
#[test]
fn a_reconciled_stream_delivers_its_version_before_its_activate_version() {
    let server = start(small_config());
    let s = Scratch::new();
    let root = s.dir.path().join("r");
    let cfg = s.config(
        &server,
        json!({
            "page_size": 7,
            "reconcile_streams": {"tickets": "7d", "sessions": "7d"},
            "batch_config": batch_config(&root, "gzip", 10),
        }),
    );
    let run = run_batch(&["--config", path_str(&cfg)]);
    run.assert_ok();
    let mut activated = BTreeSet::new();
    let mut versioned: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for l in &run.lines {
        match l {
            Line::Record {
                stream,
                record,
                version: Some(v),
                ..
            } => {
                versioned
                    .entry((stream.clone(), *v))
                    .or_default()
                    .insert(record["id"].as_str().unwrap().to_string());
            }
            Line::Record { stream, .. } => panic!("{stream}: a RECORD without a version"),
            Line::ActivateVersion { stream, version } => {
                let got = versioned
                    .get(&(stream.clone(), *version))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    got,
                    fake_ids(&server, stream),
                    "{stream}: every record of version {version} before its ACTIVATE_VERSION"
                );
                activated.insert(stream.clone());
            }
            _ => {}
        }
    }
    for stream in ["tickets", "sessions"] {
        assert!(activated.contains(stream), "{stream} was reconciled");
    }
    for (stream, _, _) in run.batches() {
        assert!(
            !activated.contains(stream),
            "{stream}: a file of a versioned stream"
        );
    }
    for name in ["messages", "survey_responses"] {
        assert!(
            run.batches().any(|(s, _, _)| s == name),
            "{name} still goes to files"
        );
    }
    let outputs = [run.expanded.as_slice()];
    assert_nothing_lost(&server, &outputs, "a reconciling batch run");
}

/// `kill -9` after `lines` complete lines of stdout (the run may end first).
fn run_killed(args: &[&str], lines: usize) -> BatchRun {
    let mut child = tap_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tap starts");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = Vec::new();
    let mut seen = 0;
    loop {
        let before = stdout.len();
        match reader.read_until(b'\n', &mut stdout) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if stdout[before..].ends_with(b"\n") {
            seen += 1;
            if seen == lines {
                let _ = child.kill();
            }
        }
    }
    let status = child.wait().unwrap();
    // A target drops a torn last line.
    let cut = stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    stdout.truncate(cut);
    decode_batch(Output {
        status,
        stdout,
        stderr: stderr.join().unwrap(),
    })
}

#[test]
fn a_kill_at_any_point_then_a_resume_from_the_last_state_loses_nothing() {
    // A little latency, so that the run is still going when most kills land.
    let server = start(fake_gleap::FakeConfig {
        latency: std::time::Duration::from_millis(2),
        ..fake_config()
    });
    for kill_after in [1, 3, 8, 20, 45, 90] {
        let s = Scratch::new();
        let root = s.dir.path().join("b");
        let cfg = s.config(
            &server,
            json!({"page_size": 20, "batch_config": batch_config(&root, "gzip", 25)}),
        );
        // Every file the killed run named is read whole (`read_file`).
        let killed = run_killed(&["--config", path_str(&cfg)], kill_after);
        let state = killed
            .lines
            .iter()
            .rev()
            .find_map(|l| match l {
                Line::State { value } => Some(value.clone()),
                _ => None,
            })
            .unwrap_or_else(|| json!({}));
        let st = s.write_json("state.json", &state);
        let resumed = run_batch(&["--config", path_str(&cfg), "--state", path_str(&st)]);
        resumed.assert_ok();
        let outputs = [killed.expanded.as_slice(), resumed.expanded.as_slice()];
        assert_nothing_lost(
            &server,
            &outputs,
            &format!("killed after {kill_after} lines, then resumed"),
        );
        // What the kill left half-written is named by no BATCH, then or later.
        let named: BTreeSet<String> = [&killed, &resumed]
            .iter()
            .flat_map(|r| {
                r.batches()
                    .flat_map(|(_, _, m)| m.to_vec())
                    .collect::<Vec<_>>()
            })
            .collect();
        for entry in std::fs::read_dir(&root).unwrap() {
            let name = entry.unwrap().path();
            if name.extension().is_some_and(|e| e == "tmp") {
                let url = format!("file://{}", name.display());
                assert!(!named.contains(&url), "{url} was named");
            }
        }
    }
}

#[test]
fn an_unwritable_root_fails_at_the_start_with_one_line() {
    let server = start(small_config());
    let s = Scratch::new();
    let blocker = s.write("a-file", "");
    let cfg = s.config(
        &server,
        json!({"batch_config": batch_config(&blocker.join("batches"), "gzip", 100)}),
    );
    let run = run_batch(&["--config", path_str(&cfg)]);
    assert_eq!(run.code, CONFIG_ERROR, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    let error = run
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .to_string();
    assert!(
        error.contains("\"batch_config\"") && error.contains("a-file/batches"),
        "{error}"
    );
    assert_eq!(server.stats().requests, 0, "no request before the check");
}

#[test]
fn a_bad_batch_config_is_one_config_error_naming_the_key() {
    let server = start(small_config());
    let s = Scratch::new();
    for (bad, says) in [
        (
            json!({"encoding": {"format": "jsonl", "compression": "zstd"}, "storage": {"root": "file:///tmp"}}),
            "\"batch_config.encoding.compression\" must be \"gzip\" or \"none\"",
        ),
        (
            json!({"encoding": {"format": "jsonl"}, "storage": {"root": "s3://bucket/gleap"}}),
            "\"batch_config.storage.root\" must be a file:// URL",
        ),
        (
            json!("not an object"),
            "\"batch_config\" must be a JSON object",
        ),
    ] {
        let cfg = s.config(&server, json!({"batch_config": bad}));
        let run = run_batch(&["--config", path_str(&cfg)]);
        assert_eq!(run.code, CONFIG_ERROR, "{}", run.stderr);
        assert!(run.stdout.is_empty());
        let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        assert!(
            lines[0].contains(says) && lines[0].contains("config.json"),
            "{}",
            lines[0]
        );
    }
    // From the environment, as JSON text.
    let cfg = s.config(&server, json!({}));
    let env = tap_with_env_plain(
        &["--config", path_str(&cfg), "--config", "ENV"],
        &[(
            "TAP_GLEAP_BATCH_CONFIG",
            r#"{"encoding": {"format": "parquet"}, "storage": {"root": "file:///tmp"}}"#,
        )],
    );
    assert_eq!(env.code, CONFIG_ERROR, "{}", env.stderr);
    assert!(
        env.stderr.contains("TAP_GLEAP_BATCH_CONFIG"),
        "{}",
        env.stderr
    );
    assert_eq!(server.stats().requests, 0);
}

fn tap_with_env_plain(args: &[&str], env: &[(&str, &str)]) -> BatchRun {
    let mut cmd = tap_command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    decode_batch(cmd.output().expect("the tap binary runs"))
}
