//! The lists beyond the first seven: team members, the help center, news,
//! the engagement lists, custom components, and the per-parent lists
//! (ticket activity logs, contacts' activities and events). Each against
//! the fake's own truth; plans that lack a feature; a stream that fails
//! while the others complete.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_gleap::{FakeConfig, FakeGleap};
use serde_json::{json, Value};

use crate::sync::assert_complete_streams;
use crate::util::*;

const PARTIAL: i32 = 9;

/// `--select` with every stream of the tap.
fn every_stream() -> String {
    ALL_STREAMS.join(",")
}

/// Whether `path` is `prefix...suffix`, a parent's id between.
fn per_parent(path: &str, prefix: &str, suffix: &str) -> bool {
    path.starts_with(prefix) && path.ends_with(suffix) && path.len() > prefix.len() + suffix.len()
}

/// Pages `run` read on paths `/v3prefix...suffix` (one per parent): the
/// requests the fake served there, less the tap's retries of them (a
/// loaded machine can make a request time out; the fake then counts it
/// twice, the tap reads one page).
fn per_parent_requests(server: &FakeGleap, run: &Run, prefix: &str, suffix: &str) -> u64 {
    let served: u64 = server
        .stats()
        .by_path
        .iter()
        .filter(|(p, _)| {
            p.strip_prefix("/v3")
                .is_some_and(|p| per_parent(p, prefix, suffix))
        })
        .map(|(_, n)| n)
        .sum();
    let retried = retried_paths(run)
        .iter()
        .filter(|p| per_parent(p, prefix, suffix))
        .count() as u64;
    served - retried
}

/// A sync of the streams of `select`, from `state`.
fn sync_from(s: &Scratch, cfg: &std::path::Path, select: &str, state: &Value) -> Run {
    let st = s.write_json("state.json", state);
    tap(&[
        "--config",
        path_str(cfg),
        "--select",
        select,
        "--state",
        path_str(&st),
    ])
}

/// Lines of stderr at WARN that name `what`.
fn warnings<'a>(run: &'a Run, what: &str) -> Vec<&'a str> {
    run.stderr
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(what))
        .collect()
}

#[test]
fn discover_lists_every_stream_and_leaves_the_per_parent_ones_unselected() {
    let run = tap_plain(&["--discover"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let catalog: Value = serde_json::from_str(&run.stdout).unwrap();
    let entries = catalog["streams"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["tap_stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ALL_STREAMS);
    for e in entries {
        let name = e["tap_stream_id"].as_str().unwrap();
        let root = &e["metadata"][0]["metadata"];
        let per_parent = PER_PARENT.contains(&name);
        assert_eq!(root["selected-by-default"], json!(!per_parent), "{name}");
        assert_eq!(
            root.get("selected"),
            per_parent.then_some(&json!(false)),
            "{name}"
        );
    }
    // --about says what each costs.
    let about: Value = serde_json::from_str(&tap_plain(&["--about"]).stdout).unwrap();
    for s in about["streams"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let cost = s["requests"].as_str().unwrap();
        if name == "ticket_activity_logs" {
            assert!(
                cost.contains("one request per ticket updated since the bookmark"),
                "{cost}"
            );
        }
        assert_eq!(s["selected_by_default"], json!(!PER_PARENT.contains(&name)));
    }
}

/// A sync of every stream (`--select` names the per-parent ones too)
/// delivers every record the fake holds, each valid for its schema, with no
/// schema drift; child records carry their parent's id.
#[test]
fn a_sync_of_every_stream_delivers_every_record_the_api_holds() {
    let server = start(FakeConfig {
        tickets: 80,
        sessions: 30,
        messages: 40,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 7}));
    let run = tap(&["--config", path_str(&cfg), "--select", &every_stream()]);
    run.assert_ok();
    assert_complete_streams(&run, &server, ALL_STREAMS);
    assert_records_match_schemas(&run);
    let drift: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("schema drift"))
        .collect();
    assert!(drift.is_empty(), "{drift:#?}");
    // Each child record carries its parent's id, as the fake holds it.
    for (name, field) in [
        ("helpcenter_articles", "collection_id"),
        ("ticket_activity_logs", "ticket_id"),
        ("session_activities", "session_id"),
        ("session_events", "session_id"),
        ("survey_responses", "survey_id"),
    ] {
        let truth: BTreeMap<String, Option<String>> = server
            .snapshot(stream(name))
            .into_iter()
            .map(|r| (r.id, r.parent_id))
            .collect();
        for r in run.records(name) {
            let id = r["id"].as_str().unwrap();
            assert_eq!(
                r[field].as_str(),
                truth[id].as_deref(),
                "{name} {id}: {field}"
            );
        }
    }
    // Team members name the users that references hold.
    let members = run.ids("team_members");
    let users: BTreeSet<String> = run
        .records("tickets")
        .iter()
        .filter_map(|t| t.get("processingUser").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    assert!(!users.is_empty());
    assert!(users.is_subset(&members), "{users:?} vs {members:?}");
    // Language maps stay JSON; a sub-collection names its parent.
    let collections = run.records("helpcenter_collections");
    assert!(collections.iter().all(|c| c["title"]["en"].is_string()));
    assert!(collections.iter().any(|c| c["parent"]
        .as_str()
        .is_some_and(|p| run.ids("helpcenter_collections").contains(p))));
    // Bookmarks: activities and events on createdAt, every one in the state.
    let state = run.last_state();
    for name in INCREMENTAL {
        let b = &state["bookmarks"][name];
        assert!(
            b["replication_key_value"].is_string() || b["partitions"].is_array(),
            "{name}: {state}"
        );
        if b["replication_key"].is_string() {
            assert_eq!(b["replication_key"], version_field(name), "{name}");
        }
    }
}

/// The per-parent streams read only the parents updated since their
/// bookmark: after 2 tickets and 1 contact change, a run makes 2 activity
/// log requests (and one more for the ticket at the bookmark), not one per
/// ticket, and delivers what changed; the runs together lose nothing.
#[test]
fn per_parent_streams_read_only_the_parents_updated_since_the_bookmark() {
    let server = start(FakeConfig {
        tickets: 120,
        sessions: 50,
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let select = PER_PARENT.join(",");
    let first = tap(&["--config", path_str(&cfg), "--select", &select]);
    first.assert_ok();
    assert_eq!(
        per_parent_requests(&server, &first, "/tickets/", "/activity-logs"),
        120,
        "the first run reads every ticket's activity logs"
    );
    assert_complete_streams(&first, &server, PER_PARENT);

    // Nothing changed: only the parent at the bookmark is read again.
    server.reset_stats();
    let idle = sync_from(&s, &cfg, &select, first.last_state());
    idle.assert_ok();
    assert!(per_parent_requests(&server, &idle, "/tickets/", "/activity-logs") <= 1);
    assert!(per_parent_requests(&server, &idle, "/sessions/", "/events") <= 1);
    assert_eq!(
        bookmarks_only(idle.last_state()),
        bookmarks_only(first.last_state())
    );

    // Two tickets change (one of them by a new activity log entry, which
    // is a change to its ticket), and one contact gets an event.
    let updated = server.update(stream("tickets"), 1);
    let new_log = server.create(stream("ticket_activity_logs"), 1);
    let new_event = server.create(stream("session_events"), 1);
    std::thread::sleep(Duration::from_millis(100));
    server.reset_stats();
    let second = sync_from(&s, &cfg, &select, idle.last_state());
    second.assert_ok();
    let logs = per_parent_requests(&server, &second, "/tickets/", "/activity-logs");
    let events = per_parent_requests(&server, &second, "/sessions/", "/events");
    eprintln!("second run: {logs} activity-log requests, {events} event requests");
    assert!(
        (2..=3).contains(&logs),
        "{logs} activity-log requests for 2 changed tickets"
    );
    assert!(
        (1..=2).contains(&events),
        "{events} event requests for 1 changed contact"
    );
    assert!(second.ids("ticket_activity_logs").contains(&new_log[0]));
    assert!(second.ids("session_events").contains(&new_event[0]));
    let changed_ticket: BTreeSet<String> = updated.into_iter().collect();
    assert!(second
        .records("ticket_activity_logs")
        .iter()
        .any(|r| changed_ticket.contains(r["ticket_id"].as_str().unwrap())));
    let (t, lost) = count_streams(
        &server,
        &[&first.messages, &idle.messages, &second.messages],
        PER_PARENT,
    );
    assert_eq!(t.lost, 0, "{lost:?}");
}

/// Per-parent streams while the parents change under the sync and runs
/// are killed: resumed from the last STATE each printed, they lose nothing.
#[test]
fn per_parent_streams_lose_nothing_through_changes_and_kills() {
    let server = start(FakeConfig {
        tickets: 150,
        sessions: 60,
        tie_group: 4,
        latency: Duration::from_millis(2),
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 10}));
    let select = PER_PARENT.join(",");
    let change = || {
        for name in [
            "tickets",
            "sessions",
            "ticket_activity_logs",
            "session_activities",
            "session_events",
        ] {
            server.update(stream(name), 2);
            server.create(stream(name), 1);
            server.delete(stream(name), 1);
        }
    };
    let mut running = spawn_tap(&["--config", path_str(&cfg), "--select", &select]);
    while_running(&mut running, Duration::from_millis(20), change);
    let mut runs = vec![running.finish()];
    runs[0].assert_ok();
    // Killed once its output has begun (after its three SCHEMAs and a line
    // or two, then further on), not after a time: a loaded machine may not
    // have started the tap's first request 80 ms after its start. A run
    // with fewer lines ends on its own (exit 0), which is as good.
    for (i, after_lines) in [4usize, 10].into_iter().enumerate() {
        change();
        let st = s.write_json(&format!("s{i}.json"), &latest_state(&runs));
        let killed = crate::reliability::run_killed(
            &[
                "--config",
                path_str(&cfg),
                "--select",
                &select,
                "--state",
                path_str(&st),
            ],
            crate::reliability::Kill::AfterLines(after_lines),
        );
        assert!(matches!(killed.code, -1 | 0), "{}", killed.error_line());
        runs.push(killed);
    }
    std::thread::sleep(Duration::from_millis(150));
    let st = s.write_json("last.json", &latest_state(&runs));
    let last = tap(&[
        "--config",
        path_str(&cfg),
        "--select",
        &select,
        "--state",
        path_str(&st),
    ]);
    last.assert_ok();
    runs.push(last);
    let outputs: Vec<&[Message]> = runs.iter().map(|r| r.messages.as_slice()).collect();
    let (t, lost) = count_streams(&server, &outputs, PER_PARENT);
    assert_eq!(t.lost, 0, "{lost:?}");
}

/// A project whose plan lacks some engagement kinds (the fake answering 404,
/// or 403): the sync completes, exit 0, with one warning per missing
/// stream naming it and the status, and every other record delivered.
#[test]
fn a_plan_lacking_some_engagement_kinds_completes_with_a_warning_per_missing_stream() {
    for status in [404u16, 403] {
        let mut config = FakeConfig {
            missing_status: status,
            ..small_config()
        };
        (fake_gleap::mode("plan-lacks-engagement").unwrap().apply)(&mut config);
        let missing: Vec<&str> = default_streams()
            .into_iter()
            .filter(|s| config.missing_features.iter().any(|f| f == s))
            .collect();
        assert_eq!(missing.len(), 4);
        let server = start(config);
        let s = Scratch::new();
        let cfg = s.config(&server, json!({}));
        let run = tap(&["--config", path_str(&cfg)]);
        run.assert_ok();
        for name in &missing {
            let lines = warnings(&run, &format!("stream {name} skipped"));
            assert_eq!(
                lines.len(),
                1,
                "{status} {name}: {:#?}",
                warnings(&run, name)
            );
            assert!(lines[0].contains(&status.to_string()), "{}", lines[0]);
            assert!(run.records(name).is_empty());
        }
        assert_nothing_lost(&server, &[&run.messages], "plan lacks engagement");
        assert!(!run.records("engagement_banners").is_empty());
        // The connection test says so too, and passes.
        let test = tap(&["--config", path_str(&cfg), "--test"]);
        test.assert_ok();
        assert!(
            test.stderr.contains("not available (403/404)"),
            "{}",
            test.stderr
        );
    }
}

/// A 404 on a stream every plan has is a wrong `api_url`, and a 403 refused
/// credentials: the sync stops at once, as before.
#[test]
fn a_404_or_403_on_a_core_stream_still_stops_the_sync() {
    for (status, code, words) in [(404u16, 7, "api_url"), (403, AUTH_ERROR, "api_key")] {
        let server = start(FakeConfig {
            missing_features: vec!["tickets".into()],
            missing_status: status,
            latency: Duration::from_millis(20),
            ..small_config()
        });
        let s = Scratch::new();
        let run = tap(&["--config", path_str(&s.config(&server, json!({})))]);
        assert_eq!(run.code, code, "{status}: {}", run.stderr);
        let line = run.error_line();
        assert!(line.contains(words) && line.contains("tickets"), "{line}");
        assert!(matches!(run.messages.last(), Some(Message::State { .. })));
    }
}

/// One stream failing past its retries (its endpoint down) no longer stops
/// the others: they complete, the STATE covers what was written, the run
/// exits 9 and its last line names the failed stream.
#[test]
fn a_failing_stream_does_not_stop_the_others_and_the_run_is_partial() {
    for broken in ["messages", "news"] {
        let server = start(FakeConfig {
            broken_features: vec![broken.into()],
            ..small_config()
        });
        let s = Scratch::new();
        // A short retry budget, for the broken stream to fail soon; a long
        // request timeout, for no healthy stream's request to fail with it
        // (a loaded machine can keep a local answer past a few seconds).
        let cfg = s.config(
            &server,
            json!({"retry_budget_seconds": 2, "request_timeout_seconds": 60}),
        );
        let run = tap(&["--config", path_str(&cfg)]);
        assert_eq!(run.code, PARTIAL, "{broken}: {}", run.stderr);
        let line = run.error_line();
        assert!(
            line.contains("partial run")
                && line.contains(broken)
                && line.contains("retry_budget_seconds"),
            "{line}"
        );
        let healthy: Vec<&str> = default_streams()
            .into_iter()
            .filter(|s| *s != broken)
            .collect();
        assert_complete_streams(&run, &server, &healthy);
        assert!(run.records(broken).is_empty());
        let state = run.last_state();
        assert!(
            state["bookmarks"]["sessions"]["replication_key_value"].is_string(),
            "{state}"
        );
        assert!(state["bookmarks"].get(broken).is_none(), "{state}");
        assert!(matches!(run.messages.last(), Some(Message::State { .. })));
    }
}

/// A catalog may choose FULL_TABLE for a per-parent stream: every parent's
/// list is read, every run, and no bookmark is kept.
#[test]
fn a_per_parent_stream_synced_full_table_reads_every_parent_every_run() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let cat = catalog_selecting(&cfg, &["ticket_activity_logs"], |e| {
        e["metadata"][0]["metadata"]["replication-method"] = json!("FULL_TABLE");
    });
    let cat = s.write_json("catalog.json", &cat);
    for _ in 0..2 {
        server.reset_stats();
        let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
        run.assert_ok();
        assert_complete_streams(&run, &server, &["ticket_activity_logs"]);
        assert_eq!(
            per_parent_requests(&server, &run, "/tickets/", "/activity-logs"),
            60
        );
        assert!(run.last_state()["bookmarks"]
            .get("ticket_activity_logs")
            .is_none());
    }
}

/// A per-parent endpoint the plan lacks: the first parents' lists all
/// answer 404 (or one answers 403), and the stream is skipped with one
/// warning after a few requests, not one per parent.
#[test]
fn a_missing_per_parent_endpoint_is_skipped_after_a_few_requests() {
    for status in [404u16, 403] {
        let server = start(FakeConfig {
            missing_features: vec!["ticket_activity_logs".into()],
            missing_status: status,
            ..small_config()
        });
        let s = Scratch::new();
        let cfg = s.config(&server, json!({}));
        let run = tap(&[
            "--config",
            path_str(&cfg),
            "--select",
            &PER_PARENT.join(","),
        ]);
        run.assert_ok();
        let lines = warnings(&run, "stream ticket_activity_logs skipped");
        assert_eq!(lines.len(), 1, "{status}: {}", run.stderr);
        // The stream stops at the third 404 (or the first 403), none
        // retried; besides those, only the lists in flight then were asked
        // for, one request each, and no more than the budget's 16 seats
        // (`pager/budget.rs`) run at once, however the answers interleave.
        let requests = per_parent_requests(&server, &run, "/tickets/", "/activity-logs");
        assert!(requests <= 3 + 16, "{status}: {requests} requests");
        assert_complete_streams(&run, &server, &["session_activities", "session_events"]);
        assert!(run.last_state()["bookmarks"]
            .get("ticket_activity_logs")
            .is_none());
    }
}
