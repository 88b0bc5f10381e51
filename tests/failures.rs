//! Every failure class the README lists, at the default log level: one
//! ERROR line on stderr, the line that says what to fix; stdout holding
//! only what a target should keep (the SCHEMA, RECORDs and STATE of
//! streams that were read; nothing at all when nothing was); the
//! documented exit code. The table the README gives is printed first
//! (`cargo test -- failures --nocapture` shows it).

use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use fake_gleap::{FakeConfig, FakeGleap, Fault, Faults, RateLimit};
use serde_json::{json, Value};

use crate::util::*;

/// What stdout may hold.
#[derive(Clone, Copy, Debug)]
enum Stdout {
    /// Nothing: no stream was read.
    Nothing,
    /// Streams that were read, none of `absent`, starting with a SCHEMA
    /// (never a STATE before anything was read) and ending with a STATE.
    Read { absent: &'static [&'static str] },
}

struct Case {
    name: &'static str,
    exit: i32,
    /// ERROR lines: 1 for a failure, 0 for what is not one.
    errors: usize,
    /// Words the ERROR line holds: the setting or the cause to look at.
    says: &'static [&'static str],
    stdout: Stdout,
    run: fn(&Scratch) -> Output,
}

/// The tap at the default log level (no `RUST_LOG`), as a user runs it.
fn quiet(args: &[&str]) -> Output {
    tap_command(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the tap binary runs")
}

/// A config for `server` with `extra` settings: a short retry budget, and
/// the documented rate (a faster one is warned about).
fn config(s: &Scratch, server: &FakeGleap, extra: Value) -> std::path::PathBuf {
    let mut c = json!({"retry_budget_seconds": 2, "requests_per_minute": 1000});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    s.config(server, c)
}

/// A sync of `server` with `extra` settings.
fn sync(s: &Scratch, server: &FakeGleap, extra: Value) -> Output {
    quiet(&["--config", path_str(&config(s, server, extra))])
}

fn failing(kind: Fault) -> FakeConfig {
    FakeConfig {
        faults: Faults {
            rate: 1.0,
            kinds: vec![kind],
            hang: Duration::ZERO,
        },
        ..small_config()
    }
}

fn telling(status: u16) -> FakeGleap {
    start(FakeConfig {
        auth_failure_status: status,
        auth_failure_telling: true,
        ..small_config()
    })
}

fn api_url_config(s: &Scratch, api_url: &str) -> std::path::PathBuf {
    s.write_json(
        "config.json",
        &json!({"api_key": CANARY_KEY, "project_id": PROJECT, "api_url": api_url}),
    )
}

const CASES: &[Case] = &[
    Case {
        name: "no config",
        exit: CONFIG_ERROR,
        errors: 1,
        says: &["api_key"],
        stdout: Stdout::Nothing,
        run: |_| quiet(&[]),
    },
    Case {
        name: "a bad config value",
        exit: CONFIG_ERROR,
        errors: 1,
        says: &["page_size"],
        stdout: Stdout::Nothing,
        run: |s| {
            let cfg = s.write_json(
                "config.json",
                &json!({"api_key": CANARY_KEY, "project_id": PROJECT, "page_size": 0}),
            );
            quiet(&["--config", path_str(&cfg)])
        },
    },
    Case {
        name: "an invalid state",
        exit: STATE_ERROR,
        errors: 1,
        says: &["state.json"],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = config(s, &server, json!({}));
            let state = s.write("state.json", "{not json");
            quiet(&["--config", path_str(&cfg), "--state", path_str(&state)])
        },
    },
    Case {
        name: "an invalid catalog",
        exit: CATALOG_ERROR,
        errors: 1,
        says: &["tikets"],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = config(s, &server, json!({}));
            let catalog = s.write_json(
                "catalog.json",
                &json!({"streams": [{"tap_stream_id": "tikets", "schema": {}, "metadata": []}]}),
            );
            quiet(&["--config", path_str(&cfg), "--catalog", path_str(&catalog)])
        },
    },
    Case {
        name: "an unreachable host",
        exit: API_ERROR,
        errors: 1,
        says: &["\"api_url\"", "127.0.0.1"],
        stdout: Stdout::Nothing,
        run: |s| {
            // A port nothing listens on: bound, then released.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let cfg = api_url_config(s, &format!("http://127.0.0.1:{port}/v3"));
            quiet(&["--config", path_str(&cfg)])
        },
    },
    Case {
        name: "a wrong path in api_url",
        exit: API_ERROR,
        errors: 1,
        says: &["\"api_url\"", "404"],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = api_url_config(s, &format!("{}/wrong", server.url()));
            quiet(&["--config", path_str(&cfg)])
        },
    },
    Case {
        name: "TLS refused (https to a plain HTTP port)",
        exit: API_ERROR,
        errors: 1,
        says: &["\"api_url\""],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let url = server.url().replace("http://", "https://");
            quiet(&["--config", path_str(&api_url_config(s, &url))])
        },
    },
    Case {
        name: "a refused key (401, the body names the token)",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"api_key\" setting"],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &telling(401), json!({"api_key": "canary-KEY-wrong"})),
    },
    Case {
        name: "a refused project (403, the body names the project)",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"project_id\" setting"],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &telling(403), json!({"project_id": "another"})),
    },
    Case {
        name: "refused credentials (a bare 401)",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"api_key\" and \"project_id\""],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &start(small_config()), json!({"project_id": "another"})),
    },
    Case {
        name: "refused credentials, --test",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"api_key\" and \"project_id\""],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = config(s, &server, json!({"project_id": "another"}));
            quiet(&["--config", path_str(&cfg), "--test"])
        },
    },
    Case {
        name: "refused credentials, --test=api",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"api_key\" and \"project_id\""],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = config(s, &server, json!({"project_id": "another"}));
            quiet(&["--config", path_str(&cfg), "--test=api"])
        },
    },
    Case {
        name: "refused credentials, --discover",
        exit: AUTH_ERROR,
        errors: 1,
        says: &["\"api_key\" and \"project_id\""],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(small_config());
            let cfg = config(s, &server, json!({"project_id": "another"}));
            quiet(&["--config", path_str(&cfg), "--discover"])
        },
    },
    Case {
        name: "5xx past the retry budget",
        exit: API_ERROR,
        errors: 1,
        says: &["HTTP 503", "retry_budget_seconds"],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &start(failing(Fault::Status503)), json!({})),
    },
    Case {
        name: "429 past the retry budget",
        exit: API_ERROR,
        errors: 1,
        says: &["429", "retry_budget_seconds"],
        stdout: Stdout::Nothing,
        run: |s| {
            let server = start(FakeConfig {
                rate_limit: Some(RateLimit {
                    per_window: 0,
                    ..RateLimit::default()
                }),
                ..small_config()
            });
            sync(s, &server, json!({}))
        },
    },
    Case {
        name: "a 200 whose body is HTML (a proxy's login page)",
        exit: API_ERROR,
        errors: 1,
        says: &["not the documented JSON"],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &start(failing(Fault::Html200)), json!({})),
    },
    Case {
        name: "a body cut short",
        exit: API_ERROR,
        errors: 1,
        says: &["not the documented JSON"],
        stdout: Stdout::Nothing,
        run: |s| sync(s, &start(failing(Fault::TruncatedJson)), json!({})),
    },
    Case {
        name: "one endpoint down, the others answering",
        exit: PARTIAL,
        errors: 1,
        says: &["messages", "HTTP 503"],
        stdout: Stdout::Read {
            absent: &["messages"],
        },
        run: |s| {
            let server = start(FakeConfig {
                broken_features: vec!["messages".into()],
                ..small_config()
            });
            // The budget outlasts the other streams' first pages on any
            // machine: the one endpoint fails alone, never the whole API.
            sync(s, &server, json!({"retry_budget_seconds": 20}))
        },
    },
    Case {
        name: "a freeze schema violation",
        exit: PARTIAL,
        errors: 1,
        says: &["freeze", "schema_evolution"],
        stdout: Stdout::Read {
            absent: &["tickets"],
        },
        run: |s| {
            sync(
                s,
                &start(small_config()),
                json!({"schema_evolution": "freeze"}),
            )
        },
    },
    Case {
        name: "SIGTERM",
        exit: 143,
        errors: 1,
        says: &["SIGTERM"],
        stdout: Stdout::Read { absent: &[] },
        run: sigterm,
    },
    Case {
        name: "optional streams the plan lacks (404): not a failure",
        exit: 0,
        errors: 0,
        says: &[],
        stdout: Stdout::Read {
            absent: &[
                "engagement_cobrowse",
                "engagement_banners",
                "helpcenter_collections",
                "helpcenter_articles",
                "helpcenter_redirects",
            ],
        },
        run: |s| {
            let server = start(FakeConfig {
                missing_features: vec!["engagement".into(), "helpcenter".into()],
                ..small_config()
            });
            sync(s, &server, json!({}))
        },
    },
    Case {
        name: "a paging-depth limit (skip + limit over 100): not a failure",
        exit: 0,
        errors: 0,
        says: &[],
        stdout: Stdout::Read { absent: &[] },
        run: |s| {
            let server = start(FakeConfig {
                max_result_window: Some(100),
                tickets: 400,
                ..small_config()
            });
            sync(s, &server, json!({"page_size": 20}))
        },
    },
];

const API_ERROR: i32 = 7;
const PARTIAL: i32 = 9;

/// A sync stopped by SIGTERM once a few pages of tickets were read (the
/// fake counts them), however loaded the machine.
fn sigterm(s: &Scratch) -> Output {
    let server = start(FakeConfig {
        latency: Duration::from_millis(30),
        tickets: 3000,
        ..small_config()
    });
    let cfg = config(s, &server, json!({"page_size": 50}));
    let mut child = tap_command(&["--config", path_str(&cfg)])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tap starts");
    let started = Instant::now();
    let tickets = || server.stats().by_path.get("/v3/tickets").copied();
    while tickets().unwrap_or(0) < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tickets are read"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.stdin.take();
    child.wait_with_output().expect("the tap ends")
}

/// One case's outcome, as the table gives it.
struct Seen {
    exit: i32,
    errors: Vec<String>,
    warnings: usize,
    stderr_lines: usize,
    stdout: String,
}

impl Seen {
    fn of(out: Output) -> Seen {
        let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_no_secret(&stdout, &stderr);
        let at = |level: &str| {
            stderr
                .lines()
                .filter(|l| l.contains(&format!(" {level} ")) || l.starts_with(level))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        Seen {
            exit: out.status.code().unwrap_or(-1),
            errors: at("ERROR"),
            warnings: at("WARN").len(),
            stderr_lines: stderr.lines().count(),
            stdout,
        }
    }

    /// stdout in a few words: the Singer messages by type.
    fn stdout_summary(&self) -> String {
        if self.stdout.is_empty() {
            return "nothing".into();
        }
        let mut counts = std::collections::BTreeMap::new();
        for line in self.stdout.lines() {
            let kind = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into());
            *counts.entry(kind).or_insert(0) += 1;
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[test]
fn every_failure_is_one_line_and_leaves_only_what_a_target_should_keep() {
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let runs: Vec<_> = CASES
            .iter()
            .map(|case| {
                scope.spawn(move || {
                    let s = Scratch::new();
                    Seen::of((case.run)(&s))
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a case ran"))
            .collect()
    });
    eprintln!("| case | ERROR lines | WARN lines | stderr lines | stdout | exit |");
    eprintln!("|:--|--:|--:|--:|:--|--:|");
    for (case, seen) in CASES.iter().zip(&seen) {
        eprintln!(
            "| {} | {} | {} | {} | {} | {} |",
            case.name,
            seen.errors.len(),
            seen.warnings,
            seen.stderr_lines,
            seen.stdout_summary(),
            seen.exit
        );
    }
    for (case, seen) in CASES.iter().zip(&seen) {
        let what = case.name;
        assert_eq!(seen.exit, case.exit, "{what}: {:#?}", seen.errors);
        assert_eq!(
            seen.errors.len(),
            case.errors,
            "{what}: ERROR lines: {:#?}",
            seen.errors
        );
        for word in case.says {
            assert!(
                seen.errors[0].contains(word),
                "{what}: the ERROR line names {word}: {}",
                seen.errors[0]
            );
        }
        match case.stdout {
            Stdout::Nothing => assert_eq!(seen.stdout, "", "{what}: nothing on stdout"),
            Stdout::Read { absent } => {
                let messages = parse_messages(&seen.stdout);
                assert!(
                    matches!(messages.first(), Some(Message::Schema { .. })),
                    "{what}: the output starts with a SCHEMA, never a STATE"
                );
                assert!(
                    matches!(messages.last(), Some(Message::State { .. })),
                    "{what}: the output ends with a STATE covering what was read"
                );
                for m in &messages {
                    if let Message::Schema { stream, .. } = m {
                        assert!(
                            !absent.contains(&stream.as_str()),
                            "{what}: no SCHEMA for {stream}, which was not read"
                        );
                    }
                }
            }
        }
    }
}
