//! Incremental correctness: bookmarks, resumption from any STATE, and data
//! changing while a sync runs. "Nothing missing" is checked against what the
//! fake holds, at each record's latest version.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_gleap::{FakeConfig, FakeGleap, TieOrder};
use serde_json::{json, Value};

use crate::util::*;

#[test]
fn a_second_run_extracts_only_what_changed_and_ends_with_the_full_state() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 50}));
    let first = tap(&["--config", path_str(&cfg)]);
    first.assert_ok();
    let state = s.write_json("state.json", first.last_state());

    // Nothing changed: nothing new beyond the boundary records, and the
    // state comes back whole.
    let idle = tap(&["--config", path_str(&cfg), "--state", path_str(&state)]);
    idle.assert_ok();
    assert_eq!(
        bookmarks_only(idle.last_state()),
        bookmarks_only(first.last_state())
    );
    for name in ["sessions", "messages"] {
        assert!(
            idle.records(name).len() <= 2,
            "{name}: only the boundary record again, got {}",
            idle.records(name).len()
        );
    }

    // Changes: exactly those (and boundary duplicates) come out.
    let mut changed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for name in default_incremental() {
        let mut ids = server.update(stream(name), 7);
        ids.extend(server.create(stream(name), 3));
        changed.insert(name, ids);
    }
    // The fake stamps each update a millisecond after the last one, so a
    // burst of changes can be stamped slightly ahead of the wall clock; such
    // records belong to the run after (no bookmark passes a run's start).
    std::thread::sleep(Duration::from_millis(100));
    let second = tap(&["--config", path_str(&cfg), "--state", path_str(&state)]);
    second.assert_ok();
    for name in default_incremental() {
        let got = second.ids(name);
        for id in &changed[name] {
            assert!(
                got.contains(id),
                "{name}: changed record {id} not extracted"
            );
        }
        assert!(
            got.len() <= changed[name].len() + 4,
            "{name}: {} records for {} changes",
            got.len(),
            changed[name].len()
        );
    }
    assert_nothing_lost(
        &server,
        &[&first.messages, &second.messages],
        "first + second",
    );
}

#[test]
fn a_run_resumed_from_any_state_it_printed_misses_nothing() {
    let server = start(FakeConfig {
        tickets: 200,
        sessions: 90,
        messages: 150,
        surveys: 3,
        responses_per_survey: 30,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 40}));
    let full = tap(&["--config", path_str(&cfg)]);
    full.assert_ok();
    let states: Vec<usize> = full
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Message::State { .. }))
        .map(|(i, _)| i)
        .collect();
    // How many STATEs a run prints depends on the order its slices finish
    // in (a watermark that jumps moves once). None can print fewer than
    // one per bookmark of the final state: each moves in a STATE of its
    // own, one batch carrying one bookmark.
    let bookmarks = bookmark_count(full.last_state());
    assert!(
        bookmarks >= 7,
        "a bookmark per incremental walk: {}",
        full.last_state()
    );
    assert!(
        states.len() >= bookmarks,
        "a STATE for each of {bookmarks} bookmarks, got {}",
        states.len()
    );
    for &at in &states {
        // What a target saw up to (and including) this STATE...
        let Message::State { value } = &full.messages[at] else {
            unreachable!()
        };
        // ...plus a run resumed from it, holds every record.
        let resumed = s.tap_with_state(&cfg, value);
        resumed.assert_ok();
        assert_nothing_lost(
            &server,
            &[&full.messages[..=at], &resumed.messages],
            "seen + resumed",
        );
    }
}

/// The leaves of a state that are bookmarks (`replication_key_value`).
fn bookmark_count(state: &Value) -> usize {
    match state {
        Value::Object(o) => {
            usize::from(o.contains_key("replication_key_value"))
                + o.values().map(bookmark_count).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(bookmark_count).sum(),
        _ => 0,
    }
}

/// Rounds of changes that must land mid-sync for a test of changes during
/// a sync to prove anything.
const ROUNDS_MID_SYNC: usize = 5;

/// Calls `change` every `pause` while the tap runs (`while_running`), and
/// returns how many rounds landed mid-sync, as the fake saw it: after it
/// had served the tap a request, and with requests of the tap after them.
/// How many rounds a run's length holds is a matter of scheduling (a
/// loaded machine may starve this thread, or speed the tap's end), so the
/// callers try again with slower pages rather than count on it. At most
/// `most` rounds: a whole pass is activated only once its catch-up settles
/// after the changes stop (`pager::catch_up_moves`).
fn rounds_mid_sync(
    server: &FakeGleap,
    running: &mut Running,
    pause: Duration,
    most: usize,
    mut change: impl FnMut(),
) -> usize {
    let mut served_after: Vec<u64> = Vec::new();
    while_running(running, pause, || {
        if served_after.len() >= most {
            return;
        }
        let before = server.stats().requests;
        change();
        if before > 0 {
            served_after.push(server.stats().requests);
        }
    });
    let total = server.stats().requests;
    served_after.iter().filter(|&&n| n < total).count()
}

/// Tries `scenario` (which asserts what the tap promises) with pages
/// slower each time, until one try had `ROUNDS_MID_SYNC` rounds of
/// changes land mid-sync.
fn with_changes_mid_sync(what: &str, scenario: impl Fn(Duration) -> usize) {
    let mut tries = Vec::new();
    for latency_ms in [15, 40, 100] {
        let rounds = scenario(Duration::from_millis(latency_ms));
        if rounds >= ROUNDS_MID_SYNC {
            return;
        }
        tries.push((latency_ms, rounds));
    }
    panic!("{what}: no try had {ROUNDS_MID_SYNC} rounds of changes land mid-sync (latency ms, rounds): {tries:?}");
}

#[test]
fn records_updated_created_and_deleted_during_a_sync_are_not_lost() {
    with_changes_mid_sync("changes during a sync", changes_during_a_sync_lose_nothing);
}

/// One try, with pages `latency` slow: returns the rounds of changes that
/// landed mid-sync.
fn changes_during_a_sync_lose_nothing(latency: Duration) -> usize {
    // Slow pages, so that the changes land while the sync runs.
    let server = start(FakeConfig {
        latency,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 20}));
    let mut running = spawn_tap(&["--config", path_str(&cfg)]);
    let rounds = rounds_mid_sync(
        &server,
        &mut running,
        Duration::from_millis(40),
        usize::MAX,
        || {
            for name in INCREMENTAL {
                server.update(stream(name), 2);
                server.create(stream(name), 1);
                server.delete(stream(name), 1);
            }
            server.bulk_update(stream("tickets"), 30);
        },
    );
    let first = running.finish();
    first.assert_ok();
    // The bookmark never passes the moment the sync started, so the next run
    // picks up what changed meanwhile; together they hold every record.
    std::thread::sleep(Duration::from_millis(200));
    let second = s.tap_with_state(&cfg, first.last_state());
    second.assert_ok();
    assert_nothing_lost(
        &server,
        &[&first.messages, &second.messages],
        &format!("first + second ({rounds} rounds of changes mid-sync)"),
    );
    rounds
}

#[test]
fn tie_groups_larger_than_a_page_are_read_completely() {
    // 150 records share each updatedAt, pages hold 40, and the API returns
    // ties in a different order on every request.
    let server = start(FakeConfig {
        tie_group: 150,
        tie_order: TieOrder::Shuffled,
        tickets: 600,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 40}));
    let first = tap(&["--config", path_str(&cfg)]);
    first.assert_ok();
    assert_nothing_lost(&server, &[&first.messages], "first");
    // A bulk update of more than a page: all of it comes next time.
    let bulk = server.bulk_update(stream("tickets"), 170);
    std::thread::sleep(Duration::from_millis(100));
    let second = s.tap_with_state(&cfg, first.last_state());
    second.assert_ok();
    let got = second.ids("tickets");
    assert!(
        bulk.iter().all(|id| got.contains(id)),
        "every record of the bulk update"
    );
    assert_nothing_lost(
        &server,
        &[&first.messages, &second.messages],
        "first + second",
    );
}

#[test]
fn a_silent_page_cap_does_not_end_a_walk_early() {
    // The tap asks for 100 records a page; the API serves 30 without saying
    // so, and 80 records share each updatedAt: a capped page of one tie group
    // must not be taken for the last page.
    let server = start(FakeConfig {
        max_limit: Some(30),
        tie_group: 80,
        sessions: 400,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 100}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    assert_nothing_lost(&server, &[&run.messages], "run");
}

#[test]
fn a_small_list_costs_one_request_and_a_silently_capped_one_is_read_whole() {
    // Teams: fewer than any plausible cap, one request. Message templates:
    // 150, served 100 a page without a word while the tap asks for 1000.
    let server = start(FakeConfig {
        max_limit: Some(100),
        teams: 4,
        message_templates: 150,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let run = tap(&[
        "--config",
        path_str(&cfg),
        "--select",
        "teams,message_templates",
    ]);
    run.assert_ok();
    assert_eq!(run.ids("teams").len(), 4);
    assert_eq!(run.ids("message_templates").len(), 150);
    // Pages, not attempts: a retry (a request a loaded machine made time
    // out) is one more request for the fake and no more page.
    let by_path = server.stats().by_path;
    let retried = retried_paths(&run);
    let pages = |path: &str| {
        by_path[&format!("/v3{path}")] - retried.iter().filter(|p| *p == path).count() as u64
    };
    assert_eq!(pages("/teams"), 1, "a page of 4 cannot have been cut");
    // 100 (may have been cut), then 51 from skip=99 (shorter than the
    // longest page served: the last).
    assert_eq!(pages("/message-templates"), 2);
}

#[test]
fn start_date_and_bookmarks_take_the_later_of_the_two() {
    let server = start(fake_config());
    let s = Scratch::new();
    let all = fake_versions(&server, "sessions");
    let mut times: Vec<&String> = all.values().collect();
    times.sort();
    let middle = times[times.len() / 2].clone();
    let late = times[times.len() * 3 / 4].clone();
    // start_date alone; written with an offset to prove time zones compare properly.
    let shifted = chrono::DateTime::parse_from_rfc3339(&middle)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    // No settle window: a bookmark from another tool resumes exactly there
    // (with one, it resumes that much earlier: `settle.rs`).
    let cfg = s.config(
        &server,
        json!({"start_date": shifted, "lookback_window_seconds": 0}),
    );
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    let want: BTreeSet<String> = all
        .iter()
        .filter(|(_, t)| **t >= middle)
        .map(|(i, _)| i.clone())
        .collect();
    assert_eq!(run.ids("sessions"), want);
    // A later bookmark wins over start_date.
    let run = s.tap_with_state(&cfg, &json!({"bookmarks": {"sessions": {"replication_key": "updatedAt", "replication_key_value": late}}}));
    run.assert_ok();
    let want: BTreeSet<String> = all
        .iter()
        .filter(|(_, t)| **t >= late)
        .map(|(i, _)| i.clone())
        .collect();
    assert_eq!(run.ids("sessions"), want);
    // The other streams' bookmarks and unknown keys in the state survive.
    assert_eq!(
        run.last_state()["bookmarks"]["sessions"]["replication_key"],
        "updatedAt"
    );
}

#[test]
fn full_table_chosen_for_an_incremental_stream_ignores_old_bookmarks() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let metadata = |e: &mut serde_json::Value| {
        e["metadata"][0]["metadata"]["replication-method"] = json!("FULL_TABLE")
    };
    // Meltano also writes the method as a top-level key of the entry.
    let top_level = |e: &mut serde_json::Value| {
        e["replication_method"] = json!("FULL_TABLE");
        e["metadata"][0]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("replication-method");
    };
    let spellings: [&dyn Fn(&mut serde_json::Value); 2] = [&metadata, &top_level];
    for (i, choose) in spellings.into_iter().enumerate() {
        let cat = s.write_json(
            "catalog.json",
            &catalog_selecting(&cfg, &["sessions"], choose),
        );
        let given = "2025-01-01T00:00:00.000Z";
        let st = s.write_json("state.json", &json!({"bookmarks": {"sessions": {"replication_key": "updatedAt", "replication_key_value": given}}}));
        let run = tap(&[
            "--config",
            path_str(&cfg),
            "--catalog",
            path_str(&cat),
            "--state",
            path_str(&st),
        ]);
        run.assert_ok();
        assert_eq!(
            run.ids("sessions"),
            fake_ids(&server, "sessions"),
            "spelling {i}"
        );
        assert!(run.ids("tickets").is_empty(), "only the selected stream");
        let declares_bookmarks = run.messages.iter().any(|m| {
            matches!(
                m,
                Message::Schema {
                    bookmark_properties: Some(_),
                    ..
                }
            )
        });
        assert!(
            !declares_bookmarks,
            "a FULL_TABLE stream declares no bookmark properties"
        );
        // The state it was given comes back untouched.
        assert_eq!(
            run.last_state()["bookmarks"]["sessions"]["replication_key_value"],
            given
        );
    }
}

#[test]
fn a_full_table_version_holds_every_record_even_when_updated_during_the_sync() {
    with_changes_mid_sync(
        "updates during a full-table pass",
        full_table_pass_under_updates,
    );
}

/// One try, with pages `latency` slow: returns the rounds of updates that
/// landed mid-sync.
fn full_table_pass_under_updates(latency: Duration) -> usize {
    // With ACTIVATE_VERSION a target deletes every row the new version lacks,
    // so a full-table pass must include records that move to the end of
    // updatedAt order while it runs.
    let server = start(FakeConfig {
        latency,
        tickets: 400,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(
        &server,
        json!({"page_size": 25, "emit_activate_version_messages": true}),
    );
    let cat = catalog_selecting(&cfg, &["tickets"], |e| {
        e["metadata"][0]["metadata"]["replication-method"] = json!("FULL_TABLE")
    });
    let cat = s.write_json("catalog.json", &cat);
    let before = fake_ids(&server, "tickets");
    let mut running = spawn_tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    let rounds = rounds_mid_sync(&server, &mut running, Duration::from_millis(30), 12, || {
        server.update(stream("tickets"), 3);
    });
    let run = running.finish();
    run.assert_ok();
    let version = run.messages.iter().find_map(|m| match m {
        Message::ActivateVersion { version, .. } => Some(*version),
        _ => None,
    });
    assert!(
        version.is_some(),
        "the pass completed with ACTIVATE_VERSION: {}",
        run.stderr
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("catch"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let got = run.ids("tickets");
    let after = fake_ids(&server, "tickets");
    let missing: Vec<_> = before
        .intersection(&after)
        .filter(|id| !got.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} tickets missing from the version ({rounds} rounds of updates mid-sync), e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    rounds
}

#[test]
fn a_child_bookmark_never_passes_the_apis_clock() {
    // The API's clock runs a minute behind this machine's. While run 2 reads
    // the surveys' responses, a response of the first survey (already read)
    // and then one of the last (not yet read) are updated: the last one's
    // newer stamp, read by run 2, must not become a bookmark past the first
    // one's, which run 3 must still find. The `Date` header runs 20 s ahead
    // of the stamps (`date_lead_ms`), so the change is within run 2's range
    // however long the machine takes to reach it. Surveys are read several
    // at once, so whether run 2 reads the last survey after the change is
    // a race: the scenario is tried until it happens, and nothing may be
    // lost in any try.
    let mut happened = false;
    for _ in 0..5 {
        happened |= child_bookmark_scenario();
        if happened {
            break;
        }
    }
    assert!(
        happened,
        "run 2 read the last survey after the change, in one try of five"
    );
}

/// One try; returns whether run 2 read the last survey after the change.
fn child_bookmark_scenario() -> bool {
    let server = start(FakeConfig {
        clock_offset_ms: -60_000,
        date_lead_ms: 20_000,
        latency: Duration::from_millis(60),
        surveys: 16,
        ..small_config()
    });
    let s = Scratch::new();
    // Slow enough that the surveys are read a couple at a time, over
    // seconds, however loaded the machine.
    let cfg = s.config(&server, json!({"requests_per_minute": 300}));
    let cat = s.write_json(
        "catalog.json",
        &catalog_selecting(&cfg, &["survey_responses"], |_| {}),
    );
    let args = |state: Option<&std::path::Path>| {
        let mut a = vec![
            "--config".to_string(),
            path_str(&cfg).to_string(),
            "--catalog".to_string(),
            path_str(&cat).to_string(),
        ];
        if let Some(st) = state {
            a.extend(["--state".to_string(), path_str(st).to_string()]);
        }
        a
    };
    let first = tap(&args(None).iter().map(String::as_str).collect::<Vec<_>>());
    first.assert_ok();
    let st = s.write_json("state-1.json", first.last_state());

    let responses = server.snapshot(stream("survey_responses"));
    let mut surveys: Vec<String> = responses
        .iter()
        .filter_map(|r| r.survey_id.clone())
        .collect();
    surveys.sort();
    surveys.dedup();
    assert!(surveys.len() >= 3);
    let in_survey = |sv: &str| {
        responses
            .iter()
            .find(|r| r.survey_id.as_deref() == Some(sv))
            .unwrap()
            .id
            .clone()
    };
    let (early, late) = (in_survey(&surveys[0]), in_survey(surveys.last().unwrap()));

    server.reset_stats(); // so that the wait below sees run 2's requests only
    let mut running = spawn_tap(
        &args(Some(&st))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let first_survey = format!("/engagement/surveys/{}/responses", surveys[0]);
    let started = std::time::Instant::now();
    while !server
        .stats()
        .by_path
        .keys()
        .any(|p| p.ends_with(&first_survey))
    {
        assert!(
            running.is_running() && started.elapsed() < Duration::from_secs(30),
            "the first survey is read"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Its page is on its way back: the change lands after it was read.
    std::thread::sleep(Duration::from_millis(80));
    assert!(server.update_id(stream("survey_responses"), &early));
    assert!(server.update_id(stream("survey_responses"), &late));
    let second = running.finish();
    second.assert_ok();
    let late_version = server
        .snapshot(stream("survey_responses"))
        .into_iter()
        .find(|r| r.id == late)
        .unwrap()
        .updated_at;
    let happened = second
        .records("survey_responses")
        .iter()
        .any(|r| r["id"] == late && r["updatedAt"] == late_version);

    let st = s.write_json("state-2.json", second.last_state());
    let third = tap(&args(Some(&st))
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    third.assert_ok();
    let runs = [&first.messages[..], &second.messages, &third.messages];
    let (t, lost) = count_streams(&server, &runs, &["survey_responses"]);
    assert_eq!(t.lost, 0, "{lost:?}");
    happened
}

/// An incremental run with nothing new spends one request: the page at its
/// bookmark, whose answer tells the API's clock too (the signpost): the
/// clock asks nothing of its own.
#[test]
fn an_incremental_run_with_nothing_new_spends_one_request() {
    // The clock asks for itself when no answer came within its 2 s wait:
    // a loaded machine can delay the page's answer, or the clock's task,
    // that long. Each run is held to what no timing changes (one page, the
    // clock once at most); of a few runs, one must spend the page alone.
    let runs = idle_runs(small_config(), |idle| idle.clock == 0);
    assert!(
        runs.iter().any(|idle| idle.clock == 0),
        "the clock asked for itself in every idle run: {runs:?}"
    );
}

/// An API slower than the clock waits for a first answer (2 s) gets the
/// clock's own small request, and the run completes: no walk waits for
/// ever on a signpost that no answer has told yet.
#[test]
fn a_slow_api_gets_a_request_for_its_clock_and_the_run_completes() {
    // The page's answer takes 3 s: the clock asks for itself unless its
    // task runs a second late (a loaded machine), when the answer it waits
    // for may already be there. Of a few runs, one must show the request.
    let runs = idle_runs(
        FakeConfig {
            latency: Duration::from_millis(3_000),
            ..small_config()
        },
        |idle| idle.clock == 1,
    );
    assert!(
        runs.iter().any(|idle| idle.clock == 1),
        "the page at the bookmark and the clock's own request: {runs:?}"
    );
}

/// What an incremental run with nothing new spent.
#[derive(Debug)]
struct Idle {
    /// The clock's own requests: those the fake served beyond the walk's
    /// (which the tap logs, each attempt, at debug).
    clock: u64,
}

/// A first sync of the sessions of `config`, then runs from its state with
/// nothing new, until one is `enough` (three at most). Each completes and
/// keeps the bookmark, the first with every session; each reads one page,
/// at the bookmark (a retry of it, which a loaded machine may cause, is
/// one more attempt, not one more page), and the clock asks once at most
/// (never retried).
fn idle_runs(config: FakeConfig, enough: impl Fn(&Idle) -> bool) -> Vec<Idle> {
    let sessions = config.sessions as usize;
    let server = start(config);
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let args = ["--config", path_str(&cfg), "--select", "sessions"];
    let first = tap(&args);
    first.assert_ok();
    assert_eq!(first.records("sessions").len(), sessions);
    let state = s.write_json("state.json", first.last_state());
    let mut runs = Vec::new();
    for _ in 0..3 {
        server.reset_stats();
        let idle = tap(&[&args[..], &["--state", path_str(&state)]].concat());
        idle.assert_ok();
        assert_eq!(
            bookmarks_only(idle.last_state()),
            bookmarks_only(first.last_state()),
            "the bookmark stays"
        );
        let attempts = idle
            .stderr
            .lines()
            .filter(|l| l.contains(" DEBUG tap_gleap::client: GET /sessions?"))
            .count() as u64;
        let retries = retried_paths(&idle).len() as u64;
        assert_eq!(attempts - retries, 1, "one page read:\n{}", idle.stderr);
        let requests = server.stats().requests;
        assert!(
            (attempts..=attempts + 1).contains(&requests),
            "{requests} requests for {attempts} attempts at the page: the clock asks once at most"
        );
        let idle = Idle {
            clock: requests - attempts,
        };
        let done = enough(&idle);
        runs.push(idle);
        if done {
            break;
        }
    }
    runs
}

/// A backfill read by several slices at once and killed midway leaves, above
/// its bookmark, the ranges each slice finished (`progress`); the resumed run
/// reads only the gaps between them, and nothing is lost.
#[test]
fn a_backfill_killed_midway_resumes_where_each_slice_stopped() {
    const SESSIONS: u64 = 50_000;
    let server = start(FakeConfig {
        sessions: SESSIONS,
        latency: Duration::from_millis(100),
        ..small_config()
    });
    let s = Scratch::new();
    // 100 requests a second against 100 ms answers: about a dozen slices.
    // A timeout and a retry budget no scheduling reaches: on a loaded
    // machine pages of this fake took over 5 s, and a first run failed on
    // the 60 s budget (exit 7) instead of being killed midway.
    let cfg = s.config(
        &server,
        json!({"page_size": 200, "requests_per_minute": 6000, "request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let args = ["--config", path_str(&cfg), "--select", "sessions"];
    // A kill can land just after the slices above the bookmark all finished
    // and the next ones were cut but had read nothing: that STATE rightly
    // holds no ranges (nothing above the bookmark is written). The test
    // needs a kill with ranges to resume from, so it tries a few points.
    let ranges_in = |state: &Value| {
        state["bookmarks"]["sessions"]["progress"]["done"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let first = [60, 50, 70, 40, 80]
        .into_iter()
        .map(|percent| {
            let lines = SESSIONS as usize * percent / 100;
            let run =
                crate::reliability::run_killed(&args, crate::reliability::Kill::AfterLines(lines));
            assert_eq!(run.code, -1, "killed midway: {}", run.error_line());
            run
        })
        .find(|run| ranges_in(run.last_state()) >= 1)
        .expect("some kill midway finds ranges written above the bookmark");
    let state = first.last_state().clone();
    let progress = &state["bookmarks"]["sessions"]["progress"];
    server.reset_stats();
    let second = s.tap_with_state(&cfg, &state);
    second.assert_ok();
    assert!(
        second.stderr.contains("resuming"),
        "the resumed run says so"
    );
    let (t, lost) = count_streams(&server, &[&first.messages, &second.messages], &["sessions"]);
    assert_eq!(t.lost, 0, "{lost:?}");
    // What the bookmark and the written ranges cover is not read again.
    let bookmark = state["bookmarks"]["sessions"]["replication_key_value"]
        .as_str()
        .unwrap()
        .to_string();
    let ranges: Vec<(String, String)> = progress["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let written: BTreeSet<String> = first
        .records("sessions")
        .iter()
        .map(|r| r["updatedAt"].as_str().unwrap().to_string())
        .collect();
    let covered = first
        .records("sessions")
        .iter()
        .filter(|r| {
            let at = r["updatedAt"].as_str().unwrap();
            at < bookmark.as_str()
                || ranges
                    .iter()
                    .any(|(lo, hi)| at >= lo.as_str() && at < hi.as_str())
        })
        .count() as u64;
    let in_ranges = covered
        - first
            .records("sessions")
            .iter()
            .filter(|r| r["updatedAt"].as_str().unwrap() < bookmark.as_str())
            .count() as u64;
    assert!(in_ranges > 0, "the ranges hold records: {ranges:?}");
    let again = second.records("sessions").len() as u64;
    // Records at a range's edges may come again: a page's worth per range.
    assert!(
        again <= SESSIONS - covered + 200 * (ranges.len() as u64 + 1),
        "{again} records read again; {covered} of {} were covered by the bookmark and the ranges",
        written.len()
    );
    assert!(
        second.last_state()["bookmarks"]["sessions"]
            .get("progress")
            .is_none(),
        "a finished walk leaves no progress behind"
    );
}

/// A state written by tap-gleap 0.1 kept tickets in four partitions
/// (`{}`, `{"archived": "true"}`, `{"isSpam": "true"}`, both), which lose
/// archived tickets on a server that counts `archived=true` only beside
/// `ignoreArchived=true`. Resumed from such a state, the plain listing keeps
/// its bookmark and the hidden kinds are read once from the start: every
/// ticket arrives.
#[test]
fn a_state_written_by_the_previous_version_resumes_without_loss() {
    let server = start(FakeConfig {
        archived_default: fake_gleap::ArchivedDefault::WebApp,
        tickets: 400,
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 50}));
    let bookmark = "2024-01-01T03:00:00.000Z";
    let part = |ctx: serde_json::Value| json!({"context": ctx, "replication_key": "updatedAt", "replication_key_value": bookmark});
    let old = json!({"bookmarks": {"tickets": {"partitions": [
        part(json!({})),
        part(json!({"archived": "true"})),
        part(json!({"isSpam": "true"})),
        part(json!({"archived": "true", "isSpam": "true"})),
    ]}}});
    let run = tap(&[
        "--config",
        path_str(&cfg),
        "--select",
        "tickets",
        "--state",
        path_str(&s.write_json("old-state.json", &old)),
    ]);
    run.assert_ok();
    // What 0.1 would have read before its bookmark is not read again,
    // except the kinds it may have missed: every archived and spam ticket.
    let got = run.ids("tickets");
    for r in server.snapshot(stream("tickets")) {
        if r.updated_at.as_str() >= bookmark {
            assert!(got.contains(&r.id), "ticket {} after the bookmark", r.id);
        }
    }
    // Every archived or spam ticket, as a full sync tells which they are.
    let full = tap(&["--config", path_str(&cfg), "--select", "tickets"]);
    full.assert_ok();
    let hidden: Vec<String> = full
        .records("tickets")
        .iter()
        .filter(|r| r["archived"] == json!(true) || r["isSpam"] == json!(true))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(hidden.len() > 10, "the fake has archived and spam tickets");
    for id in &hidden {
        assert!(got.contains(id), "archived or spam ticket {id}");
    }
    // A bookmark written before the tap had a settle window resumes one
    // window (the default, 300 s) earlier: the updates the list may not
    // have shown then.
    let window_before = "2024-01-01T02:55:00.000Z";
    let plain_before = run
        .records("tickets")
        .iter()
        .filter(|r| {
            r["updatedAt"].as_str().unwrap() < window_before
                && r["archived"] != json!(true)
                && r["isSpam"] != json!(true)
        })
        .count();
    assert_eq!(
        plain_before, 0,
        "the plain listing resumes at its bookmark less the window"
    );
    let state = run.last_state();
    let parts = state["bookmarks"]["tickets"]["partitions"]
        .as_array()
        .unwrap();
    assert!(
        parts
            .iter()
            .any(|p| p["context"] == json!({"ignoreArchived": "true", "archived": "true"})),
        "the new partitions have bookmarks: {state}"
    );
}
