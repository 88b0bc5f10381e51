//! The command line: `--about`, `--discover`, bad input, exit codes.

use serde_json::{json, Value};

use crate::util::*;

#[test]
fn about_json_lists_capabilities_and_every_setting() {
    let run = tap_plain(&["--about"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let about: Value = serde_json::from_str(&run.stdout).unwrap();
    insta::with_settings!({filters => vec![(r#""version": "[^"]+""#, r#""version": "[version]""#)]}, {
        insta::assert_snapshot!("about_json", run.stdout);
    });
    assert_eq!(about["settings"]["properties"]["api_key"]["secret"], true);
    assert_eq!(
        about["settings"]["required"],
        json!(["api_key", "project_id"])
    );
}

#[test]
fn about_markdown() {
    let run = tap_plain(&["--about", "--format", "markdown"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::with_settings!({filters => vec![(r"Version \S+", "Version [version]")]}, {
        insta::assert_snapshot!("about_markdown", run.stdout);
    });
}

#[test]
fn discover_prints_the_catalog() {
    let s = Scratch::new();
    let cfg = s.write_json("c.json", &json!({"api_key": CANARY_KEY, "project_id": "p"}));
    let run = tap_plain(&["--config", path_str(&cfg), "--discover"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let catalog: Value = serde_json::from_str(&run.stdout).unwrap();
    insta::assert_json_snapshot!("catalog", catalog);
}

#[test]
fn version_flag() {
    let run = tap_plain(&["--version"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout.trim(),
        format!("tap-gleap {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_config_files_get_one_clear_line_and_exit_3() {
    let s = Scratch::new();
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("not JSON", "{api_key: 1".into(), &["not valid JSON"]),
        ("not an object", "[1, 2]".into(), &["JSON object"]),
        ("no api_key", json!({"project_id": "p"}).to_string(), &["api_key", "missing"]),
        ("no project_id", json!({"api_key": CANARY_KEY}).to_string(), &["project_id", "missing"]),
        ("negative page size", json!({"api_key": CANARY_KEY, "project_id": "p", "page_size": -1}).to_string(), &["page_size", "whole number"]),
        ("wrong type", json!({"api_key": CANARY_KEY, "project_id": "p", "requests_per_minute": "lots"}).to_string(), &["requests_per_minute"]),
        ("bad start_date", json!({"api_key": CANARY_KEY, "project_id": "p", "start_date": "last tuesday"}).to_string(), &["start_date", "RFC 3339"]),
        ("future start_date", json!({"api_key": CANARY_KEY, "project_id": "p", "start_date": "2999-01-01"}).to_string(), &["start_date", "future"]),
        ("bad api_url", json!({"api_key": CANARY_KEY, "project_id": "p", "api_url": "gleap dot io"}).to_string(), &["api_url", "URL"]),
        ("insecure api_url", json!({"api_key": CANARY_KEY, "project_id": "p", "api_url": "http://api.example.com/v3"}).to_string(), &["api_url", "allow_insecure_http"]),
        ("boolean as number", json!({"api_key": CANARY_KEY, "project_id": "p", "emit_activate_version_messages": 7}).to_string(), &["emit_activate_version_messages"]),
        // Strings are coerced only from TAP_GLEAP_* variables, never in a file.
        ("number as a string", json!({"api_key": CANARY_KEY, "project_id": "p", "page_size": "100"}).to_string(), &["config.json", "page_size", "JSON number"]),
        ("boolean as a string", json!({"api_key": CANARY_KEY, "project_id": "p", "emit_activate_version_messages": "yes"}).to_string(), &["config.json", "emit_activate_version_messages", "JSON boolean"]),
    ];
    for (what, content, needles) in cases {
        let cfg = s.write("config.json", &content);
        let run = tap(&["--config", path_str(&cfg)]);
        assert_eq!(run.code, CONFIG_ERROR, "{what}: {}", run.stderr);
        let line = run.error_line();
        for n in needles {
            assert!(line.contains(n), "{what}: {line:?} should mention {n}");
        }
        assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
        assert!(!run.stderr.contains("panicked"), "{what}: no panic");
    }
    let run = tap(&["--config", "/nonexistent/config.json"]);
    assert_eq!(run.code, CONFIG_ERROR);
    assert!(run.error_line().contains("/nonexistent/config.json"));
}

#[test]
fn config_from_the_environment_and_merged_files() {
    let server = start(fake_config());
    let s = Scratch::new();
    let env = [
        ("TAP_GLEAP_API_KEY", CANARY_KEY),
        ("TAP_GLEAP_PROJECT_ID", PROJECT),
        ("TAP_GLEAP_PAGE_SIZE", "100"),
    ];
    let url = server.url();
    let mut env = env.to_vec();
    env.push(("TAP_GLEAP_API_URL", &url));
    let run = tap_with_env(&["--config", "ENV"], &env);
    run.assert_ok();
    assert_eq!(run.ids("teams").len(), 4);
    // Later files win: the second file fixes the first one's wrong key.
    let bad = s.write_json(
        "a.json",
        &json!({"api_key": "wrong", "project_id": PROJECT, "api_url": server.url()}),
    );
    let good = s.write_json("b.json", &json!({"api_key": CANARY_KEY}));
    tap(&["--config", path_str(&bad), "--config", path_str(&good)]).assert_ok();
}

#[test]
fn unknown_config_keys_are_warned_about_not_fatal() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"colour": "blue"}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    assert!(run.stderr.contains("unknown setting \"colour\""));
}

#[test]
fn bad_state_files_exit_4_and_name_the_problem() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("not JSON", "{bookmarks".into(), &["not valid JSON"]),
        ("wrong shape", "[]".into(), &["JSON object"]),
        ("bookmarks not an object", json!({"bookmarks": []}).to_string(), &["bookmarks"]),
        ("not a date", json!({"bookmarks": {"sessions": {"replication_key_value": "yesterday"}}}).to_string(), &["bookmarks.sessions", "not a date-time"]),
        ("future", json!({"bookmarks": {"sessions": {"replication_key_value": "2999-01-01T00:00:00.000Z"}}}).to_string(), &["future"]),
    ];
    for (what, content, needles) in cases {
        let st = s.write("state.json", &content);
        let run = tap(&["--config", path_str(&cfg), "--state", path_str(&st)]);
        assert_eq!(run.code, STATE_ERROR, "{what}: {}", run.stderr);
        let line = run.error_line();
        assert!(line.contains("state.json"), "{what}: {line}");
        for n in needles {
            assert!(line.contains(n), "{what}: {line:?} should mention {n}");
        }
        assert!(run.stdout.is_empty());
    }
    // An empty state file (an orchestrator's first run) is fine.
    let st = s.write("state.json", "");
    tap(&["--config", path_str(&cfg), "--state", path_str(&st)]).assert_ok();
}

#[test]
fn bad_catalog_files_exit_5_and_name_the_problem() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let none = catalog_selecting(&cfg, &[], |_| {});
    let bad_key = catalog_selecting(&cfg, &["tickets"], |e| {
        e["metadata"][0]["metadata"]["replication-key"] = json!("createdAt")
    });
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("not JSON", "{streams".into(), &["not valid JSON"]),
        ("no streams", "{}".into(), &["streams"]),
        (
            "unknown stream",
            json!({"streams": [{"tap_stream_id": "invoices", "metadata": []}]}).to_string(),
            &["unknown stream \"invoices\""],
        ),
        (
            "selects nothing",
            none.to_string(),
            &["no stream is selected"],
        ),
        (
            "unknown replication key",
            bad_key.to_string(),
            &["unknown replication key \"createdAt\""],
        ),
    ];
    for (what, content, needles) in cases {
        let cat = s.write("catalog.json", &content);
        let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
        assert_eq!(run.code, CATALOG_ERROR, "{what}: {}", run.stderr);
        let line = run.error_line();
        for n in needles {
            assert!(line.contains(n), "{what}: {line:?} should mention {n}");
        }
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn wrong_credentials_stop_at_once_with_exit_6() {
    let server = start(fake_config());
    let s = Scratch::new();
    for (what, extra) in [
        ("key", json!({"api_key": "canary-KEY-7f3a9c1e-wrong"})),
        ("project", json!({"project_id": "other"})),
    ] {
        let cfg = s.config(&server, extra);
        let run = tap(&["--config", path_str(&cfg)]);
        assert_eq!(run.code, AUTH_ERROR, "{what}: {}", run.stderr);
        let line = run.error_line();
        assert!(
            line.contains("api_key") && line.contains("project_id"),
            "{line}"
        );
        // No retries on 401: the tap logs every retry ("...; retry N in
        // ..."), and there is none, whatever the time the run took.
        assert!(
            !run.stderr.contains("; retry "),
            "{what}: no retries on 401: {}",
            run.stderr
        );
        // Nothing was extracted, but the orchestrator still gets its state back.
        assert!(run.records("tickets").is_empty());
    }
    let server = start(fake_gleap::FakeConfig {
        auth_failure_status: 403,
        ..fake_config()
    });
    let cfg = s.config(&server, json!({"project_id": "other"}));
    assert_eq!(tap(&["--config", path_str(&cfg)]).code, AUTH_ERROR);
}

#[test]
fn usage_errors_exit_2() {
    let run = tap_plain(&["--no-such-flag"]);
    assert_eq!(run.code, 2);
    let run = tap_plain(&["--format", "markdown"]);
    assert_eq!(run.code, 2, "--format needs --about");
}

#[test]
fn test_flag_reads_one_record_per_stream_and_says_what_failed() {
    let server = start(fake_config());
    let s = Scratch::new();
    let run = tap(&[
        "--config",
        path_str(&s.config(&server, json!({}))),
        "--test",
    ]);
    run.assert_ok();
    for name in default_streams() {
        assert_eq!(run.records(name).len(), 1, "{name}: one record");
    }
    assert!(
        run.states().is_empty(),
        "a connection test moves no bookmark"
    );
    assert_records_match_schemas(&run);
    assert!(run.stderr.contains("connection test passed"));

    let bad = tap(&[
        "--config",
        path_str(&s.config(&server, json!({"project_id": "other"}))),
        "--test",
    ]);
    // Refused credentials explain every stream: one line, nothing on
    // stdout (tests/failures.rs holds every failure class to that).
    assert_eq!(bad.code, AUTH_ERROR, "{}", bad.stderr);
    assert!(bad.error_line().contains("project_id"), "{}", bad.stderr);
    assert_eq!(bad.stdout, "", "nothing on stdout");
    // A stream that fails alone is named, beside those that passed.
    let server = start(fake_gleap::FakeConfig {
        broken_features: vec!["news".into()],
        ..fake_config()
    });
    let partly = tap(&[
        "--config",
        path_str(&s.config(
            &server,
            json!({"retry_budget_seconds": 1, "request_timeout_seconds": 60}),
        )),
        "--test",
    ]);
    assert_eq!(partly.code, 7, "{}", partly.stderr);
    // (A machine too slow to answer others within the check's 15 s would
    // name them too: only news is sure to be there.)
    let line = partly.error_line();
    assert!(
        line.contains("connection test failed for ") && line.contains("news"),
        "{line}"
    );
    assert!(partly.records("news").is_empty());
    assert!(!partly
        .messages
        .iter()
        .any(|m| matches!(m, Message::Schema { stream, .. } if stream == "news")));
    assert_records_match_schemas(&partly);
}

#[test]
fn test_schema_prints_schemas_without_calling_the_api() {
    let s = Scratch::new();
    // Nothing listens on this port: the API is not called.
    let cfg = s.write_json(
        "c.json",
        &json!({"api_key": CANARY_KEY, "project_id": "p", "api_url": "http://127.0.0.1:9/v3"}),
    );
    let run = tap(&["--config", path_str(&cfg), "--test=schema"]);
    run.assert_ok();
    let schemas = run
        .messages
        .iter()
        .filter(|m| matches!(m, Message::Schema { .. }))
        .count();
    assert_eq!(schemas, default_streams().len());
    assert_eq!(run.messages.len(), schemas, "SCHEMA messages only");
}

#[test]
fn discover_and_test_schema_need_no_credentials_and_no_config() {
    let s = Scratch::new();
    let no_key = s.write_json("c.json", &json!({"start_date": "2024-01-01"}));
    let expected = tap_plain(&["--discover"]);
    for args in [
        &["--discover"][..],
        &["--config", path_str(&no_key), "--discover"],
    ] {
        let run = tap_plain(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, expected.stdout, "{args:?}: the same catalog");
        let catalog: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            catalog["streams"].as_array().unwrap().len(),
            ALL_STREAMS.len()
        );
    }
    for args in [
        &["--test=schema"][..],
        &["--config", path_str(&no_key), "--test=schema"],
    ] {
        let run = tap(args);
        run.assert_ok();
        assert_eq!(
            run.messages.len(),
            default_streams().len(),
            "{args:?}: SCHEMA messages"
        );
    }
    // A config given is still checked.
    let bad = s.write_json("bad.json", &json!({"page_size": "lots"}));
    let run = tap_plain(&["--config", path_str(&bad), "--discover"]);
    assert_eq!(run.code, CONFIG_ERROR, "{}", run.stderr);
    assert!(
        run.error_line().contains("page_size"),
        "{}",
        run.error_line()
    );
    // A sync still needs the key.
    let run = tap(&["--config", path_str(&no_key)]);
    assert_eq!(run.code, CONFIG_ERROR);
    assert!(run.error_line().contains("api_key"));
}

#[test]
fn select_extracts_only_the_named_streams_with_or_without_a_catalog() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    // The streams that sent a SCHEMA (a stream whose schema evolves sends
    // more). Streams run concurrently: their first SCHEMAs come in the
    // order they happen to start, which nothing promises; each stream's
    // SCHEMA before its records is (`assert_records_match_schemas`).
    let streams_of = |run: &Run| {
        let mut streams: Vec<String> = run
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::Schema { stream, .. } => Some(stream.clone()),
                _ => None,
            })
            .collect();
        streams.sort();
        streams.dedup();
        streams
    };
    let run = tap(&["--config", path_str(&cfg), "--select", "teams,tickets"]);
    run.assert_ok();
    assert_eq!(streams_of(&run), ["teams", "tickets"]);
    assert_records_match_schemas(&run);
    assert_eq!(run.ids("tickets"), fake_ids(&server, "tickets"));
    // The start of the sync says what is selected.
    let n = |stream: &str| {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("schemas/{stream}.json")).unwrap(),
        )
        .unwrap();
        schema["properties"].as_object().unwrap().len()
    };
    let line = format!(
        "2 of {} streams selected: tickets ({} fields), teams ({} fields)",
        ALL_STREAMS.len(),
        n("tickets"),
        n("teams")
    );
    assert!(run.stderr.contains(&line), "{line}\n{}", run.stderr);

    // With a catalog (here: every stream selected, as discovered, and a
    // field of teams deselected), --select picks the streams, the catalog
    // the fields.
    let mut cat: Value = serde_json::from_str(&tap_plain(&["--discover"]).stdout).unwrap();
    for e in cat["streams"].as_array_mut().unwrap() {
        let teams = e["tap_stream_id"] == "teams";
        for m in e["metadata"].as_array_mut().unwrap() {
            if teams && m["breadcrumb"] == json!(["properties", "name"]) {
                m["metadata"]["selected"] = json!(false);
            }
        }
    }
    let cat = s.write_json("catalog.json", &cat);
    let run = tap(&[
        "--config",
        path_str(&cfg),
        "--catalog",
        path_str(&cat),
        "--select",
        "teams",
    ]);
    run.assert_ok();
    assert_eq!(streams_of(&run), ["teams"]);
    assert_records_match_schemas(&run);
    assert!(run.records("teams").iter().all(|r| r.get("name").is_none()));
    assert_eq!(run.ids("teams"), fake_ids(&server, "teams"));

    // --discover --select: a catalog selecting only those streams.
    let run = tap_plain(&["--discover", "--select", "surveys"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cat: Value = serde_json::from_str(&run.stdout).unwrap();
    for e in cat["streams"].as_array().unwrap() {
        assert_eq!(
            e["metadata"][0]["metadata"]["selected"],
            json!(e["tap_stream_id"] == "surveys")
        );
    }
}

#[test]
fn select_with_an_unknown_stream_is_a_usage_error_listing_the_streams() {
    let run = tap_plain(&["--select", "tickets,invoices"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("invoices"), "{}", run.stderr);
    for name in ALL_STREAMS {
        assert!(run.stderr.contains(name), "lists {name}: {}", run.stderr);
    }
    assert!(run.stdout.is_empty());
}

#[test]
fn a_fatal_error_is_printed_even_with_rust_log_off() {
    let s = Scratch::new();
    let cfg = s.write_json("c.json", &json!({"project_id": "p"}));
    for filter in ["off", "tap_gleap=off", "error"] {
        let run = decode(
            tap_command(&["--config", path_str(&cfg)])
                .env("RUST_LOG", filter)
                .output()
                .unwrap(),
            true,
        );
        assert_eq!(run.code, CONFIG_ERROR, "RUST_LOG={filter}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "RUST_LOG={filter}: one line: {}",
            run.stderr
        );
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("api_key"),
            "RUST_LOG={filter}: {}",
            lines[0]
        );
    }
}

/// The plain pipeline of the README's State section, run as written: it
/// works on the first run (no state file yet) and on the next one, which
/// resumes from the state the first left.
#[test]
fn the_readme_shell_pipeline_works_on_the_first_and_later_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let recipe = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("tail -n 1 out.jsonl > state.json"))
        .expect("the README has the plain pipeline");
    let server = start(fake_config());
    let s = Scratch::new();
    // `config.json` in the directory the recipe runs in.
    s.config(&server, json!({}));
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tap-gleap"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(recipe)
            .current_dir(s.dir.path())
            .env("PATH", &path)
            .env_remove("TAP_GLEAP_API_KEY")
            .output()
            .expect("sh runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "the recipe failed:\n{recipe}\n{stderr}"
        );
        let out = std::fs::read_to_string(s.dir.path().join("out.jsonl")).unwrap();
        assert_no_secret(&out, &stderr);
        let state = std::fs::read_to_string(s.dir.path().join("state.json")).unwrap();
        let state: Value = serde_json::from_str(&state).expect("state.json is JSON");
        (parse_messages(&out), state)
    };
    let (first, state) = run();
    let first_tickets = first
        .iter()
        .filter(|m| matches!(m, Message::Record { stream, .. } if stream == "tickets"))
        .count();
    assert_eq!(first_tickets, fake_ids(&server, "tickets").len());
    assert_eq!(state["type"], "STATE");
    assert!(
        state["value"]["bookmarks"]["tickets"].is_object(),
        "{state}"
    );
    let (second, state2) = run();
    let second_tickets = second
        .iter()
        .filter(|m| matches!(m, Message::Record { stream, .. } if stream == "tickets"))
        .count();
    assert!(
        second_tickets < first_tickets / 10,
        "the second run resumed from the state: {second_tickets} tickets"
    );
    assert_eq!(
        bookmarks_only(&state2["value"]["bookmarks"]),
        bookmarks_only(&state["value"]["bookmarks"])
    );
}

/// The README's count of `--test=api`'s requests against the bundled fake
/// is the count the report gives (its first lines), and what the fake saw.
#[test]
fn the_readme_gives_test_api_s_request_count_against_the_fake() {
    let server = start(fake_config());
    let s = Scratch::new();
    // A request timeout no answer comes near on a busy machine: one
    // timed-out request, retried, would be one more than the README says.
    let cfg = s.config(
        &server,
        json!({"requests_per_minute": 100000, "request_timeout_seconds": 60}),
    );
    let run = tap_plain(&["--config", path_str(&cfg), "--test=api"]);
    assert_eq!(run.code, 0, "{}", run.error_line());
    let count: u64 = run
        .stdout
        .split(" requests, ")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{}", run.stdout));
    assert_eq!(count, server.stats().requests, "the report counts them all");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&format!("({count} against the bundled fake")),
        "the README gives another count than {count} for --test=api"
    );
}
