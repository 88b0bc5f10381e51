//! Full syncs: every stream, every record, every record valid for its schema.

use std::collections::BTreeSet;

use fake_gleap::{ArchivedDefault, FakeConfig, ResponsesShape};
use serde_json::{json, Value};

use crate::util::*;

/// The tap extracted exactly the records the fake holds, for every stream
/// a sync without a catalog extracts.
pub(crate) fn assert_complete(run: &Run, server: &fake_gleap::FakeGleap) {
    assert_complete_streams(run, server, &default_streams());
}

/// The tap extracted exactly the records the fake holds, for `streams`.
pub(crate) fn assert_complete_streams(run: &Run, server: &fake_gleap::FakeGleap, streams: &[&str]) {
    for &name in streams {
        let want = fake_ids(server, name);
        let got = run.ids(name);
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, unexpected {extra:?}"
        );
        assert!(!want.is_empty(), "{name}: the fake holds records");
    }
}

#[test]
fn a_full_sync_extracts_every_record_of_every_stream_valid_for_its_schema() {
    let server = start(FakeConfig {
        odd_records: false,
        ..fake_config()
    });
    let s = Scratch::new();
    let run = tap(&[
        "--config",
        path_str(&s.config(&server, json!({"page_size": 100}))),
    ]);
    run.assert_ok();
    assert_complete(&run, &server);
    assert_records_match_schemas(&run);

    // A SCHEMA for every stream, before the stream's first RECORD (checked
    // above), with its key and bookmark properties (streams whose records
    // hold fields no schema names send it again, extended: `evolution.rs`).
    let schemas: Vec<_> = run
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Schema {
                stream,
                key_properties,
                bookmark_properties,
                ..
            } => Some((
                stream.clone(),
                key_properties.clone(),
                bookmark_properties.clone(),
            )),
            _ => None,
        })
        .collect();
    let streams: BTreeSet<&String> = schemas.iter().map(|(s, _, _)| s).collect();
    assert_eq!(streams.len(), default_streams().len());
    for (stream, keys, bookmarks) in schemas {
        assert_eq!(keys, vec!["id"]);
        let incremental = INCREMENTAL.contains(&stream.as_str());
        assert_eq!(
            bookmarks,
            incremental.then(|| vec![version_field(&stream).to_string()]),
            "{stream}"
        );
    }

    // Archived and spam tickets are extracted too.
    let tickets = run.records("tickets");
    assert!(
        tickets.iter().any(|t| t["archived"] == true),
        "archived tickets are extracted"
    );
    assert!(
        tickets.iter().any(|t| t["isSpam"] == true),
        "spam tickets are extracted"
    );

    // References populated as objects are emitted as their id.
    for t in &tickets {
        for f in ["processingUser", "processingTeam", "session"] {
            assert!(
                t.get(f).is_none_or(|v| v.is_null() || v.is_string()),
                "{f}: {:?}",
                t.get(f)
            );
        }
    }
    // Survey responses carry their survey's id.
    let surveys: BTreeSet<String> = run.ids("surveys");
    for r in run.records("survey_responses") {
        assert!(surveys.contains(r["survey_id"].as_str().unwrap()));
    }

    // The final state holds a bookmark for every incremental stream, none past now.
    let state = run.last_state();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for name in [
        "sessions",
        "messages",
        "survey_responses",
        "helpcenter_articles",
    ] {
        let b = state["bookmarks"][name]["replication_key_value"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {state}"));
        assert!(b <= now.as_str());
    }
    assert_eq!(
        state["bookmarks"]["tickets"]["partitions"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "the plain listing, then archived and spam tickets, which the fake hides by default: {state}"
    );
    assert!(state["bookmarks"].get("teams").is_none());
}

#[test]
fn records_are_conformed_when_the_api_sends_odd_values() {
    // Dates as epoch milliseconds or without a zone, records without `id`
    // but with `_id`, unknown fields: all conformed, nothing lost.
    let server = start(FakeConfig {
        odd_records: true,
        ..fake_config()
    });
    let s = Scratch::new();
    let run = tap(&["--config", path_str(&s.config(&server, json!({})))]);
    run.assert_ok();
    assert_complete(&run, &server);
    assert_records_match_schemas(&run);
    // Unknown fields are added to the schema (`schema_evolution`),
    // reported once per stream and field, not once per record.
    let added = |l: &&str| l.contains("new field") && l.contains("stream=\"tickets\"");
    let lines = run.stderr.lines().filter(added).count();
    let distinct: BTreeSet<&str> = run
        .stderr
        .lines()
        .filter(added)
        .filter_map(|l| l.split("field ").nth(1))
        .collect();
    assert!(lines > 0 && run.stderr.contains("new field \"x_experimentalFlags\""));
    assert_eq!(lines, distinct.len());
}

#[test]
fn every_documented_shape_and_default_is_handled() {
    // Archived tickets returned by default, survey responses wrapped in an
    // object, and small lists that ignore limit/skip.
    let server = start(FakeConfig {
        archived_default: ArchivedDefault::Include,
        responses_shape: ResponsesShape::Wrapped("responses".into()),
        unpaginated_small_lists: true,
        ..fake_config()
    });
    let s = Scratch::new();
    let run = tap(&[
        "--config",
        path_str(&s.config(&server, json!({"page_size": 2}))),
    ]);
    run.assert_ok();
    assert_complete(&run, &server);
}

#[test]
fn a_server_that_ignores_filters_and_sort_still_yields_every_record() {
    for (filters, sort) in [(true, false), (false, true), (true, true)] {
        let server = start(FakeConfig {
            ignore_filters: filters,
            ignore_sort: sort,
            tickets: 120,
            ..fake_config()
        });
        let s = Scratch::new();
        let cfg = s.config(&server, json!({"page_size": 25}));
        let run = tap(&["--config", path_str(&cfg)]);
        run.assert_ok();
        assert_complete(&run, &server);
        assert!(
            run.stderr.contains("does not hold: ignored"),
            "the fallback is announced"
        );
        // Where the filter is ignored, the next run reads everything again
        // but writes only what is at or after the bookmark.
        if filters {
            let again = s.tap_with_state(&cfg, run.last_state());
            again.assert_ok();
            let bookmark = run.last_state()["bookmarks"]["sessions"]["replication_key_value"]
                .as_str()
                .unwrap()
                .to_string();
            let rewritten = again.records("sessions");
            assert!(
                rewritten.len() < run.records("sessions").len(),
                "old records are not written again"
            );
            for r in rewritten {
                assert!(r["updatedAt"].as_str().unwrap() >= bookmark.as_str());
            }
            assert_nothing_lost(&server, &[&run.messages, &again.messages], "two runs");
        }
    }
}

#[test]
fn full_table_streams_can_emit_activate_version() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"emit_activate_version_messages": true}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    for name in [
        "teams",
        "surveys",
        "message_templates",
        "team_members",
        "news",
        "engagement_banners",
    ] {
        let versions: Vec<i64> = run
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::ActivateVersion { stream, version } if stream == name => Some(*version),
                _ => None,
            })
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "{name}: one ACTIVATE_VERSION after the complete pass"
        );
        // It follows every record of the stream, and they all carry its version.
        let pos_av = run
            .messages
            .iter()
            .position(|m| matches!(m, Message::ActivateVersion { stream, .. } if stream == name))
            .unwrap();
        for (i, m) in run.messages.iter().enumerate() {
            if let Message::Record {
                stream, version, ..
            } = m
            {
                if stream == name {
                    assert!(i < pos_av);
                    assert_eq!(*version, Some(versions[0]));
                }
            }
        }
    }
    // Incremental streams have no versions.
    assert!(run.messages.iter().all(
        |m| !matches!(m, Message::Record { stream, version: Some(_), .. } if stream == "tickets")
    ));
    // Without the setting there are none at all.
    let plain = tap(&["--config", path_str(&s.config(&server, json!({})))]);
    assert!(!plain
        .messages
        .iter()
        .any(|m| matches!(m, Message::ActivateVersion { .. })));
}

#[test]
fn stdout_is_singer_only_and_logs_go_to_stderr() {
    let server = start(fake_config());
    let s = Scratch::new();
    let run = tap(&["--config", path_str(&s.config(&server, json!({})))]);
    run.assert_ok();
    // `tap` already decoded every stdout line as a Singer message.
    assert!(run
        .stderr
        .contains("METRIC: {\"type\":\"counter\",\"metric\":\"record_count\""));
    assert!(run.stderr.contains("\"metric\":\"http_request_duration\""));
    // A summary per stream, counting every record it wrote.
    for name in default_streams() {
        let n = run.records(name).len();
        let line = format!("done: {n} records");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&line) && l.contains(&format!("stream=\"{name}\""))),
            "{name}: no \"{line}\""
        );
    }
    let parsed: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(parsed.iter().all(|m| m["type"].is_string()));
    // The last line is always the full state, for `tail -n 1 > state.json`,
    // and a STATE is never repeated without something in between.
    assert!(matches!(run.messages.last(), Some(Message::State { .. })));
    for pair in run.messages.windows(2) {
        if let [Message::State { value: a }, Message::State { value: b }] = pair {
            assert_ne!(a, b, "the same STATE twice in a row");
        }
    }
}

/// The fake sends what the real API is known to send (`latestComment`
/// populated, `project`, ...), and fields no schema names, which are added
/// (`evolution.rs`): a clean sync reports no schema drift, and populated
/// references arrive as their id.
#[test]
fn a_sync_of_the_fakes_default_data_reports_no_schema_drift() {
    let server = start(fake_config());
    let s = Scratch::new();
    let run = tap(&["--config", path_str(&s.config(&server, json!({})))]);
    run.assert_ok();
    let drift: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("schema drift"))
        .collect();
    assert!(drift.is_empty(), "{drift:#?}");
    let tickets = run.records("tickets");
    let is_id = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let comments: Vec<Option<&Value>> = tickets.iter().map(|t| t.get("latestComment")).collect();
    assert!(
        comments.iter().any(|c| is_id(*c)),
        "latestComment is kept, as its id"
    );
    assert!(comments
        .iter()
        .all(|c| c.is_none_or(Value::is_null) || is_id(*c)));
    assert!(tickets
        .iter()
        .any(|t| t.get("project") == Some(&json!(PROJECT))));
    assert_records_match_schemas(&run);
}
