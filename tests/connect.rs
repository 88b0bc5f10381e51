//! An `api_url` nothing answers at: a refused connection, an unknown host
//! or a TLS failure before any response is a configuration error, and fails
//! in seconds with a line naming `api_url` and the host. Once the API has
//! answered, the full retry budget applies again; `--test` always ends
//! within about 15 s.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_gleap::{FakeConfig, Fault, Faults};
use serde_json::{json, Value};

use crate::util::*;

const API_ERROR: i32 = 7;

/// A config at `api_url` with the default retry budget (600 s), which a
/// wrong URL must not spend.
fn config_at(s: &Scratch, api_url: &str, extra: Value) -> PathBuf {
    let mut c = json!({
        "api_key": CANARY_KEY,
        "project_id": PROJECT,
        "api_url": api_url,
        "request_timeout_seconds": 5,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    s.write_json("config.json", &c)
}

/// Lines of stderr at `level` (`ERROR`, `WARN`).
fn lines_at(stderr: &str, level: &str) -> Vec<String> {
    let tag = format!(" {level} ");
    stderr
        .lines()
        .filter(|l| l.contains(&tag))
        .map(str::to_string)
        .collect()
}

/// A retry line of a request whose own timeout (`request_timeout_seconds`)
/// passed. A loaded machine can add such lines to any run (a resolver or a
/// local request slower than the timeout): how many depends on scheduling,
/// not on the tap; what they say does not.
fn is_timeout_retry(line: &str) -> bool {
    line.contains("request timed out") && line.contains("; retry ")
}

/// The first-contact window (`client.rs`): before any answer, a request
/// that cannot connect is tried 3 times, none starting past 10 s after the
/// first, and backoff `n` (after attempt `n + 1`) waits at most
/// 0.5 s x 2^n.
const FIRST_CONTACT_ATTEMPTS: u32 = 3;
const FIRST_CONTACT_WINDOW_S: f64 = 10.0;

/// `N attempts over T s` in a first-contact error line.
fn attempts_over(line: &str) -> (u32, f64) {
    let (before, after) = line
        .split_once(" attempts over ")
        .unwrap_or_else(|| panic!("the line says its attempts: {line}"));
    let n = before.rsplit(' ').next().unwrap().parse().unwrap();
    let t = after.split('s').next().unwrap().parse().unwrap();
    (n, t)
}

/// A sync and a `--test` both fail fast, exit 7, and end with one line
/// naming `api_url` and `host`: the only ERROR line, beside one warning at
/// most for the attempts, and nothing on stdout a target would take for a
/// sync (no SCHEMA, no empty STATE).
fn assert_fails_fast(cfg: &Path, host: &str, what: &str) {
    for mode in [&[][..], &["--test"][..]] {
        let mut args = vec!["--config", path_str(cfg)];
        args.extend_from_slice(mode);
        let started = Instant::now();
        let run = tap(&args);
        let took = started.elapsed();
        assert_eq!(run.code, API_ERROR, "{what} {mode:?}: {}", run.stderr);
        // "In seconds", not the retry budget (600 s by default): the tap
        // stops within its 10 s first-contact window plus one request
        // timeout (5 s); the process's wall time on a loaded machine adds
        // to that what scheduling does, so the bound is four times that,
        // still a tenth of the budget a wrong URL must not spend.
        assert!(
            took < Duration::from_secs(60),
            "{what} {mode:?}: took {took:?}"
        );
        let line = run.error_line();
        assert!(
            line.contains("\"api_url\"") && line.contains(host),
            "{what} {mode:?}: {line}"
        );
        // The attempts the README gives (3), unless the 10 s window ended
        // them first: a slow resolver on a loaded machine can take seconds
        // an attempt. Either way the tap says which.
        let (attempts, over) = attempts_over(&line);
        assert!(
            (1..=FIRST_CONTACT_ATTEMPTS).contains(&attempts),
            "{what} {mode:?}: {line}"
        );
        let longest_wait = 0.5 * f64::from(1u32 << (attempts - 1));
        assert!(
            attempts == FIRST_CONTACT_ATTEMPTS
                || over + longest_wait + 0.05 > FIRST_CONTACT_WINDOW_S,
            "{what} {mode:?}: fewer than {FIRST_CONTACT_ATTEMPTS} attempts, yet within the first-contact window: {line}"
        );
        assert!(
            !line.contains("retry_budget_seconds"),
            "{what} {mode:?}: the budget is not what failed: {line}"
        );
        assert!(
            run.records("tickets").is_empty(),
            "{what} {mode:?}: nothing read"
        );
        assert_eq!(run.stdout, "", "{what} {mode:?}: nothing on stdout");
        let errors = lines_at(&run.stderr, "ERROR");
        assert_eq!(
            errors.len(),
            1,
            "{what} {mode:?}: one ERROR line: {errors:#?}"
        );
        assert!(errors[0].ends_with(&line), "{what} {mode:?}: {errors:#?}");
        // One warning for the run about the silent host, however many
        // streams met it; besides it, only retries of requests that timed
        // out, which a loaded machine may add.
        let warnings = lines_at(&run.stderr, "WARN");
        let silent = warnings
            .iter()
            .filter(|l| l.contains("nothing has answered at"))
            .count();
        assert!(
            silent <= 1,
            "{what} {mode:?}: one warning for the run at most: {warnings:#?}"
        );
        let others: Vec<&String> = warnings
            .iter()
            .filter(|l| !l.contains("nothing has answered at") && !is_timeout_retry(l))
            .collect();
        assert!(others.is_empty(), "{what} {mode:?}: {others:#?}");
    }
}

/// A wrong path in `api_url` (`/v2`): every endpoint answers 404, the
/// optional ones too. The cause is decided from all of them: one line
/// naming `api_url`, exit 7, and no warning that blames the project's plan
/// for the optional streams' 404s; a sync and `--test` alike.
#[test]
fn a_wrong_path_in_api_url_is_blamed_on_api_url_not_on_the_plan() {
    let server = start(fake_config());
    let s = Scratch::new();
    let url = server.url();
    assert!(url.ends_with("/v3"), "{url}");
    let wrong = format!("{}/v2", url.trim_end_matches("/v3"));
    let cfg = config_at(&s, &wrong, json!({}));
    for mode in [&[][..], &["--test"][..]] {
        let mut args = vec!["--config", path_str(&cfg)];
        args.extend_from_slice(mode);
        let run = tap(&args);
        assert_eq!(run.code, API_ERROR, "{mode:?}: {}", run.stderr);
        let line = run.error_line();
        assert!(
            line.contains("answered 404")
                && line.contains("\"api_url\"")
                && line.contains(&server.addr().to_string())
                && line.contains("/v3"),
            "{mode:?}: names api_url, its host and the path Gleap has: {line}"
        );
        assert!(
            !run.stderr.contains("plan does not include"),
            "{mode:?}: the plan is not blamed:\n{}",
            run.stderr
        );
        let errors = lines_at(&run.stderr, "ERROR");
        assert_eq!(errors.len(), 1, "{mode:?}: one ERROR line: {errors:#?}");
        // No warning, but a retry of a request that timed out, which a
        // loaded machine may add to any run.
        let warnings: Vec<String> = lines_at(&run.stderr, "WARN")
            .into_iter()
            .filter(|l| !is_timeout_retry(l))
            .collect();
        assert!(warnings.is_empty(), "{mode:?}: {warnings:#?}");
        assert!(run.records("tickets").is_empty(), "{mode:?}: nothing read");
    }
}

#[test]
fn nothing_listening_at_api_url_fails_in_seconds_naming_it() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // dropped: nothing listens there now
    let s = Scratch::new();
    let host = format!("127.0.0.1:{port}");
    let cfg = config_at(&s, &format!("http://{host}/v3"), json!({}));
    assert_fails_fast(&cfg, &host, "refused");
}

#[test]
fn an_unknown_host_fails_in_seconds_naming_it() {
    let s = Scratch::new();
    let cfg = config_at(
        &s,
        "http://nonexistent.invalid/v3",
        json!({"allow_insecure_http": true}),
    );
    assert_fails_fast(&cfg, "nonexistent.invalid", "unknown host");
}

#[test]
fn a_tls_failure_on_first_contact_fails_in_seconds_naming_the_host() {
    // https:// to the fake, which speaks plain HTTP: the handshake fails.
    let server = start(fake_config());
    let s = Scratch::new();
    let host = server.addr().to_string();
    let cfg = config_at(&s, &format!("https://{host}/v3"), json!({}));
    assert_fails_fast(&cfg, &host, "TLS");
    assert_eq!(server.stats().requests, 0, "no request got through");
}

/// Answers the first request with a full page of two teams, then stops
/// listening: the next page's connection is refused. The tap has had a
/// response, so this is an outage, not a wrong URL: it retries for the
/// whole budget.
#[test]
fn connections_refused_after_a_first_answer_get_the_full_retry_budget() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let body = br#"[{"id":"65a000000000000000000001","name":"Support","createdAt":"2024-01-01T00:00:00.000Z","updatedAt":"2024-01-01T00:00:00.000Z"},{"id":"65a000000000000000000002","name":"Billing","createdAt":"2024-01-01T00:00:00.000Z","updatedAt":"2024-01-01T00:00:00.000Z"}]"#;
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(body);
        // The listener is dropped here: nothing listens any more.
    });
    let s = Scratch::new();
    let budget = 8;
    let cfg = config_at(
        &s,
        &format!("http://{addr}/v3"),
        json!({"retry_budget_seconds": budget, "page_size": 2}),
    );
    let cat = s.write_json("catalog.json", &catalog_selecting(&cfg, &["teams"], |_| {}));
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    server.join().unwrap();
    assert_eq!(run.code, API_ERROR, "{}", run.stderr);
    assert_eq!(run.records("teams").len(), 2, "the first page was written");
    let line = run.error_line();
    assert!(
        line.contains("still failing") && line.contains("retry_budget_seconds"),
        "{line}"
    );
    assert!(
        line.contains("would pass the retry budget"),
        "says why it stopped before the budget: {line}"
    );
    // Not the first contact's 3 attempts in 10 s: retries until the next
    // one would pass the budget, as the line says. How many fit in the
    // budget depends on the jitter and on how long each attempt took (a
    // loaded machine), so it is not counted; the rule that stopped them is
    // checked.
    let (before, after) = line
        .split_once(" attempts over ")
        .unwrap_or_else(|| panic!("the line says its attempts: {line}"));
    let attempts: u32 = before.rsplit(' ').next().unwrap().parse().unwrap();
    let over: f64 = after.split('s').next().unwrap().parse().unwrap();
    let next: f64 = line
        .split_once("the next retry, in ")
        .and_then(|(_, rest)| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the line says when the next retry was due: {line}"));
    assert!(
        over + next + 0.1 > budget as f64,
        "stopped only where the next retry would pass the budget of {budget} s: {line}"
    );
    // Every retry logged: a warning at most once in 30 s (the budget here
    // is 8), the others at debug level (the tests' RUST_LOG).
    let retry = |l: &&String| l.contains("GET /teams") && l.contains("; retry ");
    let warned = lines_at(&run.stderr, "WARN").iter().filter(retry).count();
    let logged = warned + lines_at(&run.stderr, "DEBUG").iter().filter(retry).count();
    assert_eq!(
        logged as u32,
        attempts - 1,
        "a line per retry:\n{}",
        run.stderr
    );
    assert_eq!(warned, 1, "one warning for them:\n{}", run.stderr);
}

/// A connection test ends within about 15 s, even against an API whose
/// every answer hangs longer than the configured timeout.
#[test]
fn the_connection_test_ends_within_15_seconds_whatever_the_api_does() {
    let server = start(FakeConfig {
        faults: Faults {
            rate: 1.0,
            kinds: vec![Fault::Hang],
            hang: Duration::from_secs(120),
        },
        ..small_config()
    });
    let s = Scratch::new();
    let cfg = config_at(
        &s,
        &server.url(),
        json!({"request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let started = Instant::now();
    let run = tap(&["--config", path_str(&cfg), "--test"]);
    let took = started.elapsed();
    assert_eq!(run.code, API_ERROR, "{}", run.stderr);
    let line = run.error_line();
    assert!(line.contains("api_url"), "{line}");
    // What ended it: the check's own deadline (15 s), not a request's
    // timeout (60 s) nor the retry budget.
    assert!(
        line.contains("within 15s, as long as a connection test waits"),
        "{line}"
    );
    // The process's wall time on a loaded machine is the deadline plus
    // what scheduling adds: bounded well below the 60 s a request would
    // wait without the deadline, so that a tap that waits one out fails.
    assert!(took < Duration::from_secs(45), "took {took:?}");
}
