//! Stream maps and flattening (the Meltano SDK's settings): what a sync
//! sends with them, that nothing changes without them, and that every bad
//! map is one config error line, exit 3, before any request.

use std::collections::BTreeMap;

use md5::Digest;
use serde_json::{json, Value};

use crate::util::*;

fn md5_hex(s: &str) -> String {
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn schemas(run: &Run) -> BTreeMap<String, (Value, Vec<String>)> {
    run.messages
        .iter()
        .filter_map(|m| match m {
            Message::Schema {
                stream,
                schema,
                key_properties,
                ..
            } => Some((stream.clone(), (schema.clone(), key_properties.clone()))),
            _ => None,
        })
        .collect()
}

fn activated(run: &Run) -> Vec<String> {
    run.messages
        .iter()
        .filter_map(|m| match m {
            Message::ActivateVersion { stream, .. } => Some(stream.clone()),
            _ => None,
        })
        .collect()
}

/// Every feature at once, as a user would write it.
fn every_feature() -> Value {
    json!({
        "stream_maps": {
            "sessions": {
                "email": "md5(config['salt'] + email) if email else None",
                "email_domain": "email.split('@')[-1].lower() if email else None",
                "phone": null,
            },
            "tickets": {
                "__filter__": "status != 'DONE' and not isSpam",
                "title": "title.strip().upper() if title else ''",
                "bug_twice": "int(bugId or 0) * 2",
                "created_day": "datetime.datetime.fromisoformat(createdAt).date()",
                "label": "f'{type}/{priority}'",
                "customData": null,
            },
            "teams": {"__alias__": "gleap_teams"},
            "ticket_ids": {
                "__source__": "tickets",
                "__else__": null,
                "id": "id",
                "status": "status",
                "tagged": "bool(tags)",
                "__key_properties__": ["id"],
            },
            "message_templates": null,
            "surveys": {"__else__": null, "id": "id", "name": "record['name'] + ' (' + str(type) + ')'"},
        },
        "stream_map_config": {"salt": "pepper-"},
        "emit_activate_version_messages": true,
    })
}

#[test]
fn maps_hash_drop_filter_alias_duplicate_and_key() {
    let server = start(small_config());
    let s = Scratch::new();
    let plain = s.tap_with_state(&s.config(&server, json!({})), &json!({}));
    plain.assert_ok();
    let run = s.tap_with_state(&s.config(&server, every_feature()), &json!({}));
    run.assert_ok();
    assert_records_match_schemas(&run);
    let sch = schemas(&run);

    // Hashing with a salt from stream_map_config; a dropped field; a new one.
    let originals: BTreeMap<&str, &serde_json::Map<String, Value>> = plain
        .records("sessions")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    let sessions = run.records("sessions");
    assert_eq!(run.ids("sessions"), plain.ids("sessions"));
    for r in &sessions {
        let original = originals[r["id"].as_str().unwrap()];
        match original["email"].as_str() {
            Some(e) => {
                assert_eq!(r["email"], json!(md5_hex(&format!("pepper-{e}"))));
                assert_eq!(
                    r["email_domain"],
                    json!(e.rsplit('@').next().unwrap().to_lowercase())
                );
            }
            None => assert_eq!(r["email"], Value::Null),
        }
        assert!(!r.contains_key("phone"));
    }
    let (session_schema, keys) = &sch["sessions"];
    assert!(session_schema["properties"].get("phone").is_none());
    assert_eq!(
        session_schema["properties"]["email_domain"],
        json!({"type": ["string", "null"]})
    );
    assert_eq!(keys, &["id"]);

    // Filtered, computed, typed as the SDK types them.
    let tickets = run.records("tickets");
    assert!(!tickets.is_empty());
    assert!(tickets
        .iter()
        .all(|r| r["status"] != "DONE" && r["isSpam"] != true));
    assert!(tickets.len() < fake_ids(&server, "tickets").len());
    for r in &tickets {
        assert!(!r.contains_key("customData"));
        assert_eq!(
            r["created_day"].as_str().unwrap(),
            &r["createdAt"].as_str().unwrap()[..10]
        );
        assert_eq!(r["bug_twice"], json!(r["bugId"].as_i64().unwrap_or(0) * 2));
    }
    let tp = &sch["tickets"].0["properties"];
    assert_eq!(tp["bug_twice"], json!({"type": ["integer", "null"]}));
    assert_eq!(
        tp["created_day"],
        json!({"type": ["string", "null"], "format": "date"})
    );
    assert_eq!(tp["label"], json!({"type": ["string", "null"]}));

    // Alias: records, SCHEMA and ACTIVATE_VERSION under the new name.
    assert!(run.records("teams").is_empty() && !sch.contains_key("teams"));
    assert_eq!(
        run.records("gleap_teams").len(),
        fake_ids(&server, "teams").len()
    );
    let av = activated(&run);
    assert!(av.contains(&"gleap_teams".to_string()) && !av.contains(&"teams".to_string()));

    // __source__: a second stream from every ticket (the filter is the
    // tickets map's own), with its own keys and properties.
    let ids = run.records("ticket_ids");
    assert_eq!(run.ids("ticket_ids"), plain.ids("tickets"));
    assert!(ids.iter().all(|r| r.len() == 3 && r["tagged"].is_boolean()));
    assert_eq!(sch["ticket_ids"].1, ["id"]);

    // null: the stream sends nothing at all.
    assert!(run.records("message_templates").is_empty());
    assert!(!sch.contains_key("message_templates"));
    assert!(!av.contains(&"message_templates".to_string()));

    // __else__: null keeps only what is listed.
    for r in run.records("surveys") {
        assert_eq!(r.keys().collect::<Vec<_>>(), ["id", "name"]);
        assert!(r["name"].as_str().unwrap().ends_with(')'));
    }

    // State stays keyed by the tap's streams.
    let bookmarks = run.last_state()["bookmarks"].as_object().unwrap();
    assert!(bookmarks.contains_key("tickets") && !bookmarks.contains_key("ticket_ids"));
}

#[test]
fn flattening_turns_objects_and_arrays_into_json_strings() {
    let server = start(small_config());
    let s = Scratch::new();
    let run = s.tap_with_state(
        &s.config(
            &server,
            json!({"flattening_enabled": true, "flattening_max_depth": 1}),
        ),
        &json!({}),
    );
    run.assert_ok();
    assert_records_match_schemas(&run);
    let sch = schemas(&run);
    let tp = &sch["tickets"].0["properties"];
    assert_eq!(tp["formData"], json!({"type": ["string", "null"]}));
    assert_eq!(tp["tags"], json!({"type": ["string", "null"]}));
    let mut objects = 0;
    for r in run.records("tickets") {
        for k in ["formData", "customData", "metaData", "tags"] {
            match &r[k] {
                Value::Null => {}
                Value::String(text) => {
                    let inner: Value = serde_json::from_str(text).expect("a JSON string");
                    assert!(inner.is_object() || inner.is_array());
                    assert!(text.is_ascii(), "ensure_ascii, as the SDK: {text}");
                    assert!(
                        !text.starts_with("{ ") && !text.contains("\", \""),
                        "compact: {text}"
                    );
                    objects += 1;
                }
                other => panic!("{k} should be a JSON string, got {other}"),
            }
        }
    }
    assert!(objects > 0);
}

#[test]
fn without_maps_the_output_is_the_same() {
    let server = start(small_config());
    let s = Scratch::new();
    // Streams and slices run concurrently, so lines interleave (and records
    // at a slice's boundary repeat) differently from run to run: compare the
    // SCHEMA and RECORD lines as sets, and the final state.
    let strip = |run: &Run| -> (Vec<String>, Value) {
        let mut lines: Vec<String> = run
            .stdout
            .lines()
            .filter(|l| !l.contains("\"type\":\"STATE\""))
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("time_extracted");
                }
                v.to_string()
            })
            .collect();
        lines.sort();
        lines.dedup();
        (lines, bookmarks_only(run.last_state()))
    };
    let plain = s.tap_with_state(&s.config(&server, json!({})), &json!({}));
    plain.assert_ok();
    for (what, extra) in [
        (
            "empty maps",
            json!({"stream_maps": {}, "flattening_enabled": false}),
        ),
        (
            "a map that changes nothing",
            json!({"stream_maps": {"tickets": {}, "sessions": {"__alias__": "sessions"}}}),
        ),
        (
            "depth 0",
            json!({"flattening_enabled": true, "flattening_max_depth": 0}),
        ),
    ] {
        let run = s.tap_with_state(&s.config(&server, extra), &json!({}));
        run.assert_ok();
        assert_eq!(strip(&run), strip(&plain), "{what}");
    }
}

#[test]
fn maps_come_from_the_environment_too() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let run = tap_with_env(
        &["--config", path_str(&cfg), "--config", "ENV"],
        &[(
            "TAP_GLEAP_STREAM_MAPS",
            r#"{"__else__": null, "teams": {"name": "name.upper() if name else None"}}"#,
        )],
    );
    run.assert_ok();
    assert!(!run.records("teams").is_empty());
    assert!(run.records("tickets").is_empty());
    for r in run.records("teams") {
        let n = r["name"].as_str().unwrap();
        assert_eq!(n, n.to_uppercase());
    }
}

#[test]
fn a_map_that_fails_on_data_stops_with_one_line_and_a_state_for_what_was_written() {
    let server = start(small_config());
    let s = Scratch::new();
    let cfg = s.config(
        &server,
        json!({"stream_maps": {"tickets": {"h": "md5(aiSummary)"}}}),
    );
    let run = s.tap_with_state(&cfg, &json!({}));
    assert_eq!(run.code, CONFIG_ERROR, "{}", run.stderr);
    let line = run.error_line();
    for needle in ["tickets", "'h'", "md5(aiSummary)", "NoneType", "record id"] {
        assert!(line.contains(needle), "{line:?} should mention {needle}");
    }
    assert!(run.stdout.lines().last().unwrap().contains("\"STATE\""));
}

#[test]
fn bad_maps_are_config_errors_before_any_request() {
    let server = start(small_config());
    let s = Scratch::new();
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "unknown stream",
            json!({"stream_maps": {"ticket": {"x": "id"}}}),
            &["'ticket'", "no such stream"],
        ),
        (
            "unknown source",
            json!({"stream_maps": {"t2": {"__source__": "tix"}}}),
            &["'tix'", "no such stream"],
        ),
        (
            "unknown property",
            json!({"stream_maps": {"sessions": {"email": "md5(emial)"}}}),
            &["'sessions'", "'email'", "'emial'"],
        ),
        (
            "property of another stream",
            json!({"stream_maps": {"tickets": {"email": "md5(email)"}}}),
            &["'tickets'", "'email'", "unknown name 'email'"],
        ),
        (
            "deselectable subscript",
            json!({"stream_maps": {"tickets": {"x": "record['nope']"}}}),
            &["'tickets'", "'x'", "record['nope']"],
        ),
        (
            "missing config key",
            json!({"stream_maps": {"tickets": {"x": "config['salt']"}}}),
            &["'tickets'", "'x'", "config['salt']"],
        ),
        (
            "syntax",
            json!({"stream_maps": {"tickets": {"x": "title +"}}}),
            &["'tickets'", "'x'", "title +"],
        ),
        (
            "line break",
            json!({"stream_maps": {"tickets": {"x": "title +\n"}}}),
            &["'x'", "title +\\n"],
        ),
        (
            "statement",
            json!({"stream_maps": {"tickets": {"x": "y = 1"}}}),
            &["'x'", "assignment"],
        ),
        (
            "lambda",
            json!({"stream_maps": {"tickets": {"x": "(lambda: 1)()"}}}),
            &["'x'", "lambda"],
        ),
        (
            "comprehension",
            json!({"stream_maps": {"tickets": {"x": "[t for t in tags]"}}}),
            &["'x'", "comprehension"],
        ),
        (
            "len",
            json!({"stream_maps": {"tickets": {"x": "len(title)"}}}),
            &["'x'", "len()"],
        ),
        (
            "unknown method",
            json!({"stream_maps": {"tickets": {"x": "title.shout()"}}}),
            &["'x'", ".shout()"],
        ),
        (
            "dunder",
            json!({"stream_maps": {"tickets": {"x": "title.__class__"}}}),
            &["'x'", "__class__"],
        ),
        (
            "format",
            json!({"stream_maps": {"tickets": {"x": "'{}'.format(title)"}}}),
            &["'x'", "format"],
        ),
        (
            "filter",
            json!({"stream_maps": {"tickets": {"__filter__": "stauts == 'OPEN'"}}}),
            &["'__filter__'", "'stauts'"],
        ),
        (
            "removing the key",
            json!({"stream_maps": {"tickets": {"id": null}}}),
            &["'tickets'", "'id'", "key property"],
        ),
        (
            "else without the key",
            json!({"stream_maps": {"tickets": {"__else__": null, "title": "title"}}}),
            &["'tickets'", "key properties", "'id'"],
        ),
        (
            "unknown key property",
            json!({"stream_maps": {"tickets": {"__key_properties__": ["nope"]}}}),
            &["'tickets'", "'nope'"],
        ),
        (
            "else not null",
            json!({"stream_maps": {"tickets": {"__else__": "x"}}}),
            &["'tickets'", "__else__"],
        ),
        (
            "top else not null",
            json!({"stream_maps": {"__else__": {}}}),
            &["__else__"],
        ),
        (
            "unknown option",
            json!({"stream_maps": {"tickets": {"__filtre__": "True"}}}),
            &["'tickets'", "__filtre__", "unknown option"],
        ),
        (
            "stream as a string",
            json!({"stream_maps": {"tickets": "hash"}}),
            &["'tickets'", "'hash'"],
        ),
        (
            "property as a number",
            json!({"stream_maps": {"tickets": {"x": 5}}}),
            &["'tickets'", "'x'", "5"],
        ),
        (
            "bad alias",
            json!({"stream_maps": {"tickets": {"__alias__": "my tickets"}}}),
            &["'tickets'", "__alias__"],
        ),
        (
            "alias and source",
            json!({"stream_maps": {"t2": {"__source__": "tickets", "__alias__": "t3"}}}),
            &["'t2'", "__alias__"],
        ),
        (
            "maps not an object",
            json!({"stream_maps": [1]}),
            &["stream_maps", "JSON object"],
        ),
        (
            "depth missing",
            json!({"flattening_enabled": true}),
            &["flattening_max_depth", "required"],
        ),
        (
            "depth negative",
            json!({"flattening_enabled": true, "flattening_max_depth": -1}),
            &["flattening_max_depth"],
        ),
    ];
    for (what, extra, needles) in cases {
        server.reset_stats();
        let cfg = s.config(&server, extra);
        let run = s.tap_with_state(&cfg, &json!({}));
        assert_eq!(run.code, CONFIG_ERROR, "{what}: {}", run.stderr);
        let line = run.error_line();
        assert!(
            line.starts_with("config error") || line.contains("config error"),
            "{what}: {line}"
        );
        for n in needles {
            assert!(line.contains(n), "{what}: {line:?} should mention {n}");
        }
        assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
        assert!(!run.stderr.contains("panicked"), "{what}: no panic");
        assert_eq!(server.stats().requests, 0, "{what}: no request");
    }
}
