//! Schema evolution (`schema_evolution`): fields the API sends that the
//! schemas lack. The fake sends such fields by default
//! (`undocumented_fields`): some on every record, some on one in ten or a
//! hundred, and one (`linkedIssue`) that is a string and then a number.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::util::*;

/// Fields the fake sends that `schemas/` lacks, per stream.
const NEW_FIELDS: &[(&str, &[&str])] = &[
    ("tickets", &["attachments", "linkedIssue", "escalation"]),
    ("sessions", &["project", "unsubscribeReason"]),
    ("messages", &["project"]),
    ("teams", &["project"]),
    ("surveys", &["project", "format"]),
    ("message_templates", &["project", "type", "lang"]),
    ("helpcenter_collections", &["lexorank"]),
];

/// Every RECORD's fields are in the last SCHEMA of its stream written
/// before it; returns, per stream, the SCHEMA messages in order. (Not how
/// many records came before each: slices write pages in whatever order
/// they finish.)
fn schemas_in_order(run: &Run) -> BTreeMap<String, Vec<Value>> {
    let mut schemas: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in &run.messages {
        match m {
            Message::Schema { stream, schema, .. } => {
                schemas
                    .entry(stream.clone())
                    .or_default()
                    .push(schema.clone());
            }
            Message::Record { stream, record, .. } => {
                let schema = schemas[stream].last().expect("SCHEMA before RECORD");
                for k in record.keys() {
                    assert!(
                        schema["properties"].get(k).is_some(),
                        "{stream}: field {k} written before a SCHEMA that has it"
                    );
                }
            }
            _ => {}
        }
    }
    schemas
}

#[test]
fn new_fields_reach_the_output_with_their_schema_before_them() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({"page_size": 40}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    assert_records_match_schemas(&run);
    let schemas = schemas_in_order(&run);
    for (stream, fields) in NEW_FIELDS {
        let records = run.records(stream);
        for f in *fields {
            assert!(
                records
                    .iter()
                    .any(|r| r.get(*f).is_some_and(|v| !v.is_null())),
                "{stream}.{f} reaches no record"
            );
            let last = schemas[*stream].last().unwrap();
            assert!(last["properties"].get(*f).is_some(), "{stream}.{f}");
            // Logged once, however many tasks met it.
            let logged = format!("new field \"{f}\"");
            let times = run
                .stderr
                .lines()
                .filter(|l| l.contains(&logged) && l.contains(&format!("stream=\"{stream}\"")))
                .count();
            assert_eq!(times, 1, "{stream}.{f} logged {times} times");
        }
        // The fake's snapshot holds every record: none was lost.
        assert_eq!(run.ids(stream), fake_ids(&server, stream), "{stream}");
    }
    let tickets = run.records("tickets");
    // One in a hundred: tickets 99 and 199 of 250, so its SCHEMA comes
    // mid-stream: not in the stream's first SCHEMA, and before the first
    // RECORD that carries it. How many records come before it is not
    // asked: slices write their pages in whatever order they finish, and
    // the page holding ticket 99 may be among the first written.
    let rare: Vec<_> = tickets
        .iter()
        .filter(|r| r.contains_key("escalation"))
        .collect();
    assert_eq!(rare.len(), 2);
    assert!(rare
        .iter()
        .all(|r| r["escalation"]["reason"] == "VIP customer"));
    let t = &schemas["tickets"];
    assert!(
        t[0]["properties"].get("escalation").is_none(),
        "the stream's first SCHEMA is the built-in one"
    );
    let position = |found: &dyn Fn(&Message) -> bool| {
        run.messages.iter().position(found).expect("such a message")
    };
    let schema_at = position(&|m| {
        matches!(m, Message::Schema { stream, schema, .. }
            if stream == "tickets" && schema["properties"].get("escalation").is_some())
    });
    let record_at = position(&|m| {
        matches!(m, Message::Record { stream, record, .. }
            if stream == "tickets" && record.contains_key("escalation"))
    });
    assert!(
        schema_at < record_at,
        "the SCHEMA adding escalation (line {schema_at}) before its first RECORD (line {record_at})"
    );
    // The field that changes type: every value kept as sent, and the type
    // widened to cover both. Which type a task meets first is a race
    // between slices (the first with a number may be read before the first
    // with a string), and a SCHEMA older than one already written is
    // dropped: so only the widening is asked, not which came first. That
    // each value fits the SCHEMA before it is `assert_records_match_schemas`.
    let linked: Vec<&Value> = tickets
        .iter()
        .filter_map(|r| r.get("linkedIssue"))
        .collect();
    assert_eq!(linked.len(), 25);
    assert_eq!(linked.iter().filter(|v| v.is_u64()).count(), 5);
    assert!(linked
        .iter()
        .filter(|v| v.is_string())
        .all(|v| v.as_str().unwrap().starts_with("GLEAP-")));
    let types: Vec<Value> = t
        .iter()
        .filter_map(|s| {
            s["properties"]
                .get("linkedIssue")
                .map(|p| p["type"].clone())
        })
        .collect();
    let (as_string, as_number, both) = (
        json!(["string", "null"]),
        json!(["integer", "null"]),
        json!(["integer", "string", "null"]),
    );
    assert!(
        types
            .iter()
            .all(|t| *t == as_string || *t == as_number || *t == both),
        "{types:?}"
    );
    assert_eq!(types.last().unwrap(), &both);
    // Widened once, whichever type came first.
    let widened: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            l.contains("field \"linkedIssue\" was string, now also integer")
                || l.contains("field \"linkedIssue\" was integer, now also string")
        })
        .collect();
    assert_eq!(widened.len(), 1, "{widened:#?}");
    // Each version once: no SCHEMA repeats the one before it.
    for (stream, list) in &schemas {
        for pair in list.windows(2) {
            assert_ne!(pair[0], pair[1], "{stream}: the same SCHEMA twice");
        }
    }
    // No drift warning: nothing was dropped.
    assert!(!run.stderr.contains("schema drift"), "{}", run.stderr);
}

#[test]
fn without_new_fields_each_stream_sends_one_schema() {
    let server = start(fake_gleap::FakeConfig {
        undocumented_fields: false,
        ..fake_config()
    });
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let run = tap(&["--config", path_str(&cfg)]);
    run.assert_ok();
    for (stream, list) in schemas_in_order(&run) {
        assert_eq!(list.len(), 1, "{stream}");
    }
    assert!(!run.stderr.contains("schema evolution"));
}

#[test]
fn freeze_fails_the_stream_on_a_new_field_and_discard_drops_it() {
    let server = start(fake_config());
    let s = Scratch::new();
    // team_members gets no new field: it completes; tickets fails.
    let cfg = s.config(&server, json!({"schema_evolution": "freeze"}));
    let run = tap(&[
        "--config",
        path_str(&cfg),
        "--select",
        "tickets,team_members",
    ]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("tickets") && line.contains("\"attachments\"") && line.contains("freeze"),
        "{line}"
    );
    assert!(run.records("tickets").is_empty());
    assert_eq!(run.ids("team_members"), fake_ids(&server, "team_members"));

    // Frozen to a catalog that names the fields (as `--discover` writes
    // it): they are the schema's, and nothing fails.
    let cat = discovered_selecting(&cfg, &["tickets"], |_| {});
    let cat = s.write_json("catalog.json", &cat);
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    run.assert_ok();
    let tickets = run.records("tickets");
    assert!(tickets.iter().all(|r| r.contains_key("attachments")));
    assert_eq!(
        tickets
            .iter()
            .filter(|r| r.contains_key("escalation"))
            .count(),
        2
    );
    assert_eq!(schemas_in_order(&run)["tickets"].len(), 1);

    let cfg = s.config(&server, json!({"schema_evolution": "discard"}));
    let run = tap(&["--config", path_str(&cfg), "--select", "tickets"]);
    run.assert_ok();
    assert_eq!(schemas_in_order(&run)["tickets"].len(), 1);
    for r in run.records("tickets") {
        assert!(!r.contains_key("attachments") && !r.contains_key("linkedIssue"));
    }
    assert!(run.stderr.contains("schema drift: field \"attachments\""));
    assert_eq!(run.ids("tickets"), fake_ids(&server, "tickets"));

    let cfg = s.config(&server, json!({"schema_evolution": "sometimes"}));
    let run = tap(&["--config", path_str(&cfg)]);
    assert_eq!(run.code, 3);
    assert!(
        run.error_line().contains("evolve, freeze, discard"),
        "{}",
        run.error_line()
    );
}

#[test]
fn discovery_with_credentials_adds_the_fields_the_api_sends() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let run = tap_plain(&["--config", path_str(&cfg), "--discover"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cat: Value = serde_json::from_str(&run.stdout).unwrap();
    let entry = |name: &str| {
        cat["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["tap_stream_id"] == name)
            .unwrap()
            .clone()
    };
    let source = |e: &Value, field: &str| {
        e["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == json!(["properties", field]))
            .map(|m| m["metadata"]["tap-gleap.source"].clone())
    };
    for (stream, fields) in NEW_FIELDS {
        let e = entry(stream);
        for f in *fields {
            // The rare field may be missing from the first page: not so
            // the others (the first page of tickets holds 100).
            if *f == "escalation" {
                continue;
            }
            assert_eq!(source(&e, f), Some(json!("api")), "{stream}.{f}");
            assert!(e["schema"]["properties"].get(*f).is_some(), "{stream}.{f}");
        }
        assert_eq!(source(&e, "id"), Some(json!("schema")));
    }
    assert_eq!(
        entry("tickets")["schema"]["properties"]["linkedIssue"]["type"],
        json!(["integer", "string", "null"])
    );
    // A field deselected in that catalog stays out; one it adds is in the
    // first SCHEMA; one it does not name at all follows its stream.
    let mut cat = cat.clone();
    for e in cat["streams"].as_array_mut().unwrap() {
        let chosen = e["tap_stream_id"] == "tickets";
        e["metadata"][0]["metadata"]["selected"] = json!(chosen);
        if chosen {
            for m in e["metadata"].as_array_mut().unwrap() {
                if m["breadcrumb"] == json!(["properties", "attachments"]) {
                    m["metadata"]["selected"] = json!(false);
                }
            }
            e["metadata"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["breadcrumb"] != json!(["properties", "linkedIssue"]));
            e["schema"]["properties"]
                .as_object_mut()
                .unwrap()
                .remove("linkedIssue");
        }
    }
    let cat = s.write_json("catalog.json", &cat);
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    run.assert_ok();
    let schemas = schemas_in_order(&run);
    let first = &schemas["tickets"][0];
    assert!(first["properties"].get("attachments").is_none());
    assert!(first["properties"].get("linkedIssue").is_none());
    let tickets = run.records("tickets");
    assert!(tickets.iter().all(|r| !r.contains_key("attachments")));
    assert_eq!(
        tickets
            .iter()
            .filter(|r| r.contains_key("linkedIssue"))
            .count(),
        25
    );
    assert!(!run.stderr.contains("\"attachments\""), "{}", run.stderr);

    // Without --config: the catalog of schemas/, no request made.
    let plain = tap_plain(&["--discover"]);
    assert_eq!(plain.code, 0);
    assert!(!plain.stdout.contains("tap-gleap.source"));
    assert!(!plain.stdout.contains("linkedIssue"));
}

#[test]
fn maps_and_flattening_treat_new_fields_as_any_field() {
    let server = start(fake_config());
    let s = Scratch::new();
    let maps = |extra: Value| {
        let mut c = json!({"flattening_enabled": true, "flattening_max_depth": 1});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        s.config(&server, c)
    };
    // A map that names no new field: new fields pass through it.
    let cfg = maps(json!({"stream_maps": {"tickets": {"title": "md5(title) if title else None"}}}));
    let run = tap(&["--config", path_str(&cfg), "--select", "tickets"]);
    run.assert_ok();
    assert_records_match_schemas(&run);
    let schemas = schemas_in_order(&run);
    let last = &schemas["tickets"].last().unwrap()["properties"];
    // As the SDK flattens any object whose schema names no properties
    // (`formData`...): into JSON text.
    assert_eq!(last["escalation"]["type"], json!(["string", "null"]));
    assert_eq!(last["formData"]["type"], json!(["string", "null"]));
    let tickets = run.records("tickets");
    let escalations: Vec<&str> = tickets
        .iter()
        .filter_map(|r| r.get("escalation")?.as_str())
        .collect();
    assert_eq!(escalations.len(), 2);
    assert!(escalations[0].contains("VIP customer"), "{escalations:?}");
    assert_eq!(
        tickets
            .iter()
            .filter(|r| r.contains_key("linkedIssue"))
            .count(),
        25
    );
    assert!(tickets.iter().all(|r| r.contains_key("attachments")));

    // A map naming a new field needs it in the catalog, as `--discover`
    // with credentials writes it; `__else__` leaves the others out.
    let cat = discovered_selecting(&cfg, &["tickets"], |_| {});
    let cat = s.write_json("catalog.json", &cat);
    let cfg = maps(
        json!({"stream_maps": {"tickets": {"id": "id", "linked": "str(linkedIssue)", "__else__": null}}}),
    );
    let run = tap(&["--config", path_str(&cfg), "--catalog", path_str(&cat)]);
    run.assert_ok();
    assert_records_match_schemas(&run);
    let tickets = run.records("tickets");
    assert!(tickets
        .iter()
        .all(|r| !r.contains_key("attachments") && !r.contains_key("linkedIssue")));
    let linked: BTreeSet<&str> = tickets
        .iter()
        .filter_map(|r| r["linked"].as_str())
        .collect();
    assert!(
        linked.contains("GLEAP-3") && linked.contains("10023"),
        "{linked:?}"
    );
}
