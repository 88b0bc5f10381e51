//! The tap against every plausible answer of the real API where Gleap's docs
//! are silent (`fake_gleap::MODES`): the no-loss scenarios run against each
//! one, not only against the server the tap was written for.
//!
//! `cargo test --test tests modes -- --nocapture` prints, per mode, the
//! records delivered, the duplicates and the requests made.

use std::time::{Duration, Instant};

use fake_gleap::{FakeConfig, Fault, Faults, ServerMode, MODES};
use serde_json::json;

use crate::reliability::{
    change_while_running, in_parallel, run_killed, seed, wait_past_newest_change, Kill, Rng,
};
use crate::util::*;

/// Data with every hard case: tie groups larger than a page (25 records
/// share each `updatedAt`, pages hold 20), archived and spam tickets, three
/// surveys' responses.
fn matrix_config(mode: &ServerMode) -> FakeConfig {
    let mut cfg = FakeConfig {
        tickets: 400,
        sessions: 160,
        messages: 200,
        surveys: 3,
        responses_per_survey: 30,
        tie_group: 25,
        latency: Duration::from_millis(1),
        ..fake_config()
    };
    (mode.apply)(&mut cfg);
    cfg
}

/// Changes of every kind, bulk updates of more than a page among them.
fn change(server: &fake_gleap::FakeGleap) {
    for name in INCREMENTAL {
        server.update(stream(name), 2);
        server.create(stream(name), 1);
        server.delete(stream(name), 1);
    }
    server.bulk_update(stream("tickets"), 30);
    server.bulk_update(stream("sessions"), 30);
}

/// A sync with nothing changing holds every record; then a sync while
/// records change under it, runs killed at random points with faults on,
/// each resumed from the last STATE it printed, and a run that completes:
/// together they hold every record at its latest version.
fn mode_loses_nothing(mode: &'static ServerMode) {
    let server = start(matrix_config(mode));
    let s = Scratch::new();
    // The tap's own timeout and retry budget: the faults here are a few
    // percent of requests, and this many syncs at once on a busy machine
    // can take longer than the tests' usual 5 s a page (a stream failing
    // for the machine's speed is not what this test is about).
    let cfg = s.config(
        &server,
        json!({"page_size": 20, "request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let still = tap(&["--config", path_str(&cfg)]);
    assert_eq!(still.code, 0, "{}: {}", mode.name, still.error_line());
    let (one, lost) = count(&server, &[&still.messages]);
    assert_eq!(one.lost, 0, "{}: one sync lost {lost:?}", mode.name);
    let one_requests = server.stats().requests;

    let started = Instant::now();
    let mut running = spawn_tap(&["--config", path_str(&cfg)]);
    // A round of changes every so many requests (about a hundred rounds
    // over a sync as long as the quiet one), two hundred at most: as many
    // per page on a busy machine as on an idle one, and the sync ends.
    let every = (one_requests / 100).max(1);
    let rounds = change_while_running(&mut running, &server, every, 200, || change(&server));
    let first = running.finish();
    assert_eq!(first.code, 0, "{}: {}", mode.name, first.error_line());
    assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
    let full_ms = started.elapsed().as_millis() as u64;

    let mut runs = vec![first];
    let mut rng = Rng::new(seed() ^ mode.name.len() as u64);
    server.set_faults(Faults {
        rate: 0.05,
        kinds: vec![Fault::Status503, Fault::TruncatedJson, Fault::ResetMidBody],
        hang: Duration::ZERO,
    });
    for i in 0..2 {
        change(&server);
        let st = s.write_json(&format!("state-{i}.json"), &latest_state(&runs));
        let killed = run_killed(
            &["--config", path_str(&cfg), "--state", path_str(&st)],
            Kill::AfterMs(rng.below(full_ms.max(20))),
        );
        assert!(
            matches!(killed.code, -1 | 0),
            "{}: run {i} exited {}: {}",
            mode.name,
            killed.code,
            killed.error_line()
        );
        runs.push(killed);
    }
    server.set_faults(Faults::default());
    wait_past_newest_change(&server);
    let last = s.tap_with_state(&cfg, &latest_state(&runs));
    assert_eq!(last.code, 0, "{}: {}", mode.name, last.error_line());
    runs.push(last);

    let outputs: Vec<&[Message]> = runs.iter().map(|r| r.messages.as_slice()).collect();
    let (t, lost) = count(&server, &outputs);
    if t.lost > 0 {
        for (i, r) in runs.iter().enumerate() {
            eprintln!(
                "{} run {i}: exit {}, {} messages, last state {}",
                mode.name,
                r.code,
                r.messages.len(),
                r.states().last().map_or("none".into(), |v| v.to_string())
            );
        }
    }
    assert_eq!(
        t.lost, 0,
        "{}: {} records lost: {lost:?}",
        mode.name, t.lost
    );
    eprintln!(
        "mode {:<28} one sync: {:>4} records, {:>4} delivered, {:>3} duplicates, {:>3} requests; \
         through {rounds:>3} rounds of changes, 2 kills, faults and a last run: {:>4} delivered, 0 lost, {:>3} duplicates, {:>3} requests",
        mode.name,
        one.expected,
        one.delivered,
        one.duplicates,
        one_requests,
        t.delivered,
        t.duplicates,
        server.stats().requests - one_requests
    );
}

/// The modes to run: all, or those `FAKE_MODES` (comma separated) names.
fn modes() -> Vec<&'static ServerMode> {
    let only = std::env::var("FAKE_MODES").unwrap_or_default();
    MODES
        .iter()
        .filter(|m| only.is_empty() || only.split(',').any(|o| o.trim() == m.name))
        .collect()
}

#[test]
fn every_mode_loses_nothing_through_changes_tie_groups_kills_and_faults() {
    for chunk in modes().chunks(6) {
        in_parallel(chunk.to_vec(), mode_loses_nothing);
    }
}

/// The case, under each meaning of the archived/spam parameters and
/// with a server that refuses undocumented sorts: 20,000 tickets in groups
/// of 50 sharing one `updatedAt`, 200 of them updated mid-sync. Every
/// ticket arrives. Pages of 200, so that a walk is 100 pages, as 100,000
/// tickets would be at the default size.
///
/// How many requests the walk spent over a plain walk, and how many
/// tickets came twice, hang on how the concurrent slices and walks
/// interleave (how many slices the round trip called for, how far a hidden
/// kind's walk got before the plain listing showed that kind): they are
/// printed here (`--nocapture`), not asserted; they belong in
/// `scripts/bench.sh`, as medians (its shape rows give the requests over a
/// plain walk of one stream).
fn tickets_all_arrive(mode: &'static str) {
    const TICKETS: u64 = 20_000;
    const PAGE: u64 = 200;
    let mut cfg = FakeConfig {
        tickets: TICKETS,
        tie_group: 50,
        ..small_config()
    };
    (fake_gleap::mode(mode).expect("a known mode").apply)(&mut cfg);
    let server = start(cfg);
    let s = Scratch::new();
    // At the default rate budget: requests are what it spends. The tap's
    // own timeout and retry budget too: five such syncs at once on a busy
    // machine took over 5 s a page, and a stream failing for the machine's
    // speed is not what this test is about.
    let cfg = s.config(
        &server,
        json!({"page_size": PAGE, "requests_per_minute": 900, "request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let mut running = spawn_tap(&["--config", path_str(&cfg), "--select", "tickets"]);
    // 20 tickets updated every 10 requests, 200 in all: across the walk,
    // however fast the machine runs it.
    let mut updated = 0;
    change_while_running(&mut running, &server, 10, 10, || {
        updated += server.update(stream("tickets"), 20).len();
    });
    let first = running.finish();
    first.assert_ok();
    let requests = server.stats().by_path["/v3/tickets"];
    wait_past_newest_change(&server);
    let second = s.tap_with_state(&cfg, first.last_state());
    second.assert_ok();
    let (both, lost) = count_streams(&server, &[&first.messages, &second.messages], &["tickets"]);
    assert_eq!(both.lost, 0, "{mode}: lost {lost:?}");
    let (once, _) = count_streams(&server, &[&first.messages], &["tickets"]);
    let plain_walk = TICKETS.div_ceil(PAGE) + 1;
    eprintln!(
        "{mode:<18} {} tickets, {} updated mid-sync: {} delivered by the two runs, {} duplicates in the first, {requests} requests (a plain walk: {plain_walk}, {:.2}x)",
        both.expected,
        updated,
        both.delivered,
        once.duplicates,
        requests as f64 / plain_walk as f64
    );
}

#[test]
fn tickets_under_every_archived_meaning_all_arrive() {
    in_parallel(
        vec![
            "archived-ignored",
            "archived-include",
            "archived-exclude",
            "archived-webapp",
            "id-sort-refused",
        ],
        tickets_all_arrive,
    );
}

/// A server that ignores the archived and spam parameters lists every
/// ticket in the hidden kinds' own walks too, which run until the plain
/// listing shows such a ticket (here not on its first page of 2): those
/// walks write no ticket that says it is neither archived nor spam.
#[test]
fn hidden_kinds_walks_write_none_of_the_plain_listings_tickets() {
    let mut cfg = FakeConfig {
        tickets: 400,
        ..fake_config()
    };
    (fake_gleap::mode("archived-ignored")
        .expect("a known mode")
        .apply)(&mut cfg);
    let server = start(cfg);
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 2}));
    let run = tap(&["--config", path_str(&cfg), "--select", "tickets"]);
    run.assert_ok();
    // The hidden kinds' walks ran: they start once the plain listing's
    // first page showed neither kind, which the data decides. (When the
    // plain listing shows a kind, its walk stops "after all"; whether it
    // had ended first is a race between concurrent walks.)
    for kind in ["&archived=true", "&isSpam=true"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("tap_gleap::client: GET /tickets?") && l.contains(kind)),
            "the {kind} walk ran"
        );
    }
    let mut plain = std::collections::BTreeMap::<&str, usize>::new();
    for r in run.records("tickets") {
        if r["archived"] == json!(false) && r["isSpam"] == json!(false) {
            *plain.entry(r["id"].as_str().unwrap()).or_default() += 1;
        }
    }
    let twice: Vec<_> = plain.iter().filter(|(_, &n)| n > 1).collect();
    assert!(plain.len() > 300, "{} plain tickets", plain.len());
    assert!(twice.is_empty(), "written twice: {twice:?}");
}

/// What `--test=api` must say about each mode: a line of its table that
/// names the endpoint, the assumption and the verdict.
fn expected_report(mode: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match mode {
        "archived-ignored" => ("/tickets", "hides (archived, spam)", "plain listing shows records with archived true"),
        "archived-include" => ("/tickets", "hides (archived, spam)", "plain listing shows records with archived true; ignoreArchived=true&archived=true lists 5 such and 0 other"),
        "archived-exclude" => ("/tickets", "hides (archived, spam)", "shows no record with archived true; ignoreArchived=true&archived=true lists 5 such and 0 other; archived=true lists 5 such"),
        "archived-webapp" => ("/tickets", "hides (archived, spam)", "shows no record with archived true; ignoreArchived=true&archived=true lists 5 such and 0 other; archived=true lists 0 such"),
        "id-sort-refused" => ("/sessions", "`sort=_id` orders the list", "does not hold (refused)"),
        "id-sort-ignored" => ("/sessions", "`sort=_id` orders the list", "does not hold (ignored)"),
        "messages-sort-ignored" => ("/messages", "`sort=updatedAt` orders the list", "does not hold (ignored)"),
        "sort-ignored" => ("/sessions", "`sort=updatedAt` orders the list", "does not hold (ignored)"),
        "filters-ignored" | "encoded-operators-ignored" => ("/sessions", "`updatedAt>=`", "does not hold (ignored)"),
        "encoded-operators-refused" => ("/sessions", "`updatedAt>=`", "does not hold (refused)"),
        "encoded-operators-literal" => ("/sessions", "`updatedAt>=`", "does not hold (matches nothing)"),
        "id-filters-refused" => ("/sessions", "`_id>=`", "does not hold (refused)"),
        "id-filters-ignored" => ("/sessions", "`_id>=`", "does not hold (ignored)"),
        "limit-refused" => ("/sessions", "`limit` up to", "does not hold (refused)"),
        "silent-cap" => ("/sessions", "a page holds", "100 records for limit=1000"),
        "ties-shuffled" | "ties-shuffled-share-created" => ("/sessions", "`skip` pages through", "records sharing one updatedAt come back in another order"),
        "ties-share-created" => ("/sessions", "`createdAt>=`", "records share that createdAt"),
        "no-date-header" => ("every response", "`Date` header", "does not hold (ignored)"),
        "no-ratelimit-headers" => ("every response", "`X-RateLimit-Remaining`", "does not hold (ignored)"),
        "retry-after-absent" => ("every response", "`Retry-After`", "does not hold (ignored)"),
        "no-total-count" => ("/tickets", "`totalCount`", "does not hold (ignored)"),
        "responses-wrapped" => ("/engagement/surveys/", "a bare array, or an object", "an object wrapping the array"),
        "small-lists-unpaginated" => ("/teams", "`skip` pages through", "limit=1 answered"),
        "plan-lacks-engagement" => ("/engagement/cobrowse", "the project's plan has the feature", "does not hold (unavailable): answered 404"),
        "clock-ahead" => ("every response", "`Date` header", "ahead of this machine"),
        "clock-behind" => ("every response", "`Date` header", "behind this machine"),
        "index-lag" => ("every list", "shows every update at once", "not decided: not tested"),
        "list-cache" => ("every list", "answered afresh, not from a cache", "not decided: not tested"),
        "deep-paging-capped" => ("/sessions", "`skip` pages to any depth", "does not hold (refused): skip=10000: "),
        _ => return None,
    })
}

#[test]
fn test_api_reports_what_each_mode_does() {
    fn check(mode: &'static ServerMode) {
        let mut cfg = FakeConfig {
            tie_group: 3,
            ..fake_config()
        };
        (mode.apply)(&mut cfg);
        if mode.name == "retry-after-absent" {
            // A limit small enough that the diagnosis meets a 429 and sees
            // what it carries, without the headers that let the tap pause
            // before it.
            cfg.rate_limit = cfg.rate_limit.map(|rl| fake_gleap::RateLimit {
                per_window: 8,
                ..rl
            });
            cfg.rate_limit_headers = false;
        }
        let server = start(cfg);
        let s = Scratch::new();
        // Fast enough to meet a small rate limit: 429s show whether they
        // carry Retry-After. With the tap's own request timeout: a probe
        // that timed out on a busy machine (the tests' usual 5 s) would be
        // retried, or fail the line it decides.
        let cfg = s.config(
            &server,
            json!({"retry_budget_seconds": 20, "request_timeout_seconds": 60}),
        );
        let run = tap_plain(&["--config", path_str(&cfg), "--test=api"]);
        assert_eq!(run.code, 0, "{}: {}", mode.name, run.error_line());
        let (endpoint, assumption, verdict) = expected_report(mode.name)
            .unwrap_or_else(|| panic!("no expectation for mode {}", mode.name));
        let line = run.stdout.lines().find(|l| {
            l.starts_with(&format!("| {endpoint}")) && l.contains(assumption) && l.contains(verdict)
        });
        assert!(
            line.is_some(),
            "{}: no line for {endpoint} / {assumption} saying {verdict:?} in:\n{}",
            mode.name,
            run.stdout
        );
    }
    for chunk in modes().chunks(6) {
        in_parallel(chunk.to_vec(), check);
    }
}

#[test]
fn test_api_on_the_default_server_finds_every_assumption_holding() {
    let server = start(FakeConfig {
        tie_group: 3,
        ..fake_config()
    });
    let s = Scratch::new();
    // The tap's own request timeout: a probe that timed out on a busy
    // machine would not say the assumption holds.
    let cfg = s.config(&server, json!({"request_timeout_seconds": 60}));
    let run = tap_plain(&["--config", path_str(&cfg), "--test=api"]);
    assert_eq!(run.code, 0, "{}", run.error_line());
    for line in run.stdout.lines().filter(|l| l.starts_with("| /")) {
        assert!(
            !line.contains("does not hold"),
            "the default fake honours everything: {line}"
        );
    }
    assert!(run.stdout.lines().count() > 30, "{}", run.stdout);
}
