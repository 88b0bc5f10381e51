//! Lists that lag: Gleap's lists come from a search index, which shows an
//! update late and out of the order written. The settle window
//! (`lookback_window_seconds`) makes every run read the last minutes again;
//! a run proves the updates that arrived late, and widens a window found
//! too short.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_gleap::FakeConfig;
use serde_json::{json, Value};

use crate::util::*;

/// Streams changed in these tests: each has its own walk and bookmark.
const CHANGED: [&str; 3] = ["tickets", "sessions", "messages"];

fn lagging(lag: Duration) -> FakeConfig {
    FakeConfig {
        index_lag: lag,
        latency: Duration::from_millis(2),
        ..small_config()
    }
}

/// Updates made while the tap runs, a few every round.
fn churn(server: &fake_gleap::FakeGleap) {
    for name in CHANGED {
        server.update(stream(name), 2);
    }
}

/// Incremental runs, each from the last STATE of `runs`, while updates
/// arrive: during each run, and for `GAP` after it (a schedule, shrunk).
fn runs_while_updating(
    s: &Scratch,
    cfg: &std::path::Path,
    server: &fake_gleap::FakeGleap,
    runs: &mut Vec<Run>,
    n: usize,
) {
    const GAP: Duration = Duration::from_millis(1000);
    for _ in 0..n {
        let st = s.write_json(&format!("state-{}.json", runs.len()), &latest_state(runs));
        let mut running = spawn_tap(&[
            "--config",
            path_str(cfg),
            "--state",
            path_str(&st),
            "--select",
            "tickets,sessions,messages",
        ]);
        while_running(&mut running, Duration::from_millis(20), || churn(server));
        let run = running.finish();
        run.assert_ok();
        runs.push(run);
        let started = std::time::Instant::now();
        while started.elapsed() < GAP {
            churn(server);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The METRIC counter `metric` of `stream` in a run's log.
fn metric(run: &Run, metric: &str, stream: &str) -> Option<u64> {
    run.stderr.lines().find_map(|l| {
        let m: Value = serde_json::from_str(l.split("METRIC: ").nth(1)?).ok()?;
        (m["metric"] == json!(metric) && m["tags"]["stream"] == json!(stream))
            .then(|| m["value"].as_u64())
            .flatten()
    })
}

/// The case, shrunk: each update shows in the lists after its own
/// delay of up to 5 s. With the default window nothing is lost, the runs
/// say how many updates arrived late and how many records they re-sent;
/// with no window (0) updates are lost for good, as before the window.
#[test]
fn updates_listed_late_are_never_lost_and_are_counted() {
    let lag = Duration::from_millis(5000);
    let mut lost_without_window = 0;
    for window in [300, 0] {
        let server = start(lagging(lag));
        let s = Scratch::new();
        let cfg = s.config(
            &server,
            json!({"page_size": 20, "lookback_window_seconds": window}),
        );
        let mut runs = Vec::new();
        runs_while_updating(&s, &cfg, &server, &mut runs, 8);
        // One more run once every update shows.
        std::thread::sleep(lag + Duration::from_millis(200));
        let last = s.tap_with_state(&cfg, &latest_state(&runs));
        last.assert_ok();
        runs.push(last);
        let outputs: Vec<&[Message]> = runs.iter().map(|r| r.messages.as_slice()).collect();
        let (t, lost) = count_streams(&server, &outputs, &CHANGED);
        let late: u64 = runs
            .iter()
            .flat_map(|r| CHANGED.iter().filter_map(|n| metric(r, "late_updates", n)))
            .sum();
        eprintln!(
            "lag up to {} ms, window {window} s: {} runs, {} records at their latest version, {} lost, {} duplicates ({:.1} a run), {} requests ({:.1} a run), {late} proven late",
            lag.as_millis(),
            runs.len(),
            t.expected,
            t.lost,
            t.duplicates,
            t.duplicates as f64 / runs.len() as f64,
            server.stats().requests,
            server.stats().requests as f64 / runs.len() as f64,
        );
        if window == 0 {
            lost_without_window = t.lost;
            continue;
        }
        assert_eq!(t.lost, 0, "window {window}: lost {lost:?}");
        let late: u64 = runs
            .iter()
            .flat_map(|r| CHANGED.iter().filter_map(|n| metric(r, "late_updates", n)))
            .sum();
        let resent: u64 = runs
            .iter()
            .flat_map(|r| {
                CHANGED
                    .iter()
                    .filter_map(|n| metric(r, "settle_window_resent", n))
            })
            .sum();
        assert!(late > 0, "no late update proven in {} runs", runs.len());
        assert!(
            resent > 0,
            "the window re-sends what the last run delivered"
        );
        assert!(
            runs.iter().any(|r| r
                .stderr
                .contains("listed by the API after the last run had read past them")),
            "a run logs the late updates"
        );
        // Lag well inside the window: no warning, no widening.
        let widened: Vec<&str> = runs
            .iter()
            .flat_map(|r| {
                r.stderr
                    .lines()
                    .filter(|l| l.contains("close to the settle window"))
            })
            .collect();
        assert!(widened.is_empty(), "{widened:?}");
        // The state keeps the window and what it held, a few hundred bytes
        // per stream.
        let state = latest_state(&runs);
        let tickets = &state["bookmarks"]["tickets"]["partitions"][0]["lookback"];
        assert_eq!(tickets["window_seconds"], json!(300), "{state}");
        assert!(tickets["seen"]["versions"].is_string(), "{state}");
        assert!(
            state.to_string().len() < 8_000,
            "{} bytes",
            state.to_string().len()
        );
    }
    assert!(
        lost_without_window > 0,
        "without a window the lagging lists lose updates (else this test proves nothing)"
    );
}

/// A bookmark never passes the API's clock at the sync's start less the
/// window, and a run reads the window again: with nothing new but a few
/// updates inside the window, the next run sends those again, and nothing
/// older.
#[test]
fn no_bookmark_passes_the_start_less_the_window() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"lookback_window_seconds": 120}));
    let first = tap(&["--config", path_str(&cfg), "--select", "sessions"]);
    first.assert_ok();
    let updated: BTreeSet<String> = server.update(stream("sessions"), 5).into_iter().collect();
    // A run proves lateness only for what was stamped a few seconds before
    // it began (`Date` has whole seconds; a margin for its first pages):
    // these updates are then in what the second run checks the third by.
    std::thread::sleep(Duration::from_millis(3200));
    let mut runs = Vec::new();
    let mut state = first.last_state().clone();
    for _ in 0..2 {
        let run = s.tap_with_state(&cfg, &state);
        let finished = chrono::Utc::now();
        run.assert_ok();
        let value = run.last_state()["bookmarks"]["sessions"]["replication_key_value"]
            .as_str()
            .unwrap()
            .to_string();
        let at = chrono::DateTime::parse_from_rfc3339(&value).unwrap();
        // The API's clock is this machine's, and `Date` has whole seconds:
        // the sync's start (its first answer's `Date`, up to the end of
        // that second) is less than a second past `finished`, and the
        // bookmark the window (120 s) before it at most. Not measured from
        // a moment before the run: a loaded machine may take seconds to get
        // the tap to its first answer, which moves the bound that much.
        assert!(
            at <= finished - chrono::Duration::seconds(119),
            "bookmark {value} within the window before {finished}"
        );
        state = run.last_state().clone();
        runs.push(run);
    }
    let (second, third) = (&runs[0], &runs[1]);
    // The second run reads from the first one's bookmark (the record there
    // again); the third, the window's updates and nothing else.
    assert!(second.ids("sessions").is_superset(&updated));
    assert!(second.ids("sessions").len() <= updated.len() + 1);
    assert_eq!(
        third.ids("sessions"),
        updated,
        "the window's updates, and nothing else"
    );
    assert_eq!(metric(third, "settle_window_resent", "sessions"), Some(5));
    assert_eq!(metric(third, "late_updates", "sessions"), Some(0));
}

/// A server whose lists lag longer than the window: a run proves an update
/// about as late as the window can show, warns once, widens the window
/// fourfold (kept in the state), and from the next run on nothing is lost.
#[test]
fn a_lag_longer_than_the_window_warns_widens_and_then_loses_nothing() {
    let lag = Duration::from_millis(8000);
    // A run proves an update about as late as the window (4.5 s of 6) only
    // if that version is still the record's when a later run lists it,
    // seconds after: with a few dozen records, the churn of a slow run (a
    // loaded machine) replaces every version before that, and a stream
    // may never warn. Hundreds of records each keep most versions that
    // long, however long the runs take.
    let server = start(FakeConfig {
        tickets: 400,
        sessions: 400,
        messages: 400,
        ..lagging(lag)
    });
    let s = Scratch::new();
    let cfg = s.config(
        &server,
        json!({"page_size": 20, "lookback_window_seconds": 6}),
    );
    // Each stream learns its own window: runs until every one has warned.
    let mut runs: Vec<Run> = Vec::new();
    let mut warned: BTreeMap<&str, usize> = BTreeMap::new();
    while warned.len() < CHANGED.len() {
        assert!(runs.len() < 20, "warned only for {warned:?} in 20 runs");
        runs_while_updating(&s, &cfg, &server, &mut runs, 1);
        let i = runs.len() - 1;
        for line in runs[i]
            .stderr
            .lines()
            .filter(|l| l.contains("widened to 24 s"))
        {
            assert!(
                line.contains("WARN") && line.contains("lookback_window_seconds"),
                "{line}"
            );
            let name = CHANGED
                .iter()
                .find(|n| line.contains(&format!("stream {n}:")))
                .unwrap_or_else(|| panic!("a warning names its stream: {line}"));
            assert!(
                warned.insert(name, i).is_none(),
                "{name} warned twice: {line}"
            );
        }
    }
    let warned_at = runs.len() - 1;
    eprintln!("every stream warned after {} runs: {warned:?}", runs.len());
    let state = latest_state(&runs);
    assert!(
        state.to_string().contains("\"learned_window_seconds\":24"),
        "the widened window is kept: {state}"
    );
    // Updates made from here on all arrive, at their latest version.
    let before: BTreeMap<&str, BTreeMap<String, String>> = CHANGED
        .iter()
        .map(|n| (*n, fake_versions(&server, n)))
        .collect();
    runs_while_updating(&s, &cfg, &server, &mut runs, 4);
    std::thread::sleep(lag + Duration::from_millis(200));
    let last = s.tap_with_state(&cfg, &latest_state(&runs));
    last.assert_ok();
    runs.push(last);
    let after_warning: Vec<&Run> = runs[warned_at + 1..].iter().collect();
    for name in CHANGED {
        let mut delivered: BTreeSet<(String, String)> = BTreeSet::new();
        for r in &after_warning {
            for rec in r.records(name) {
                let at = rec[version_field(name)].as_str().unwrap_or("").to_string();
                delivered.insert((rec["id"].as_str().unwrap().to_string(), at));
            }
        }
        let changed: Vec<(String, String)> = fake_versions(&server, name)
            .into_iter()
            .filter(|(id, at)| before[name].get(id) != Some(at))
            .collect();
        assert!(!changed.is_empty(), "{name}: updates after the warning");
        let lost: Vec<_> = changed.iter().filter(|v| !delivered.contains(*v)).collect();
        assert!(
            lost.is_empty(),
            "{name}: {} of {} updates after the warning lost: {lost:?}",
            lost.len(),
            changed.len()
        );
    }
    assert!(
        runs[warned_at + 1..]
            .iter()
            .all(|r| !r.stderr.contains("close to the settle window")),
        "one warning per stream, then a window wide enough"
    );
}

/// A state whose settle record is broken is refused with the path to it.
#[test]
fn a_broken_settle_record_is_refused_with_its_path() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let state = json!({"bookmarks": {"sessions": {
        "replication_key": "updatedAt",
        "replication_key_value": "2024-01-01T00:00:00.000Z",
        "lookback": {"window_seconds": 300, "seen": {"from": "x", "through": "2024-01-01T00:00:00.000Z", "versions": ""}}
    }}});
    let run = s.tap_with_state(&cfg, &state);
    assert_eq!(run.code, STATE_ERROR, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("bookmarks.sessions.lookback") && line.contains("seen.from"),
        "{line}"
    );
}

/// A search index that pages only so deep, on a server whose range filters
/// do not work: the list can only be read by offset, past the depth it
/// cannot be read at all. The stream stops with one line saying so (no
/// loop, no silent end); a server whose filters work is read whole by
/// keyset (the mode matrix's `deep-paging-capped`).
#[test]
fn a_list_that_only_pages_by_offset_past_the_depth_stops_with_one_line() {
    let server = start(FakeConfig {
        sessions: 400,
        ignore_filters: true,
        max_result_window: Some(100),
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 20}));
    let run = tap(&["--config", path_str(&cfg), "--select", "sessions"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("refuses to page past") && line.contains("stream sessions stops"),
        "{line}"
    );
    let errors = run.stderr.lines().filter(|l| l.contains("ERROR")).count();
    assert!(errors <= 2, "{errors} ERROR lines:\n{}", run.stderr);
    assert!(
        server.stats().requests < 100,
        "{} requests",
        server.stats().requests
    );
}
