//! Deletions: a stream due for reconciliation (`reconcile_every`,
//! `reconcile_streams`) is read whole under a new table version, and
//! ACTIVATE_VERSION follows only a pass that completed without error.
//! A target is played by [`Warehouse`], which does with the messages what
//! meltanolabs-target-postgres does: upsert on the key, keeping the
//! record's `version`, and on ACTIVATE_VERSION mark every row of an older
//! version (or none) deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_gleap::{FakeConfig, Fault, Faults};
use serde_json::{json, Value};

use crate::reliability::{run_killed, Kill};
use crate::util::*;

/// The streams these tests reconcile: every kind there is (partitioned
/// tickets, sessions, messages, a per-parent list, a full-table list).
const STREAMS: &[&str] = &[
    "tickets",
    "sessions",
    "messages",
    "survey_responses",
    "teams",
];
const RECONCILED: &[&str] = &["tickets", "sessions", "messages", "survey_responses"];

/// Rows as a target that honours ACTIVATE_VERSION keeps them.
#[derive(Default)]
struct Warehouse {
    /// stream -> id -> (version, deleted)
    tables: BTreeMap<String, BTreeMap<String, (Option<i64>, bool)>>,
}

impl Warehouse {
    fn load(&mut self, run: &Run) {
        for m in &run.messages {
            match m {
                Message::Record {
                    stream,
                    record,
                    version,
                    ..
                } => {
                    let id = record["id"].as_str().unwrap().to_string();
                    self.tables
                        .entry(stream.clone())
                        .or_default()
                        .insert(id, (*version, false));
                }
                Message::ActivateVersion { stream, version } => {
                    for row in self.tables.entry(stream.clone()).or_default().values_mut() {
                        if row.0.is_none_or(|v| v < *version) {
                            row.1 = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn live(&self, stream: &str) -> BTreeSet<String> {
        self.rows(stream, false)
    }

    fn deleted(&self, stream: &str) -> BTreeSet<String> {
        self.rows(stream, true)
    }

    fn rows(&self, stream: &str, deleted: bool) -> BTreeSet<String> {
        self.tables
            .get(stream)
            .map(|t| {
                t.iter()
                    .filter(|(_, r)| r.1 == deleted)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The ACTIVATE_VERSION messages of a run, per stream.
fn activations(run: &Run) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in &run.messages {
        if let Message::ActivateVersion { stream, version } = m {
            out.entry(stream.clone()).or_default().push(*version);
        }
    }
    out
}

/// The versions a run's records of `stream` carry.
fn record_versions(run: &Run, stream: &str) -> BTreeSet<Option<i64>> {
    run.messages
        .iter()
        .filter_map(|m| match m {
            Message::Record {
                stream: s, version, ..
            } if s == stream => Some(*version),
            _ => None,
        })
        .collect()
}

/// Every stream's `reconciled_at` in a state.
fn reconciled_at(state: &Value) -> BTreeMap<String, String> {
    state["bookmarks"]
        .as_object()
        .map(|b| {
            b.iter()
                .filter_map(|(s, v)| Some((s.clone(), v.get("reconciled_at")?.as_str()?.into())))
                .collect()
        })
        .unwrap_or_default()
}

/// A state whose reconciliations all happened `days` ago.
fn reconciled_days_ago(state: &Value, days: i64) -> Value {
    let mut state = state.clone();
    let at = (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    for (_, v) in state["bookmarks"].as_object_mut().unwrap().iter_mut() {
        if v.get("reconciled_at").is_some() {
            v["reconciled_at"] = json!(at);
        }
    }
    state
}

fn select_args(cfg: &std::path::Path) -> Vec<String> {
    vec![
        "--config".into(),
        path_str(cfg).into(),
        "--select".into(),
        STREAMS.join(","),
    ]
}

fn run_with(s: &Scratch, cfg: &std::path::Path, state: &Value) -> Run {
    let st = s.write_json("state.json", state);
    let mut args = select_args(cfg);
    args.extend(["--state".into(), path_str(&st).into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tap(&args)
}

#[test]
fn deleted_records_are_marked_after_the_reconciling_run_and_nothing_else() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 7, "reconcile_every": "7d"}));

    // Run 1, no state: every stream is due (never reconciled).
    let run1 = run_with(&s, &cfg, &json!({}));
    run1.assert_ok();
    let v1 = activations(&run1);
    for name in STREAMS {
        assert_eq!(
            v1.get(*name).map(Vec::len),
            Some(1),
            "{name}: one ACTIVATE_VERSION"
        );
        assert_eq!(
            record_versions(&run1, name),
            BTreeSet::from([Some(v1[*name][0])]),
            "{name}: every record under the version activated"
        );
    }
    let state1 = run1.last_state().clone();
    let marks = reconciled_at(&state1);
    assert_eq!(
        marks.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        RECONCILED.iter().copied().collect(),
        "the state records each incremental stream's reconciliation"
    );
    let mut wh = Warehouse::default();
    wh.load(&run1);

    // Run 2, within the period: an ordinary incremental run, no version on
    // the incremental streams' records; the full-table list still sends one.
    for name in RECONCILED {
        server.update(stream(name), 2);
        server.create(stream(name), 2);
    }
    let run2 = run_with(&s, &cfg, &state1);
    run2.assert_ok();
    let v2 = activations(&run2);
    assert_eq!(
        v2.keys().map(String::as_str).collect::<Vec<_>>(),
        ["teams"],
        "only the full-table list activates a version between reconciliations"
    );
    for name in RECONCILED {
        assert_eq!(
            record_versions(&run2, name),
            BTreeSet::from([None]),
            "{name}"
        );
        assert!(
            run2.records(name).len() >= 4,
            "{name}: the changes were read"
        );
    }
    let state2 = run2.last_state().clone();
    assert_eq!(reconciled_at(&state2), marks, "kept as it was");
    wh.load(&run2);

    // Deletions, then run 3 once the period has passed: the reconciling run.
    let mut deleted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for name in STREAMS {
        deleted.insert(name, server.delete(stream(name), 2));
    }
    // Deleted in Gleap, but written by run 2: the new ones too.
    let created_then_deleted = server.create(stream("tickets"), 1);
    let run2b = run_with(&s, &cfg, &state2);
    run2b.assert_ok();
    wh.load(&run2b);
    for id in &created_then_deleted {
        assert!(server.delete_id(stream("tickets"), id));
    }
    let state = reconciled_days_ago(run2b.last_state(), 8);
    let run3 = run_with(&s, &cfg, &state);
    run3.assert_ok();
    let v3 = activations(&run3);
    wh.load(&run3);
    for name in STREAMS {
        let v = v3
            .get(*name)
            .unwrap_or_else(|| panic!("{name}: ACTIVATE_VERSION; stderr:\n{}", run3.stderr));
        assert!(v[0] > v1[*name][0], "{name}: a newer version");
        assert_eq!(
            run3.ids(name),
            fake_ids(&server, name),
            "{name}: the version holds exactly the live records"
        );
        assert_eq!(
            wh.live(name),
            fake_ids(&server, name),
            "{name}: every live record stays, whichever run wrote it"
        );
        let mut gone: BTreeSet<String> = deleted[name].iter().cloned().collect();
        if *name == "tickets" {
            gone.extend(created_then_deleted.iter().cloned());
        }
        assert!(!gone.is_empty());
        assert_eq!(
            wh.deleted(name),
            gone,
            "{name}: the deleted records, and only they"
        );
    }
    // ACTIVATE_VERSION comes after every record of its stream.
    for name in STREAMS {
        let last_record = run3
            .messages
            .iter()
            .rposition(|m| matches!(m, Message::Record { stream, .. } if stream == name))
            .unwrap();
        let activate = run3
            .messages
            .iter()
            .position(|m| matches!(m, Message::ActivateVersion { stream, .. } if stream == name))
            .unwrap();
        assert!(activate > last_record, "{name}");
    }
    let state3 = run3.last_state().clone();
    let marks3 = reconciled_at(&state3);
    for name in RECONCILED {
        let was = state["bookmarks"][*name]["reconciled_at"].as_str().unwrap();
        assert!(marks3[*name].as_str() > was, "{name}: moved");
    }

    // The bookmarks the pass left are an incremental run's: run 4, with
    // nothing changed, reads no more than the records at the bookmarks.
    let run4 = run_with(&s, &cfg, &state3);
    run4.assert_ok();
    assert!(activations(&run4).keys().all(|k| k == "teams"));
    for name in RECONCILED {
        let n = run4.records(name).len();
        assert!(
            n <= 6,
            "{name}: {n} records read again after the reconciliation"
        );
    }
}

#[test]
fn a_killed_reconciling_run_activates_nothing_and_the_next_run_reads_whole_again() {
    let server = start(FakeConfig {
        latency: Duration::from_millis(10),
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 5, "reconcile_every": "1d"}));
    let first = run_with(&s, &cfg, &json!({}));
    first.assert_ok();
    server.delete(stream("tickets"), 3);
    let due = reconciled_days_ago(first.last_state(), 2);
    let st = s.write_json("due.json", &due);
    let mut args = select_args(&cfg);
    args.extend(["--state".into(), path_str(&st).into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let killed = run_killed(&args, Kill::AfterLines(40));
    assert_eq!(
        killed.code, -1,
        "killed mid-pass; stderr:\n{}",
        killed.stderr
    );
    assert!(
        !killed.records("tickets").is_empty() || !killed.records("sessions").is_empty(),
        "the pass had begun"
    );
    let acts = activations(&killed);
    for name in RECONCILED {
        if acts.contains_key(*name) {
            // A stream that finished before the kill reconciled for good.
            continue;
        }
        let after = latest_state(std::slice::from_ref(&killed));
        let was = due["bookmarks"][*name]["reconciled_at"].clone();
        let now = after["bookmarks"][*name]
            .get("reconciled_at")
            .cloned()
            .unwrap_or(Value::Null);
        assert!(
            now == was || now.is_null() && after == json!({}),
            "{name}: a pass that did not complete records no reconciliation ({now} vs {was})"
        );
    }
    assert!(
        RECONCILED.iter().any(|n| !acts.contains_key(*n)),
        "the kill landed before some stream's pass completed: {acts:?}"
    );
    let resumed_from = latest_state(std::slice::from_ref(&killed));
    let resumed_from = if resumed_from == json!({}) {
        due
    } else {
        resumed_from
    };
    let next = run_with(&s, &cfg, &resumed_from);
    next.assert_ok();
    let acts_next = activations(&next);
    for name in RECONCILED {
        if acts.contains_key(*name) {
            continue;
        }
        assert!(
            acts_next.contains_key(*name),
            "{name}: redone by the next run"
        );
        assert_eq!(
            next.ids(name),
            fake_ids(&server, name),
            "{name}: read whole again"
        );
        assert!(reconciled_at(next.last_state()).contains_key(*name));
    }
}

#[test]
fn a_pass_cut_short_by_api_failures_activates_nothing() {
    let server = start(FakeConfig {
        faults: Faults {
            rate: 0.5,
            kinds: vec![Fault::Status500, Fault::Status503, Fault::TruncatedJson],
            hang: Duration::from_secs(1),
        },
        ..small_config()
    });
    let s = Scratch::new();
    // No retries: the first failure ends the stream, its list cut short.
    let cfg = s.config(
        &server,
        json!({"page_size": 5, "reconcile_every": "1d", "retry_budget_seconds": 0}),
    );
    let run = run_with(&s, &cfg, &json!({}));
    assert_ne!(run.code, 0, "streams failed");
    let acts = activations(&run);
    let state = latest_state(std::slice::from_ref(&run));
    let marks = reconciled_at(&state);
    let failed: Vec<&str> = RECONCILED
        .iter()
        .copied()
        .filter(|n| run.stderr.contains(&format!("stream {n} failed")))
        .collect();
    assert!(!failed.is_empty(), "some stream failed:\n{}", run.stderr);
    for name in &failed {
        assert!(
            !acts.contains_key(*name),
            "{name} failed: no ACTIVATE_VERSION"
        );
        assert!(
            !marks.contains_key(*name),
            "{name} failed: no reconciliation recorded"
        );
    }
    // The same with retries: the lists come back whole, and activate.
    server.set_faults(Faults {
        rate: 0.2,
        kinds: vec![Fault::Status500, Fault::Status503, Fault::TruncatedJson],
        hang: Duration::from_secs(1),
    });
    let cfg = s.config(
        &server,
        json!({"page_size": 5, "reconcile_every": "1d", "retry_budget_seconds": 30}),
    );
    let run = run_with(&s, &cfg, &state);
    run.assert_ok();
    let acts = activations(&run);
    for name in &failed {
        assert!(
            acts.contains_key(*name),
            "{name}: reconciled once the API answers"
        );
        assert_eq!(run.ids(name), fake_ids(&server, name), "{name}");
    }
}

#[test]
fn a_reconciling_pass_holds_every_record_updated_while_it_runs() {
    // A record updated mid-pass moves to the end of updatedAt order, past
    // the sync's start: the pass reads on to the end of the list, or the
    // target would delete that record.
    let server = start(FakeConfig {
        latency: Duration::from_millis(15),
        tickets: 400,
        sessions: 300,
        ..fake_config()
    });
    let s = Scratch::new();
    // Paced, so that the pass lasts seconds on any machine: the updates
    // land while it reads, then stop, so that its catch-up can settle (a
    // pass under changes that never stop is never activated:
    // `a_pass_is_activated_only_when_its_catch_up_proves_it_whole`).
    let cfg = s.config(
        &server,
        json!({"page_size": 25, "reconcile_every": "7d", "requests_per_minute": 1200}),
    );
    let before_t = fake_ids(&server, "tickets");
    let before_s = fake_ids(&server, "sessions");
    let mut running = spawn_tap(&["--config", path_str(&cfg), "--select", "tickets,sessions"]);
    let mut updates = 0;
    while_running(&mut running, Duration::from_millis(30), || {
        if updates < 10 {
            server.update(stream("tickets"), 3);
            server.update(stream("sessions"), 3);
            updates += 1;
        }
    });
    let run = running.finish();
    run.assert_ok();
    // The pass takes some 50 requests, 20 a second at most: over two
    // seconds on any machine, where the ten rounds take a third of one.
    assert_eq!(updates, 10, "every round of updates landed while it ran");
    let acts = activations(&run);
    for (name, before) in [("tickets", before_t), ("sessions", before_s)] {
        assert!(acts.contains_key(name), "{name}: the pass completed");
        let got = run.ids(name);
        let missing: Vec<_> = before.iter().filter(|id| !got.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{name}: {} records missing from the version, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
    }
    // And the bookmarks lose nothing: a run right after reads every record
    // updated since (the last updates, at least).
    let versions = fake_versions(&server, "tickets");
    let next = s.tap_with_state(
        &s.config(&server, json!({"page_size": 25})),
        run.last_state(),
    );
    next.assert_ok();
    let bm = run.last_state()["bookmarks"]["tickets"]["partitions"][0]["replication_key_value"]
        .as_str()
        .unwrap()
        .to_string();
    let after: BTreeSet<String> = versions
        .iter()
        .filter(|(_, ua)| ua.as_str() > bm.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    let got = next.ids("tickets");
    let lost: Vec<_> = after.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "updated past the bookmark and not read: {lost:?}"
    );
}

/// Records change all through the pass and its catch-up rounds (the fake
/// updates a few at every request, whatever the machine's speed). Sessions,
/// one list read in ascending `updatedAt`, are proven whole by one round
/// read in order: their version holds every record. Tickets are read in
/// three partitions a record can move between, so only rounds that settle
/// prove them, and none does: no ACTIVATE_VERSION, the reason said, and
/// the stream still due. A version that may lack a living record is never
/// activated, however slow the machine or busy the project.
#[test]
fn a_pass_is_activated_only_when_its_catch_up_proves_it_whole() {
    let server = start(FakeConfig {
        mutate_every: Some(fake_gleap::MutateEvery {
            requests: 1,
            updates: 2,
            creates: 0,
            deletes: 0,
        }),
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 20, "reconcile_every": "7d"}));
    let sessions = fake_ids(&server, "sessions");
    let run = tap(&["--config", path_str(&cfg), "--select", "tickets,sessions"]);
    run.assert_ok();
    let acts = activations(&run);
    assert!(acts.contains_key("sessions"), "{}", run.stderr);
    let got = run.ids("sessions");
    let missing: Vec<_> = sessions.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "sessions missing from the version: {missing:?}"
    );
    assert!(!acts.contains_key("tickets"), "tickets never settled");
    assert!(
        run.stderr
            .contains("records kept changing during the whole pass")
            && run
                .stderr
                .contains("no ACTIVATE_VERSION: the pass may lack records"),
        "{}",
        run.stderr
    );
    let marks = reconciled_at(run.last_state());
    assert!(marks.contains_key("sessions") && !marks.contains_key("tickets"));
}

/// Under every plausible answer of the API (`fake_gleap::MODES`), while
/// records are updated, created and deleted during it, a reconciling pass
/// either activates a version holding every record that lived through it,
/// or, saying why, activates none.
#[test]
fn every_mode_activates_only_versions_that_hold_every_living_record() {
    let only = std::env::var("FAKE_MODES").unwrap_or_default();
    let modes: Vec<&'static fake_gleap::ServerMode> = fake_gleap::MODES
        .iter()
        .filter(|m| only.is_empty() || only.split(',').any(|o| o.trim() == m.name))
        .collect();
    for chunk in modes.chunks(6) {
        crate::reliability::in_parallel(chunk.to_vec(), mode_reconciles);
    }
}

fn mode_reconciles(mode: &'static fake_gleap::ServerMode) {
    let mut cfg = FakeConfig {
        tickets: 300,
        sessions: 120,
        messages: 150,
        surveys: 3,
        responses_per_survey: 20,
        tie_group: 25,
        latency: Duration::from_millis(2),
        ..fake_config()
    };
    (mode.apply)(&mut cfg);
    let server = start(cfg);
    let s = Scratch::new();
    let cfg = s.config(
        &server,
        json!({"page_size": 20, "retry_budget_seconds": 30, "reconcile_every": "7d"}),
    );
    let before: BTreeMap<&str, BTreeSet<String>> = RECONCILED
        .iter()
        .map(|n| (*n, fake_ids(&server, n)))
        .collect();
    let mut running = spawn_tap(&[
        "--config",
        path_str(&cfg),
        "--select",
        &RECONCILED.join(","),
    ]);
    // Changes while the pass runs, for a while (a whole pass reads to the
    // end of the list: changes faster than it reads would keep it going).
    let mut rounds = 0;
    while_running(&mut running, Duration::from_millis(20), || {
        rounds += 1;
        if rounds > 25 {
            return;
        }
        for name in RECONCILED {
            server.update(stream(name), 2);
            server.create(stream(name), 1);
            server.delete(stream(name), 1);
        }
        if rounds % 5 == 0 {
            server.bulk_update(stream("tickets"), 30);
        }
    });
    let run = running.finish();
    assert_eq!(run.code, 0, "{}: {}", mode.name, run.error_line());
    let acts = activations(&run);
    for name in RECONCILED {
        if !acts.contains_key(*name) {
            // Only a pass that said why (a list that kept shifting, a tie
            // group not proven whole) may end without one.
            assert!(
                run.stderr
                    .contains("no ACTIVATE_VERSION: the pass may lack records"),
                "{}: {name}: no ACTIVATE_VERSION, and no reason given",
                mode.name
            );
            continue;
        }
        let got = run.ids(name);
        let after = fake_ids(&server, name);
        let missing: Vec<_> = before[name]
            .intersection(&after)
            .filter(|id| !got.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: {name}: {} records that lived through the pass are missing from its version, e.g. {:?}; the tap's warnings:\n{}",
            mode.name,
            missing.len(),
            &missing[..missing.len().min(3)],
            run.stderr
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("reading again") || l.contains(name))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "{:<28} activated: {:?}",
        mode.name,
        acts.keys().collect::<Vec<_>>()
    );
}
