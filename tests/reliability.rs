//! Reliability: every fault the API can throw, crashes (`kill -9`) at random
//! moments, and bad input, each with a COUNT of what was lost (always 0).
//!
//! "Lost" is measured against the fake's snapshot: a record the API holds
//! that no output delivered at its latest `updatedAt` (any version, for the
//! full-table streams). Runs that stop with an error are resumed from the
//! last STATE their output held, as an orchestrator would.
//!
//! The soak (`soak`, ignored) runs the same machinery for minutes with high
//! fault rates; `scripts/soak.sh` drives it and prints its table.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_gleap::{
    ErrorBody, FakeConfig, FakeGleap, Fault, Faults, RateLimit, RetryAfter, TieOrder,
};
use serde_json::{json, Value};

use crate::util::*;

/// Runs syncs, each resumed from the last STATE of the one before, until one
/// succeeds (at most `tries`). Returns every run.
fn sync_until_done(cfg: &Path, s: &Scratch, extra: &[&str], tries: usize) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for i in 0..tries {
        let mut args = vec!["--config", path_str(cfg)];
        args.extend_from_slice(extra);
        let st;
        if let Some(state) = runs.iter().rev().find_map(|r| r.states().last().copied()) {
            st = s.write_json(&format!("state-{i}.json"), state);
            args.extend(["--state", path_str(&st)]);
        }
        let run = tap(&args);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let done = run.code == 0;
        runs.push(run);
        if done {
            return runs;
        }
        let r = runs.last().unwrap();
        // 7: every stream failed; 9: some did, the others completed.
        assert!(
            matches!(r.code, 7 | 9),
            "only the API error stops a sync: {}: {}",
            r.code,
            r.error_line()
        );
    }
    panic!(
        "no run completed in {tries} tries; last: {}",
        runs.last().unwrap().error_line()
    );
}

fn outputs(runs: &[Run]) -> Vec<&[Message]> {
    runs.iter().map(|r| r.messages.as_slice()).collect()
}

/// Runs `f` on each item in its own thread (each with its own fake), so the
/// scenarios of one test overlap their waits.
pub(crate) fn in_parallel<T: Send + 'static>(items: Vec<T>, f: fn(T)) {
    let handles: Vec<_> = items
        .into_iter()
        .map(|i| std::thread::spawn(move || f(i)))
        .collect();
    let mut failed = Vec::new();
    for h in handles {
        if let Err(e) = h.join() {
            failed.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            );
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

// ------------------------------------------- setups that hang on timing

/// Runs `scenario` until its setup did what the test needs (it returns
/// `true`), at most `tries` times. For setups that depend on timing (a 429
/// storm, changes landing mid-run, a deletion landing between two
/// requests, a signal landing before the sync ends): a scheduling that
/// misses them fails no assertion, it gives the scenario another go. What
/// the tap promises is asserted in every attempt.
pub(crate) fn until_set_up(what: &str, tries: usize, mut scenario: impl FnMut() -> bool) {
    for attempt in 1..=tries {
        if scenario() {
            return;
        }
        eprintln!("{what}: the setup missed (attempt {attempt} of {tries}); again");
    }
    panic!("{what}: the setup missed {tries} times in a row");
}

/// How long a test waits for a tap that should end, or for an event that
/// must come: a guard against a test that would hang for ever, not a
/// figure (these syncs take seconds, a minute or two on the busiest
/// machine).
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(600);

/// Changes the fake's data while the tap runs: a round of `change` each
/// time the fake has served `every` more requests, at most `rounds`. The
/// changes so keep pace with the tap's own reading, however fast the
/// machine runs it: on a wall clock, a tap slowed down by a busy machine
/// meets more changes per page (an offset walk, shifted a record by every
/// update, then never reaches its end); and they stop, so the sync ends.
/// Returns the rounds made while the tap ran.
pub(crate) fn change_while_running(
    running: &mut Running,
    server: &FakeGleap,
    every: u64,
    rounds: usize,
    mut change: impl FnMut(),
) -> usize {
    let mut made = 0;
    let mut next = server.stats().requests + every;
    let mut last_change = Instant::now();
    while running.is_running() {
        if made < rounds && server.stats().requests >= next {
            change();
            made += 1;
            next = server.stats().requests + every;
            last_change = Instant::now();
        }
        if last_change.elapsed() > HANG_GUARD {
            let pid = running.pid();
            let _ = running.child.kill();
            panic!("the tap (pid {pid}) still ran {HANG_GUARD:?} after the last change: it does not end");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    made
}

/// Sleeps until this machine's clock has passed every stamp the fake gave.
/// Changes are stamped a millisecond apart, ahead of the clock when they
/// come faster than that: they belong to a run that starts after them.
pub(crate) fn wait_past_newest_change(server: &FakeGleap) {
    let newest = ALL_STREAMS
        .iter()
        .flat_map(|n| server.snapshot(stream(n)))
        .map(|r| r.updated_at)
        .max()
        .unwrap_or_default();
    // On the fake's clock, which a mode may set ahead or behind; and past
    // a lagging index's delay, so that the lists show every change.
    std::thread::sleep(server.config().index_lag);
    let offset = chrono::Duration::milliseconds(server.config().clock_offset_ms);
    let started = Instant::now();
    while (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        <= newest
    {
        // The changes are capped (`change_while_running`): their stamps run
        // a few seconds ahead at most, whatever the scheduling.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stamps far ahead: {newest}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(20));
}

/// Waits for a tap that must end on its own; kills it and fails after
/// [`HANG_GUARD`] (a tap that ignores its retry budget retries for ever).
pub(crate) fn finish_within_guard(mut running: Running, what: &str) -> Run {
    let started = Instant::now();
    while running.is_running() {
        if started.elapsed() > HANG_GUARD {
            let pid = running.pid();
            let _ = running.child.kill();
            panic!("{what}: the tap (pid {pid}) still ran after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.finish()
}

/// Which output of the tap a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pipe {
    Out,
    Err,
}

/// A tap whose stdout and stderr lines the test sees as they come, to act
/// on an event (a RECORD written, a warning logged) rather than after a
/// sleep or a count of requests at the fake.
pub(crate) struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(Pipe, Vec<u8>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Watched {
    pub(crate) fn spawn(args: &[&str]) -> Watched {
        let mut child = tap_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tap starts");
        let (tx, lines) = std::sync::mpsc::channel();
        fn forward(
            pipe: Pipe,
            from: impl Read + Send + 'static,
            tx: std::sync::mpsc::Sender<(Pipe, Vec<u8>)>,
        ) {
            std::thread::spawn(move || {
                let mut from = BufReader::new(from);
                loop {
                    let mut line = Vec::new();
                    match from.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send((pipe, line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        forward(Pipe::Out, child.stdout.take().unwrap(), tx.clone());
        forward(Pipe::Err, child.stderr.take().unwrap(), tx);
        Watched {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn keep(&mut self, pipe: Pipe, line: Vec<u8>) {
        match pipe {
            Pipe::Out => self.stdout.extend_from_slice(&line),
            Pipe::Err => self.stderr.extend_from_slice(&line),
        }
    }

    /// Waits for a line of `pipe` that `wanted` accepts: `false` when the
    /// tap closed its outputs first, or after [`HANG_GUARD`].
    pub(crate) fn wait_for(&mut self, pipe: Pipe, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((from, line)) = self.lines.recv_timeout(left) else {
                return false;
            };
            let hit = from == pipe && wanted(&String::from_utf8_lossy(&line));
            self.keep(from, line);
            if hit {
                return true;
            }
        }
    }

    /// Sends `signal` (`TERM`, `INT`) to the tap.
    #[cfg(unix)]
    pub(crate) fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits for the tap to end (killed after [`HANG_GUARD`]) and decodes
    /// all it wrote.
    pub(crate) fn finish(mut self) -> Run {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((from, line)) => self.keep(from, line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the tap still ran after {HANG_GUARD:?}");
                }
            }
        }
        let status = self.child.wait().expect("wait on the tap");
        decode(
            Output {
                status,
                stdout: std::mem::take(&mut self.stdout),
                stderr: std::mem::take(&mut self.stderr),
            },
            true,
        )
    }
}

// ------------------------------------------------------ faults of the API

#[test]
fn reliability_429_storms_with_text_and_empty_bodies_lose_nothing() {
    in_parallel(
        vec![
            (RetryAfter::Absent, ErrorBody::Text),
            (RetryAfter::Absent, ErrorBody::Empty),
            (RetryAfter::Seconds, ErrorBody::Text),
            (RetryAfter::HttpDate, ErrorBody::Empty),
        ],
        |(retry_after, body)| {
            // That the storm came (3 429s and more) is setup: the tap's
            // first requests, one per stream at once, meet it unless the
            // machine spreads them over more than the fake's window. If it
            // did, the scenario runs again.
            until_set_up(&format!("{retry_after:?} {body:?}"), 5, || {
                // 4 requests a second for a tap told it may send 1000: a storm.
                let server = start(FakeConfig {
                    rate_limit: Some(RateLimit {
                        per_window: 4,
                        window: Duration::from_secs(1),
                        retry_after,
                        body,
                    }),
                    ..small_config()
                });
                let s = Scratch::new();
                // The tap's default retry budget: 23 streams share 4
                // requests a second, and a request a busy machine keeps
                // sending after the others is waiting its turn, not failing.
                let cfg = s.config(
                    &server,
                    json!({"page_size": 1000, "retry_budget_seconds": 600}),
                );
                let runs = sync_until_done(&cfg, &s, &[], 1);
                let t = assert_nothing_lost(&server, &outputs(&runs), &format!("{retry_after:?}"));
                assert_eq!(t.lost, 0);
                let stats = server.stats();
                assert!(stats.max_in_window <= 4);
                stats.rate_limited >= 3
            });
        },
    );
}

/// Another integration of the same project spends most of the shared
/// budget while the tap runs, configured for far more than the fake allows.
#[test]
fn reliability_a_rate_limit_shared_with_another_client_loses_nothing() {
    let server = start(FakeConfig {
        rate_limit: Some(RateLimit {
            per_window: 12,
            window: Duration::from_secs(1),
            retry_after: RetryAfter::Seconds,
            body: ErrorBody::Json,
        }),
        ..small_config()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let other = {
        let (addr, stop, sent) = (server.addr(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                raw_get(addr, "/v3/teams");
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(125)); // 8 of the 12 per second
            }
        })
    };
    // The tap starts once the other client is spending the budget (an
    // event, not a sleep): it runs alongside from the tap's first request
    // to its last, however the machine schedules the two.
    let t0 = Instant::now();
    while sent.load(Ordering::Relaxed) < 4 {
        assert!(t0.elapsed() < HANG_GUARD, "the other client runs");
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = Scratch::new();
    // The tap's default retry budget: a request that keeps meeting the
    // window the other client filled is waiting its turn, not failing,
    // however the machine schedules the two.
    let cfg = s.config(
        &server,
        json!({"page_size": 20, "requests_per_minute": 6000, "retry_budget_seconds": 600}),
    );
    let runs = sync_until_done(&cfg, &s, &[], 1);
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
    assert_nothing_lost(&server, &outputs(&runs), "shared budget");
    assert!(
        server.stats().max_in_window <= 12,
        "the fake's window was respected"
    );
}

/// One plain HTTP/1.1 GET, as another integration would send it.
fn raw_get(addr: SocketAddr, path: &str) {
    if let Ok(mut c) = TcpStream::connect(addr) {
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CANARY_KEY}\r\nProject: {PROJECT}\r\nConnection: close\r\n\r\n"
        );
        let _ = c.read_to_end(&mut Vec::new());
    }
}

fn one_fault_kind(kind: Fault, rate: f64, timeout: u64) {
    let server = start(FakeConfig {
        faults: Faults {
            rate,
            kinds: vec![kind],
            hang: Duration::from_millis(2500),
        },
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(
        &server,
        // A budget of the tap's default: a busy machine may answer slower
        // than the 1 s timeout of the hangs' test now and then, never for
        // ten minutes on end.
        json!({"page_size": 15, "request_timeout_seconds": timeout, "retry_budget_seconds": 600}),
    );
    let runs = sync_until_done(&cfg, &s, &[], 1);
    assert_nothing_lost(&server, &outputs(&runs), kind.name());
    let injected = server.stats().faults.get(kind.name()).copied().unwrap_or(0);
    // Not a matter of timing: the fake draws faults from its seed by the
    // request's sequence number (the 9th and 12th requests at 0.3, the 9th
    // and 17th at 0.2), and a sync of its 23 streams makes more requests
    // than that whatever the order they come in.
    assert!(injected >= 2, "{kind}: faults were injected ({injected})");
    assert!(
        runs[0].stderr.contains("retry"),
        "{kind}: retries are logged"
    );
}

#[test]
fn reliability_server_errors_each_kind_lose_nothing() {
    in_parallel(
        vec![
            Fault::Status500,
            Fault::Status502,
            Fault::Status503,
            Fault::Status504,
        ],
        |k| one_fault_kind(k, 0.3, 5),
    );
}

#[test]
fn reliability_broken_bodies_each_kind_lose_nothing() {
    in_parallel(
        vec![
            Fault::ResetMidBody,
            Fault::TruncatedJson,
            Fault::Html200,
            Fault::WrongShape,
            Fault::EmptyBody200,
        ],
        |k| one_fault_kind(k, 0.3, 5),
    );
}

#[test]
fn reliability_responses_hanging_past_the_timeout_lose_nothing() {
    // Hangs of 2.5 s against a 1 s timeout.
    one_fault_kind(Fault::Hang, 0.2, 1);
}

/// Every request fails: the sync stops with a clear error inside its retry
/// budget, the requests are spaced by backoff (never hammered), and a run
/// resumed once the API recovers completes the data.
#[test]
fn reliability_a_failing_api_is_never_hammered_and_the_next_run_completes() {
    in_parallel(
        vec![Fault::Status503, Fault::ResetMidBody, Fault::Html200],
        |kind| {
            let server = start(FakeConfig {
                faults: Faults {
                    rate: 1.0,
                    kinds: vec![kind],
                    hang: Duration::ZERO,
                },
                ..small_config()
            });
            let s = Scratch::new();
            let budget = 4;
            let cfg = s.config(&server, json!({"retry_budget_seconds": budget}));
            let failed = finish_within_guard(spawn_tap(&["--config", path_str(&cfg)]), kind.name());
            assert_eq!(failed.code, 7, "{kind}: {}", failed.stderr);
            let line = failed.error_line();
            assert!(
                line.contains("retry_budget_seconds") && line.contains("still failing"),
                "{kind}: {line}"
            );
            // Never hammered, however fast or slow the machine: one request
            // is tried at most 5 times in a 4 s budget (backoff waits at
            // least 0.25, 0.5, 1, 2 and 4 s before the 2nd to the 6th try,
            // so a sixth would start after 7.75 s; a slow machine only
            // spaces them more). Before any page arrives, each stream has
            // one request out (they fail on their own), tickets, sessions
            // and messages two (a first sync's newest-record probe beside
            // its first page), and one more may ask the API's clock.
            let requests = server.stats().requests;
            let streams = default_streams().len() as u64;
            assert!(
                requests <= 5 * (streams + 3 + 1),
                "{kind}: {requests} requests is hammering"
            );
            // No stream was read: nothing a target would take for a sync.
            assert_eq!(failed.stdout, "", "{kind}: nothing on stdout");
            // The API recovers: the run resumed from that state completes.
            // With the tap's own timeout and budget: 4 s is shorter than the
            // 5 s timeout, so one answer a busy machine is slow to give
            // would end this run too.
            server.set_faults(Faults::default());
            // (The state it was given: an empty one.)
            let st = s.write_json("state.json", &latest_state(std::slice::from_ref(&failed)));
            let patient = s.write_json(
                "patient.json",
                &json!({"request_timeout_seconds": 60, "retry_budget_seconds": 600}),
            );
            let ok = tap(&[
                "--config",
                path_str(&cfg),
                "--config",
                path_str(&patient),
                "--state",
                path_str(&st),
            ]);
            ok.assert_ok();
            assert_nothing_lost(&server, &[&failed.messages, &ok.messages], kind.name());
        },
    );
}

/// The default retry budget (600 s) outlasts a full 60 s rate-limit window;
/// shown here to scale: a 3 s window that admits 2 requests, a tap that
/// may not give up before 30 s, and no `Retry-After`.
#[test]
fn reliability_the_retry_budget_outlasts_a_full_rate_limit_window() {
    let about = tap_plain(&["--about"]);
    let about: Value = serde_json::from_str(&about.stdout).unwrap();
    let budget = &about["settings"]["properties"]["retry_budget_seconds"]["default"];
    let budget = budget
        .as_i64()
        .or_else(|| budget.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("a default retry budget: {about}"));
    assert!(
        budget >= 600,
        "the default outlasts a 60 s window: {budget}"
    );

    // That the tap met the full window (a 429) is setup: the window is
    // spent just before it starts, and its 4 requests (3 teams a page,
    // then an empty page) fit 2 to a window only if the machine spaces
    // them 1.5 s apart. If it did, the scenario runs again.
    until_set_up("a full rate-limit window", 5, || {
        let server = start(FakeConfig {
            rate_limit: Some(RateLimit {
                per_window: 2,
                window: Duration::from_secs(3),
                retry_after: RetryAfter::Absent,
                body: ErrorBody::Empty,
            }),
            teams: 3,
            ..small_config()
        });
        let s = Scratch::new();
        let cfg = s.config(&server, json!({"retry_budget_seconds": 30, "page_size": 1}));
        let cat = s.write_json("catalog.json", &catalog_selecting(&cfg, &["teams"], |_| {}));
        // Another client has just spent the window: the tap's first requests
        // meet 429s without Retry-After until the window frees, 3 s later.
        raw_get(server.addr(), "/v3/teams");
        raw_get(server.addr(), "/v3/teams");
        let runs = sync_until_done(&cfg, &s, &["--catalog", path_str(&cat)], 1);
        assert_eq!(runs[0].ids("teams"), fake_ids(&server, "teams"));
        server.stats().rate_limited >= 1
    });
}

/// Records updated (moving to the end of `updatedAt` order), created and
/// deleted, and bulk updates of more than a page, all while pages fail now
/// and then: the sync and the next one hold every record.
#[test]
fn reliability_data_changing_during_a_faulty_sync_loses_nothing() {
    // That changes landed during the sync (3 rounds or more) is setup:
    // a round comes every 3 requests the tap makes, which it makes dozens
    // of, unless this thread is held up for most of the run. Then the
    // scenario runs again.
    until_set_up("changes during the sync", 5, || {
        let server = start(FakeConfig {
            latency: Duration::from_millis(10),
            tie_group: 30,
            tie_order: TieOrder::Shuffled,
            tickets: 300,
            sessions: 150,
            messages: 200,
            faults: Faults {
                rate: 0.1,
                kinds: vec![Fault::Status503, Fault::TruncatedJson, Fault::ResetMidBody],
                hang: Duration::ZERO,
            },
            ..small_config()
        });
        let s = Scratch::new();
        let cfg = s.config(&server, json!({"page_size": 20}));
        let mut running = spawn_tap(&["--config", path_str(&cfg)]);
        let rounds = change_while_running(&mut running, &server, 3, 60, || {
            for name in INCREMENTAL {
                server.update(stream(name), 2);
                server.create(stream(name), 1);
                server.delete(stream(name), 1);
            }
            // More than a page shares one updatedAt.
            server.bulk_update(stream("sessions"), 25);
            server.bulk_update(stream("tickets"), 25);
        });
        let first = running.finish();
        first.assert_ok();
        server.set_faults(Faults::default());
        wait_past_newest_change(&server);
        let second = s.tap_with_state(&cfg, first.last_state());
        second.assert_ok();
        assert_nothing_lost(
            &server,
            &[&first.messages, &second.messages],
            "changing data",
        );
        rounds >= 3
    });
}

/// A survey deleted after the survey list was read but before its responses
/// were: its responses endpoint answers 404, the survey is skipped, and
/// every other survey's responses arrive.
#[test]
fn reliability_a_survey_that_disappears_mid_sync_is_skipped_not_fatal() {
    // That the deletion lands between the survey list and the last
    // survey's responses is setup: the survey walks start at once, and the
    // fake answers each after 300 ms, so the deletion, made as soon as the
    // first responses are asked for, is in time unless this thread is held
    // up for that long. When it was not, the tap read the survey whole
    // (no 404): the scenario runs again.
    until_set_up("a survey deleted mid-sync", 5, || {
        let server = start(FakeConfig {
            latency: Duration::from_millis(300),
            surveys: 5,
            ..small_config()
        });
        let s = Scratch::new();
        let cfg = s.config(&server, json!({}));
        let cat = s.write_json(
            "catalog.json",
            &catalog_selecting(&cfg, &["survey_responses"], |_| {}),
        );
        let mut surveys: Vec<String> = fake_ids(&server, "surveys").into_iter().collect();
        surveys.sort();
        let doomed = surveys.last().unwrap().clone();
        let running = spawn_tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
        // Event-driven: as soon as the first survey's responses are asked
        // for (the list has been read).
        let t0 = Instant::now();
        while !server
            .stats()
            .by_path
            .keys()
            .any(|p| p.ends_with("/responses"))
        {
            assert!(t0.elapsed() < HANG_GUARD, "responses are read");
            std::thread::sleep(Duration::from_millis(5));
        }
        server.delete_survey(&doomed);
        let run = running.finish();
        // Whenever the deletion landed: the run completes, and every
        // response of the four other surveys arrives.
        run.assert_ok();
        let (t, lost) = count_streams(&server, &[&run.messages], &["survey_responses"]);
        assert_eq!(t.lost, 0, "{lost:?}");
        assert_eq!(t.expected, 4 * 10);
        let per_survey: BTreeSet<String> = run
            .records("survey_responses")
            .iter()
            .map(|r| r["survey_id"].as_str().unwrap().to_string())
            .collect();
        for other in &surveys[..4] {
            assert!(
                per_survey.contains(other),
                "the responses of survey {other}"
            );
        }
        // What was read of the doomed survey before it went (its list is a
        // probe and two pages: the deletion may fall between them) is the
        // tap's to keep.
        run.stderr.contains("no longer exists (404)")
    });
}

// ------------------------------------------------------- kill -9, signals

/// A tiny seeded generator (splitmix64), so kill points are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kill {
    AfterLines(usize),
    AfterMs(u64),
}

/// Runs the tap and `kill -9`s it at the given point. What reached stdout
/// before the kill (complete lines only: a target drops a torn last line) is
/// decoded like any run's output. `code` is -1 when the kill landed.
pub(crate) fn run_killed(args: &[&str], kill: Kill) -> Run {
    let mut child = tap_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tap starts");
    let pid = child.id();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timer = match kill {
        Kill::AfterMs(ms) => Some(std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_millis(ms)).is_err() {
                // The child is not reaped before this thread is joined, so
                // the pid cannot have been reused.
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        })),
        Kill::AfterLines(_) => None,
    };
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = Vec::new();
    let mut lines = 0;
    loop {
        let before = stdout.len();
        match reader.read_until(b'\n', &mut stdout) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if stdout[before..].ends_with(b"\n") {
            lines += 1;
            if let Kill::AfterLines(n) = kill {
                if lines == n {
                    let _ = child.kill();
                }
            }
        }
    }
    let _ = done_tx.send(());
    if let Some(t) = timer {
        t.join().unwrap();
    }
    let status = child.wait().unwrap();
    let cut = stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    stdout.truncate(cut);
    decode(
        Output {
            status,
            stdout,
            stderr: stderr.join().unwrap(),
        },
        true,
    )
}

/// Counters of a chain of killed runs.
#[derive(Default)]
pub struct ChainStats {
    pub runs: u64,
    pub kills: u64,
    pub api_errors: u64,
    pub tally: Tally,
}

/// Syncs until `kills` runs were stopped mid-sync, each killed at a random
/// point (after N output lines or after a delay), or stopped by the API
/// failing, and resumed from the last STATE its output held; between runs
/// the data changes when `mutate`. A run that ends before its kill point
/// (how far a run gets in a given time, or how many lines it writes, hangs
/// on the machine's speed and the slices' scheduling) is one more run, and
/// the next draws its point from that run's length. Then syncs until one
/// run completes, and counts what the union of every output holds.
pub(crate) fn kill_chain(
    server: &FakeGleap,
    cfg: &Path,
    rng: &mut Rng,
    kills: usize,
    mutate: bool,
    max_delay_ms: u64,
) -> ChainStats {
    let s = Scratch::new();
    let mut all: Vec<Run> = Vec::new();
    let mut state: Option<Value> = None;
    let mut stats = ChainStats::default();
    let expected_lines: u64 = default_streams()
        .iter()
        .map(|n| server.snapshot(stream(n)).len() as u64)
        .sum::<u64>()
        + 40;
    let args_with = |state: &Option<Value>, i: usize| -> Vec<String> {
        let mut a = vec!["--config".to_string(), path_str(cfg).to_string()];
        if let Some(v) = state {
            let st = s.write_json(&format!("state-{i}.json"), v);
            a.extend(["--state".to_string(), path_str(&st).to_string()]);
        }
        a
    };
    // Kill points are drawn across the length of a run from the current
    // state: at first a whole sync, then what a resumed run takes (learnt
    // from the runs that finished before their kill point).
    let (mut typical_lines, mut typical_ms) = (expected_lines, max_delay_ms);
    let mut i = 0;
    while stats.kills + stats.api_errors < kills as u64 {
        // Each point lands before the end of the run it is drawn for about
        // half the time: missing this many in a row is no scheduling.
        assert!(
            i < 8 * kills,
            "setup: {i} runs, {} stopped mid-sync: the kill points keep missing",
            stats.kills + stats.api_errors
        );
        let kill = if rng.below(2) == 0 {
            Kill::AfterLines(1 + rng.below(typical_lines) as usize)
        } else {
            Kill::AfterMs(rng.below(typical_ms))
        };
        let args = args_with(&state, i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = run_killed(&args, kill);
        if run.code == 0 {
            typical_lines = run.messages.len() as u64;
            typical_ms = (started.elapsed().as_millis() as u64).max(20);
        }
        stats.runs += 1;
        match run.code {
            -1 => stats.kills += 1,
            0 => {}
            // 9: a stream failed past its retries, the others completed.
            7 | 9 => stats.api_errors += 1,
            c => panic!("run {i} ({kill:?}) exited {c}: {}", run.error_line()),
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        if let Some(v) = run.states().last() {
            state = Some((*v).clone());
        }
        all.push(run);
        if mutate {
            for name in INCREMENTAL {
                server.update(stream(name), rng.below(4));
                server.create(stream(name), rng.below(2));
                server.delete(stream(name), rng.below(2));
            }
            if rng.below(3) == 0 {
                server.bulk_update(stream("tickets"), 5 + rng.below(40));
            }
        }
        i += 1;
    }
    // Updates are stamped a millisecond apart, possibly a little ahead of
    // the clock: such records belong to a run that starts after them.
    std::thread::sleep(Duration::from_millis(120));
    // The final runs model "the next run completes": faults go on, but with a
    // retry budget long enough that one request rarely runs out of it (a
    // budget of 2 s against 30% faults completes a whole sync one run in five).
    let patient = s.write_json("patient.json", &json!({"retry_budget_seconds": 30}));
    for i in 0..20 {
        let mut args = args_with(&state, kills + i);
        args.extend(["--config".to_string(), path_str(&patient).to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = tap(&args);
        stats.runs += 1;
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let code = run.code;
        if let Some(v) = run.states().last() {
            state = Some((*v).clone());
        }
        all.push(run);
        match code {
            0 => break,
            // 9: a stream failed past its retries, the others completed.
            7 | 9 => stats.api_errors += 1,
            c => panic!("final run exited {c}: {}", all.last().unwrap().error_line()),
        }
        assert!(i < 19, "no run completed");
    }
    let outs: Vec<&[Message]> = all.iter().map(|r| r.messages.as_slice()).collect();
    let (tally, lost) = count(server, &outs);
    assert_eq!(tally.lost, 0, "records lost after kills: {lost:?}");
    stats.tally = tally;
    stats
}

pub(crate) fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED)
}

/// `kill -9` at seeded points across syncs of changing data, until 16
/// runs were killed mid-sync; each run is resumed from the last STATE it
/// printed. The union of all outputs holds every record of every stream
/// (every survey's responses too) at its latest version.
#[test]
fn reliability_kill_9_at_random_points_loses_nothing() {
    let server = start(FakeConfig {
        latency: Duration::from_millis(5),
        tickets: 400,
        sessions: 200,
        messages: 300,
        surveys: 4,
        responses_per_survey: 25,
        tie_group: 3,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 25}));
    let mut rng = Rng::new(seed());
    let stats = kill_chain(&server, &cfg, &mut rng, 16, true, 1500);
    assert_eq!(stats.tally.lost, 0);
    // Every survey's responses, at their latest versions.
    let per_survey: BTreeMap<Option<String>, usize> = server
        .snapshot(stream("survey_responses"))
        .into_iter()
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.survey_id).or_default() += 1;
            m
        });
    assert_eq!(per_survey.len(), 4);
}

/// The same with faults: runs die by `kill -9`, and by the API failing
/// past a short retry budget; resumption still loses nothing.
#[test]
fn reliability_kills_and_api_failures_together_lose_nothing() {
    let server = start(FakeConfig {
        latency: Duration::from_millis(2),
        tickets: 200,
        sessions: 100,
        messages: 150,
        faults: Faults {
            rate: 0.25,
            kinds: vec![
                Fault::Status500,
                Fault::Status503,
                Fault::TruncatedJson,
                Fault::ResetMidBody,
                Fault::WrongShape,
            ],
            hang: Duration::ZERO,
        },
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 20, "retry_budget_seconds": 2}));
    let mut rng = Rng::new(seed() ^ 0xFA17);
    let stats = kill_chain(&server, &cfg, &mut rng, 6, true, 2000);
    assert_eq!(stats.tally.lost, 0);
}

/// SIGTERM while every stream waits out a long retry: the tap stops at once
/// (it does not sit out the backoff), sends no request after the signal,
/// and still ends with a STATE.
#[cfg(unix)]
#[test]
fn reliability_sigterm_during_retry_waits_stops_at_once() {
    // 3 requests per 300 s: the first 429's Retry-After holds every stream
    // for about 300 s.
    let server = start(FakeConfig {
        rate_limit: Some(RateLimit {
            per_window: 3,
            window: Duration::from_secs(300),
            retry_after: RetryAfter::Seconds,
            body: ErrorBody::Json,
        }),
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"retry_budget_seconds": 600}));
    let mut tap = Watched::spawn(&["--config", path_str(&cfg)]);
    // Signalled once the tap holds (an event: its warning, logged once the
    // pause is set), not a while after the fake sent a 429.
    assert!(
        tap.wait_for(Pipe::Err, |l| l.contains("HTTP 429")
            && l.contains("; retry ")),
        "the tap met a 429"
    );
    let signalled = Instant::now();
    tap.signal("TERM");
    let run = tap.finish();
    assert_eq!(run.code, 143, "{}", run.stderr);
    // A tap that sat out the pause would take about 300 s; one that stops
    // at once takes a fraction of a second, and nowhere near a fifth of
    // the pause on the busiest machine.
    assert!(
        signalled.elapsed() < Duration::from_secs(60),
        "stopped without waiting out the 429 ({:?})",
        signalled.elapsed()
    );
    // No request after the signal, in the tap's own order of events: it
    // logs each request as it sends it, and the signal as it notices it,
    // both from its one worker thread. (The fake's count would also take
    // in requests sent before the signal that reach it after.)
    let noticed = run
        .stderr
        .lines()
        .position(|l| l.contains("received SIGTERM"))
        .unwrap_or_else(|| panic!("the tap logs the signal:\n{}", run.stderr));
    let sent_after: Vec<&str> = run
        .stderr
        .lines()
        .skip(noticed)
        .filter(|l| {
            l.contains(" DEBUG ")
                && l.contains("tap_gleap::client: GET ")
                && !l.contains("; retry ")
        })
        .collect();
    assert!(
        sent_after.is_empty(),
        "requests sent after SIGTERM: {sent_after:#?}"
    );
    assert!(matches!(run.messages.last(), Some(Message::State { .. })));
}

// ------------------------------------------------------------ bad input

fn assert_clean_failure(run: &Run, code: i32, what: &str, needles: &[&str]) {
    assert_eq!(run.code, code, "{what}: {}", run.stderr);
    let line = run.error_line();
    for n in needles {
        assert!(line.contains(n), "{what}: {line:?} should mention {n:?}");
    }
    assert!(
        run.stdout.is_empty(),
        "{what}: nothing half-written on stdout"
    );
    assert!(!run.stderr.contains("panicked"), "{what}: no panic");
    assert!(!line.contains(CANARY_KEY), "{what}: the key is not echoed");
}

#[test]
fn reliability_bad_config_values_name_the_file_the_key_and_what_is_expected() {
    let s = Scratch::new();
    let base =
        json!({"api_key": CANARY_KEY, "project_id": "p", "api_url": "http://127.0.0.1:9/v3"});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "page_size float",
            json!({"page_size": 1.5}),
            &["page_size", "whole number"],
        ),
        (
            "page_size too big",
            json!({"page_size": 20000}),
            &["page_size", "1 to 10000"],
        ),
        ("page_size zero", json!({"page_size": 0}), &["page_size"]),
        (
            "rpm zero",
            json!({"requests_per_minute": 0}),
            &["requests_per_minute", "whole number"],
        ),
        (
            "timeout negative",
            json!({"request_timeout_seconds": -3}),
            &["request_timeout_seconds"],
        ),
        (
            "timeout as text",
            json!({"request_timeout_seconds": "soon"}),
            &["request_timeout_seconds"],
        ),
        (
            "budget negative",
            json!({"retry_budget_seconds": -1}),
            &["retry_budget_seconds", "0 to"],
        ),
        (
            "budget an object",
            json!({"retry_budget_seconds": {"s": 1}}),
            &["retry_budget_seconds"],
        ),
        (
            "start_date a number",
            json!({"start_date": 20240101}),
            &["start_date"],
        ),
        (
            "start_date epoch text",
            json!({"start_date": "1700000000"}),
            &["start_date", "RFC 3339"],
        ),
        (
            "api_url a number",
            json!({"api_url": 5}),
            &["api_url", "URL"],
        ),
        (
            "api_url ftp",
            json!({"api_url": "ftp://api.gleap.io/v3"}),
            &["api_url", "http"],
        ),
        (
            "api_url lookalike loopback",
            json!({"api_url": "http://localhost.example.com/v3"}),
            &["api_url", "allow_insecure_http"],
        ),
        (
            "boolean as text",
            json!({"allow_insecure_http": "maybe"}),
            &["allow_insecure_http", "true or false"],
        ),
        (
            "project_id a number",
            json!({"project_id": 7}),
            &["project_id", "string"],
        ),
        (
            "project_id empty",
            json!({"project_id": "  "}),
            &["project_id"],
        ),
        (
            "api_key a number",
            json!({"api_key": 12345}),
            &["api_key", "<redacted>"],
        ),
        (
            "api_key an array holding it",
            json!({"api_key": [CANARY_KEY]}),
            &["api_key", "<redacted>"],
        ),
        (
            "api_key not sendable",
            json!({"api_key": format!("{CANARY_KEY}\nX-Injected: 1")}),
            &["api_key", "header"],
        ),
        (
            "api_key not ASCII",
            json!({"api_key": format!("{CANARY_KEY}é")}),
            &["api_key", "header"],
        ),
        (
            "project_id not sendable",
            json!({"project_id": "p\u{7}"}),
            &["project_id", "header"],
        ),
    ];
    for (what, patch, needles) in cases {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let cfg = s.write_json("config.json", &c);
        let run = tap(&["--config", path_str(&cfg)]);
        let mut needles = needles.to_vec();
        needles.push("config.json");
        assert_clean_failure(&run, CONFIG_ERROR, what, &needles);
        assert!(
            !run.stderr.contains("7f3a9c1e"),
            "{what}: no part of the key"
        );
    }
}

#[test]
fn reliability_bad_state_values_exit_4_without_output() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "bookmark a number",
            json!({"bookmarks": {"sessions": {"replication_key_value": 1700000000000u64}}}),
            &["bookmarks.sessions.replication_key_value", "date-time"],
        ),
        (
            "bookmark a bool",
            json!({"bookmarks": {"messages": {"replication_key_value": true}}}),
            &["bookmarks.messages"],
        ),
        (
            "bookmark in the future, partition",
            json!({"bookmarks": {"tickets": {"partitions": [{"context": {}, "replication_key_value": "2999-01-01T00:00:00.000Z"}]}}}),
            &["partitions[0]", "future"],
        ),
        (
            "bookmark not a date, partition",
            json!({"bookmarks": {"tickets": {"partitions": [{"context": {}, "replication_key_value": "2024-13-45"}]}}}),
            &["partitions[0]", "not a date-time"],
        ),
        (
            "partitions not an array",
            json!({"bookmarks": {"tickets": {"partitions": {}}}}),
            &["partitions", "array"],
        ),
        (
            "stream bookmark not an object",
            json!({"bookmarks": {"sessions": "2024-01-01"}}),
            &["bookmarks.sessions", "object"],
        ),
        (
            "STATE message without value",
            json!({"type": "STATE", "value": 5}),
            &["STATE"],
        ),
        (
            "meltano export, bad inside",
            json!({"singer_state": {"bookmarks": {"sessions": {"replication_key_value": "later"}}}}),
            &["bookmarks.sessions"],
        ),
    ];
    for (what, content, needles) in cases {
        let run = s.tap_with_state(&cfg, &content);
        let mut needles = needles.to_vec();
        needles.push("state.json");
        assert_clean_failure(&run, STATE_ERROR, what, &needles);
    }
    assert_eq!(server.stats().requests, 0, "nothing was fetched");
}

#[test]
fn reliability_bad_catalogs_exit_5_without_output() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let full_incremental = catalog_selecting(&cfg, &["teams"], |e| {
        e["metadata"][0]["metadata"]["replication-method"] = json!("INCREMENTAL")
    });
    let bad_method = catalog_selecting(&cfg, &["sessions"], |e| {
        e["metadata"][0]["metadata"]["replication-method"] = json!("LOG_BASED")
    });
    let bad_top_key = catalog_selecting(&cfg, &["sessions"], |e| {
        e["metadata"][0]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("replication-key");
        e["replication_key"] = json!("id");
    });
    let mut twice = catalog_selecting(&cfg, &["teams"], |_| {});
    let dup = twice["streams"][3].clone();
    twice["streams"].as_array_mut().unwrap().push(dup);
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("streams not an array", json!({"streams": {}}), &["streams"]),
        (
            "entry without a name",
            json!({"streams": [{"metadata": []}]}),
            &["streams[0]", "tap_stream_id"],
        ),
        (
            "unknown stream",
            json!({"streams": [{"tap_stream_id": "tickets_v2", "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]}]}),
            &["unknown stream \"tickets_v2\""],
        ),
        (
            "incremental on a full-table stream",
            full_incremental,
            &["teams", "FULL_TABLE"],
        ),
        ("unsupported method", bad_method, &["LOG_BASED"]),
        (
            "unknown top-level replication key",
            bad_top_key,
            &["unknown replication key \"id\""],
        ),
        ("a stream twice", twice, &["appears twice"]),
        (
            "nothing selected, metadata missing",
            json!({"streams": [{"tap_stream_id": "teams"}]}),
            &["no stream is selected"],
        ),
    ];
    for (what, content, needles) in cases {
        let cat = s.write_json("catalog.json", &content);
        let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
        let mut needles = needles.to_vec();
        needles.push("catalog.json");
        assert_clean_failure(&run, CATALOG_ERROR, what, &needles);
    }
    assert_eq!(server.stats().requests, 0, "nothing was fetched");
}

// ------------------------------------------- a stand-in server for odd bodies

/// What the stand-in answers.
enum Reply {
    Body(u16, &'static str, Vec<u8>),
    /// 200 with a JSON array body of this many bytes, streamed, no length.
    Huge(u64),
}

/// A minimal HTTP/1.1 server (one thread per connection, `Connection:
/// close`) for bodies the fake does not produce.
struct StandIn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(route: fn(&str) -> Reply) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    requests.fetch_add(1, Ordering::Relaxed);
                    std::thread::spawn(move || serve_one(conn, route));
                }
            })
        };
        StandIn {
            addr,
            stop,
            requests,
            handle: Some(handle),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve_one(mut conn: TcpStream, route: fn(&str) -> Reply) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
    match route(&target) {
        Reply::Body(status, ct, body) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
        Reply::Huge(bytes) => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n["
            );
            let rec =
                br#"{"id":"65a000000000000000000001","name":"a team with a very long name"},"#;
            let chunk: Vec<u8> = rec.iter().copied().cycle().take(rec.len() * 1000).collect();
            let mut sent = 0u64;
            while sent < bytes {
                if conn.write_all(&chunk).is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
            let _ = conn.write_all(br#"{"id":"x"}]"#);
        }
    }
}

fn stand_in_config(s: &Scratch, url: &str, extra: Value) -> std::path::PathBuf {
    let mut c = json!({
        "api_key": CANARY_KEY,
        "project_id": PROJECT,
        "api_url": url,
        "requests_per_minute": 60000,
        "request_timeout_seconds": 20,
        "retry_budget_seconds": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    s.write_json("config.json", &c)
}

fn only(s: &Scratch, cfg: &Path, streams: &[&str]) -> std::path::PathBuf {
    s.write_json("catalog.json", &catalog_selecting(cfg, streams, |_| {}))
}

/// Records without an id, dates as epoch milliseconds and without a zone,
/// an element that is not an object, and invalid UTF-8 bytes: the tap
/// conforms what it can, reports what it skipped and why, and completes.
#[test]
fn reliability_odd_api_records_are_conformed_or_skipped_with_a_reason() {
    let server = StandIn::start(|target| {
        if !target.starts_with("/v3/sessions") {
            return Reply::Body(200, "application/json", b"[]".to_vec());
        }
        if target.contains("updatedAt%3E") {
            // The keyset's next page: nothing after the last record.
            return Reply::Body(200, "application/json", b"[]".to_vec());
        }
        let mut body = Vec::new();
        body.extend_from_slice(
            br#"[{"updatedAt":"2024-01-01T00:00:00.000Z","name":"no id at all"},"#,
        );
        body.extend_from_slice(br#"{"id":"","updatedAt":"2024-01-01T00:00:00.500Z"},"#);
        body.extend_from_slice(br#"{"id":"s1","updatedAt":1704067201000,"createdAt":1704067201},"#);
        body.extend_from_slice(br#"{"_id":"s2","updatedAt":"2024-01-01 00:00:02"},"#);
        body.extend_from_slice(br#"42,"#);
        body.extend_from_slice(b"{\"id\":\"s3\",\"updatedAt\":\"2024-01-01T00:00:03Z\",\"name\":\"bad \xff\xfe bytes\"},");
        body.extend_from_slice(
            br#"{"id":"s4","updatedAt":"2024-01-01T01:00:04+01:00","createdAt":"yesterday"}]"#,
        );
        Reply::Body(200, "application/json", body)
    });
    let s = Scratch::new();
    // The tap's own timeout and budget: a slow answer is not what this
    // test is about.
    let cfg = stand_in_config(
        &s,
        &server.url(),
        json!({"request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let cat = only(&s, &cfg, &["sessions"]);
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    run.assert_ok();
    assert_records_match_schemas(&run);
    let recs = run.records("sessions");
    let got: BTreeMap<&str, &Value> = recs
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), &r["updatedAt"]))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("s1", &json!("2024-01-01T00:00:01.000Z")),
            ("s2", &json!("2024-01-01T00:00:02.000Z")),
            ("s3", &json!("2024-01-01T00:00:03.000Z")),
            ("s4", &json!("2024-01-01T00:00:04.000Z")),
        ]),
        "dates normalised to RFC 3339 UTC"
    );
    let s1 = recs.iter().find(|r| r["id"] == "s1").unwrap();
    assert_eq!(s1["createdAt"], "2024-01-01T00:00:01.000Z", "epoch seconds");
    let s3 = recs.iter().find(|r| r["id"] == "s3").unwrap();
    assert_eq!(s3["name"], "bad \u{FFFD}\u{FFFD} bytes");
    let s4 = recs.iter().find(|r| r["id"] == "s4").unwrap();
    assert!(
        s4["createdAt"].is_null(),
        "an unparseable date becomes null"
    );
    for reason in ["without an id", "not valid UTF-8", "is not a date"] {
        assert!(run.stderr.contains(reason), "{reason:?} is reported");
    }
    // Counted each time a page holding them is written: the stand-in
    // ignores filters and sort, so the tap reads its page more than once.
    let skipped: u64 = run
        .stderr
        .lines()
        .find_map(|l| {
            l.split(" skipped,")
                .next()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(
        skipped >= 3,
        "the summary counts the skipped elements: {}",
        run.stderr
    );
    assert_eq!(
        run.last_state()["bookmarks"]["sessions"]["replication_key_value"],
        "2024-01-01T00:00:04.000Z"
    );
}

/// A body of hundreds of megabytes is refused at 256 MiB (never held whole,
/// never an out-of-memory crash), retried within the budget, then a clear
/// error with exit 7.
#[test]
fn reliability_a_huge_body_is_refused_with_a_clear_error() {
    let server = StandIn::start(|target| {
        if target.starts_with("/v3/teams") {
            Reply::Huge(300 << 20)
        } else {
            Reply::Body(200, "application/json", b"[]".to_vec())
        }
    });
    let s = Scratch::new();
    // No request timeout the machine's speed could reach before 256 MiB:
    // on a busy machine 4 such bodies at once took over 20 s to reach it.
    let cfg = stand_in_config(
        &s,
        &server.url(),
        json!({"retry_budget_seconds": 1, "request_timeout_seconds": 600}),
    );
    let cat = only(&s, &cfg, &["teams"]);
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("larger than 256 MiB") && line.contains("retry_budget_seconds"),
        "{line}"
    );
    assert!(!run.stderr.contains("panicked"));
    // Retried within the budget, however long a body takes to refuse: a
    // 1 s budget admits at most 3 tries (backoff waits at least 0.25 s,
    // then 0.5 s, then 1 s: a fourth would start after 1.75 s).
    let tries = server.requests.load(Ordering::Relaxed);
    assert!((1..=3).contains(&tries), "{tries} tries");
    // Nothing half-written, and nothing a target would take for a sync.
    assert_eq!(run.stdout, "", "nothing on stdout");
}

// ---------------------------------------------------------------- security

/// The key never reaches the state, the output or an error; no setting can
/// turn certificate checks off.
#[test]
fn reliability_the_key_never_leaks_and_tls_checks_cannot_be_disabled() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    let state = serde_json::to_string(run.last_state()).unwrap();
    assert!(!state.contains(CANARY_KEY) && !state.contains("7f3a9c1e"));
    // A wrong key: the 401 error names the settings, not the key.
    let wrong = format!("{CANARY_KEY}-wrong");
    let cfg = s.config(&server, json!({"api_key": wrong}));
    let run = tap(&["--config", path_str(&cfg)]);
    assert_eq!(run.code, 6);
    assert!(!run.stderr.contains(&wrong));
    // Debug of a loaded config.
    let config =
        tap_gleap::config::from_value(&json!({"api_key": CANARY_KEY, "project_id": "p"})).unwrap();
    assert!(!format!("{config:?}").contains(CANARY_KEY));
    // No setting turns TLS verification off.
    let about = tap_plain(&["--about"]);
    let about: Value = serde_json::from_str(&about.stdout).unwrap();
    for key in about["settings"]["properties"].as_object().unwrap().keys() {
        for word in ["verify", "cert", "tls", "ssl"] {
            assert!(!key.contains(word), "setting {key} touches TLS checks");
        }
    }
    let client = include_str!("../src/client.rs");
    assert!(!client.contains("danger_accept_invalid"));
    // Plain http to a non-loopback host is refused before any request.
    let cfg = s.config(&server, json!({"api_url": "http://gleap.example.com/v3"}));
    let run = tap(&["--config", path_str(&cfg)]);
    assert_eq!(run.code, CONFIG_ERROR);
    assert!(run.error_line().contains("allow_insecure_http"));
}

// ------------------------------------------------------------------- soak

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Minutes of syncs against a fake with high fault rates and random rate
/// limits, killed at random points, data changing between runs; prints a
/// table. `scripts/soak.sh` runs it: SOAK_SECONDS, SOAK_SEED, SOAK_FAULT_RATE
/// (percent), SOAK_KILLS (per round).
#[test]
#[ignore]
fn soak() {
    let seconds = env_u64("SOAK_SECONDS", 180);
    let mut rng = Rng::new(env_u64("SOAK_SEED", 1));
    let fault_pct = env_u64("SOAK_FAULT_RATE", 30);
    let kills = env_u64("SOAK_KILLS", 12) as usize;
    let started = Instant::now();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = ChainStats::default();
    let mut rounds = 0;
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        rounds += 1;
        let kinds: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|k| *k != Fault::Hang || rng.below(4) == 0)
            .collect();
        let rate_limit = (rng.below(2) == 0).then(|| RateLimit {
            per_window: 20 + rng.below(40) as u32,
            window: Duration::from_secs(1),
            retry_after: [
                RetryAfter::Seconds,
                RetryAfter::HttpDate,
                RetryAfter::Absent,
            ][rng.below(3) as usize],
            body: [ErrorBody::Json, ErrorBody::Text, ErrorBody::Empty][rng.below(3) as usize],
        });
        let server = start(FakeConfig {
            seed: rng.next(),
            latency: Duration::from_millis(rng.below(4)),
            tickets: 200 + rng.below(800),
            sessions: 100 + rng.below(400),
            messages: 200 + rng.below(800),
            surveys: 2 + rng.below(5),
            responses_per_survey: 5 + rng.below(40),
            tie_group: 1 + rng.below(40),
            tie_order: if rng.below(2) == 0 {
                TieOrder::Shuffled
            } else {
                TieOrder::Natural
            },
            odd_records: rng.below(2) == 0,
            faults: Faults {
                rate: fault_pct as f64 / 100.0,
                kinds,
                hang: Duration::from_millis(1500),
            },
            rate_limit,
            ..fake_config()
        });
        let s = Scratch::new();
        let cfg = s.config(
            &server,
            json!({
                "page_size": 10 + rng.below(60),
                "request_timeout_seconds": 1,
                "retry_budget_seconds": 1 + rng.below(8),
            }),
        );
        let st = kill_chain(&server, &cfg, &mut rng, kills, true, 3000);
        let stats = server.stats();
        for (k, v) in stats.faults {
            *faults.entry(k).or_default() += v;
        }
        *faults.entry("429".into()).or_default() += stats.rate_limited;
        requests += stats.requests;
        total.runs += st.runs;
        total.kills += st.kills;
        total.api_errors += st.api_errors;
        total.tally.add(st.tally);
        eprintln!(
            "soak round {rounds}: {} runs, {} kills, {} lost",
            st.runs, st.kills, st.tally.lost
        );
    }
    let t = total.tally;
    let mut table = String::new();
    table.push_str(&format!(
        "soak: {rounds} rounds in {:.0}s, seed {}, fault rate {fault_pct}%\n",
        started.elapsed().as_secs_f64(),
        env_u64("SOAK_SEED", 1)
    ));
    table.push_str("| what | count |\n|:--|--:|\n");
    table.push_str(&format!("| API requests | {requests} |\n"));
    for (k, v) in &faults {
        table.push_str(&format!("| faults injected: {k} | {v} |\n"));
    }
    for (k, v) in [
        ("runs", total.runs),
        ("kill -9 points (landed)", total.kills),
        ("runs stopped by the API (exit 7)", total.api_errors),
        ("records expected", t.expected),
        ("records delivered", t.delivered),
        ("records lost", t.lost),
        ("duplicates (re-delivered same version)", t.duplicates),
    ] {
        table.push_str(&format!("| {k} | {v} |\n"));
    }
    println!("{table}");
    assert_eq!(t.lost, 0);
}

/// `page_size` 1 is a valid setting: the one-record overlap of offset walks
/// must still move forward (it used to re-read the first record and stop,
/// losing every team, survey and template but the first, and so the
/// responses of every survey but the first).
#[test]
fn reliability_page_size_1_reads_every_record() {
    let server = start(FakeConfig {
        tickets: 12,
        sessions: 6,
        messages: 6,
        teams: 3,
        surveys: 3,
        responses_per_survey: 2,
        message_templates: 3,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 1}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    assert_nothing_lost(&server, &[&run.messages], "page_size 1");
}

#[test]
fn reliability_a_page_of_only_id_less_elements_is_retried_not_taken_as_the_end() {
    // `[{"error": ...}]` from an array endpoint parses, but holds no record:
    // taken as an empty last page, it would end a full-table pass early and,
    // with ACTIVATE_VERSION, make the target drop rows.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let server = StandIn::start(|target| {
        if !target.starts_with("/v3/teams") {
            return Reply::Body(200, "application/json", b"[]".to_vec());
        }
        if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Body(
                200,
                "application/json",
                br#"[{"error":"temporarily unavailable"}]"#.to_vec(),
            );
        }
        let skip: usize = target
            .split("skip=")
            .nth(1)
            .and_then(|v| v.split('&').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let teams = [
            r#"{"id":"t1","name":"a"}"#,
            r#"{"id":"t2","name":"b"}"#,
            r#"{"id":"t3","name":"c"}"#,
        ];
        let page: Vec<&str> = teams.iter().skip(skip).copied().collect();
        Reply::Body(
            200,
            "application/json",
            format!("[{}]", page.join(",")).into_bytes(),
        )
    });
    let s = Scratch::new();
    // The tap's default retry budget: the stand-in's 2 s would be spent by
    // a first answer that a busy machine took long to give, and the retry
    // is what this test is about.
    let cfg = stand_in_config(&s, &server.url(), json!({"retry_budget_seconds": 600}));
    let cat = only(&s, &cfg, &["teams"]);
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    run.assert_ok();
    let got: Vec<String> = run.ids("teams").into_iter().collect();
    assert_eq!(got, vec!["t1", "t2", "t3"]);
    assert!(
        run.stderr
            .contains("no element of the page is a record with an id"),
        "{}",
        run.stderr
    );
}
