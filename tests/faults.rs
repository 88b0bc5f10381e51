//! The API misbehaving: rate limits, server errors, broken bodies, a child
//! that disappears, and the target going away.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_gleap::{ErrorBody, FakeConfig, Fault, Faults, RateLimit, RetryAfter};
use serde_json::json;

use crate::reliability::{finish_within_guard, until_set_up, Pipe, Watched};
use crate::util::*;

fn assert_everything(run: &Run, server: &fake_gleap::FakeGleap) {
    for name in default_streams() {
        assert_eq!(run.ids(name), fake_ids(server, name), "{name}");
    }
}

#[test]
fn rate_limits_with_and_without_retry_after_are_waited_out() {
    for (retry_after, body) in [
        (RetryAfter::Seconds, ErrorBody::Json),
        (RetryAfter::HttpDate, ErrorBody::Text),
        (RetryAfter::Absent, ErrorBody::Empty),
    ] {
        // That the fake rate-limited is setup: the tap's first requests,
        // one per stream at once, meet the limit unless the machine spreads
        // them over more than its window. If it did, the scenario runs again.
        until_set_up(&format!("{retry_after:?}"), 5, || {
            let rl = RateLimit {
                per_window: 8,
                window: Duration::from_secs(1),
                retry_after,
                body,
            };
            let server = start(FakeConfig {
                rate_limit: Some(rl),
                ..small_config()
            });
            let s = Scratch::new();
            // The tap is told it may go much faster than the fake allows, as
            // when another integration shares the project's budget; with
            // its default retry budget: a request a busy machine keeps
            // sending after the others is waiting its turn, not failing.
            let run = tap(&[
                "--config",
                path_str(&s.config(
                    &server,
                    json!({"page_size": 30, "retry_budget_seconds": 600}),
                )),
            ]);
            run.assert_ok();
            assert_everything(&run, &server);
            if server.stats().rate_limited == 0 {
                return false;
            }
            assert!(
                run.stderr.contains("429"),
                "{retry_after:?}: 429s are logged"
            );
            true
        });
    }
}

#[test]
fn the_tap_keeps_to_its_own_rate_budget() {
    let server = start(small_config());
    let s = Scratch::new();
    let started = Instant::now();
    let run = tap(&[
        "--config",
        path_str(&s.config(
            &server,
            json!({"page_size": 10, "requests_per_minute": 600}),
        )),
    ]);
    run.assert_ok();
    let requests = server.stats().requests;
    let secs = started.elapsed().as_secs_f64();
    // 600/min is 10/s, spaced evenly (burst 1): n requests take at least
    // (n - 1) / 10 s of the tap's time, which this wall time covers. A
    // busy machine only makes the run longer, never the bound tighter.
    assert!(
        requests as f64 <= 10.0 * secs + 2.0,
        "{requests} requests in {secs:.1}s"
    );
    assert_eq!(server.stats().rate_limited, 0);
}

#[test]
fn server_errors_and_broken_bodies_are_retried_until_everything_is_read() {
    let kinds = vec![
        Fault::Status500,
        Fault::Status502,
        Fault::Status503,
        Fault::Status504,
        Fault::TruncatedJson,
        Fault::Html200,
        Fault::WrongShape,
        Fault::EmptyBody200,
        Fault::ResetMidBody,
        Fault::Hang,
    ];
    let server = start(FakeConfig {
        faults: Faults {
            rate: 0.25,
            kinds,
            hang: Duration::from_secs(4),
        },
        ..small_config()
    });
    let s = Scratch::new();
    let run = tap(&[
        "--config",
        path_str(&s.config(
            &server,
            // A budget of the tap's default: a busy machine may answer
            // slower than the 1 s timeout now and then, never for ten
            // minutes on end.
            json!({"page_size": 8, "request_timeout_seconds": 1, "retry_budget_seconds": 600}),
        )),
    ]);
    run.assert_ok();
    assert_everything(&run, &server);
    let faults: u64 = server.stats().faults.values().sum();
    // Not a matter of timing: the fake draws faults from its seed by the
    // request's sequence number (5 among the first 35 at 0.25), and this
    // sync makes more requests than that whatever their order.
    assert!(
        faults >= 5,
        "faults were injected: {:?}",
        server.stats().faults
    );
    assert!(run.stderr.contains("retry"), "retries are logged");
}

#[test]
fn an_api_that_keeps_failing_stops_after_the_retry_budget_and_writes_nothing() {
    let server = start(FakeConfig {
        faults: Faults {
            rate: 1.0,
            kinds: vec![Fault::Status503],
            hang: Duration::ZERO,
        },
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"retry_budget_seconds": 3}));
    let run = finish_within_guard(spawn_tap(&["--config", path_str(&cfg)]), "503s");
    assert_eq!(run.code, 7, "{}", run.stderr);
    let last = run.error_line();
    assert!(last.contains("retry_budget_seconds"), "{last}");
    // Requests were spaced by backoff, not hammered, however fast or slow
    // the machine: one request is tried at most 4 times in a 3 s budget
    // (backoff waits at least 0.25, 0.5, 1 and 2 s before the 2nd to the
    // 5th try, so a fifth would start after 3.75 s). Each stream fails on
    // its own, none stops the others: before any page arrives each has one
    // request out, tickets, sessions and messages two (a first sync's
    // newest-record probe beside its first page), and one more may ask the
    // API's clock.
    let streams = default_streams().len() as u64;
    assert!(
        server.stats().requests <= 4 * (streams + 3 + 1),
        "{} requests",
        server.stats().requests
    );
    // No stream was read: nothing a target would take for a sync (no
    // SCHEMA, no STATE), and the state the run was given stays the one
    // to resume from.
    assert_eq!(run.stdout, "", "nothing on stdout");
}

#[test]
fn a_closed_stdout_ends_the_tap_quietly() {
    let server = start(FakeConfig {
        tickets: 5000,
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let mut child = tap_command(&["--config", path_str(&cfg)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up, as a target that crashed would.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    let _ = stdout.read(&mut buf).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn sigterm_flushes_what_was_read_and_prints_a_covering_state() {
    let server = start(FakeConfig {
        latency: Duration::from_millis(30),
        tickets: 3000,
        ..small_config()
    });
    let s = Scratch::new();
    // 600 requests a minute: the sync's hundred-odd requests take ten
    // seconds and more of the tap's own limiter, so a signal sent once the
    // first tickets are written lands mid-sync.
    let cfg = s.config(
        &server,
        json!({"page_size": 50, "requests_per_minute": 600}),
    );
    let fast = s.write_json(
        "fast.json",
        &json!({"page_size": 1000, "requests_per_minute": 60000}),
    );
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        // That the signal lands before the sync ends is setup: if the
        // machine held it back that long (the run exits 0), the scenario
        // runs again.
        until_set_up(&format!("SIG{signal}"), 5, || {
            let mut running = Watched::spawn(&["--config", path_str(&cfg)]);
            // Signalled once the tap has written tickets (an event on its
            // stdout), however loaded the machine.
            assert!(
                running.wait_for(Pipe::Out, |l| {
                    l.starts_with(r#"{"type":"RECORD","stream":"tickets""#)
                }),
                "{signal}: tickets are written"
            );
            running.signal(signal);
            let run = running.finish();
            if run.code == 0 {
                return false;
            }
            assert_eq!(run.code, code, "{signal}: {}", run.stderr);
            assert!(
                !run.records("tickets").is_empty(),
                "records read before the signal were written"
            );
            assert!(
                matches!(run.messages.last(), Some(Message::State { .. })),
                "{signal}: the output ends with a STATE"
            );
            // Resuming from it completes the data.
            let st = s.write_json("state.json", run.last_state());
            let rest = tap(&[
                "--config",
                path_str(&cfg),
                "--state",
                path_str(&st),
                "--config",
                path_str(&fast),
            ]);
            rest.assert_ok();
            for name in ["tickets", "sessions", "messages"] {
                let mut all = run.ids(name);
                all.extend(rest.ids(name));
                assert_eq!(all, fake_ids(&server, name), "{signal}: {name}");
            }
            true
        });
    }
}
