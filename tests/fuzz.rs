//! Property tests (proptest): no input may panic the parsing of API
//! responses or of the config, state and catalog files, and what the
//! conformer writes is always valid JSON that keeps the record's id.
//!
//! `FUZZ_CASES` sets the cases per property (default 256), e.g.
//! `FUZZ_CASES=20000 cargo test --release --test tests -- fuzz::` for a longer run.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use tap_gleap::catalog::{self, Selected};
use tap_gleap::conform::{self, Conformer};
use tap_gleap::scan;
use tap_gleap::state::State;
use tap_gleap::streams::{self, STREAMS};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        // Regressions are reported in the failure message; no files in the repo.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys that matter to the tap, mixed with arbitrary ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "_id", "updatedAt", "createdAt", "name", "email", "tags", "customData",
            "formData", "session", "processingUser", "survey_id", "value", "lastActivity",
            "tickets", "totalCount", "responses", "items", "bookmarks", "partitions",
            "replication_key_value", "context", "streams", "metadata", "breadcrumb",
            "selected", "tap_stream_id", "type", "STATE", "singer_state",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "2024-01-01T00:00:00.000Z",
            "2024-01-01",
            "2024-01-01 10:00:00",
            "2024-01-01T10:00:00+02:00",
            "2024-13-45T99:99:99.999Z",
            "2999-01-01T00:00:00.000Z",
            "1704067200000",
            "true",
            "{\"a\":1}",
            "[1,2]",
            "",
        ])
        .prop_map(Value::from),
        prop::sample::select(vec![
            1_704_067_200_000i64,
            1_704_067_200,
            -1,
            0,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object shaped like a record: the interesting keys, any values.
fn record() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), any_json()), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// Text that is nearly JSON: tokens of pages glued at random.
fn near_json() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "\"id\"",
            "\"_id\"",
            "\"updatedAt\"",
            "\"tickets\"",
            "\"responses\"",
            "\"totalCount\"",
            "\"2024-01-01T00:00:00.000Z\"",
            "\"x\"",
            "1704067200000",
            "-1",
            "1e999",
            "null",
            "true",
            "\"\\u0000\"",
            "\"\\ud800\"",
            " ",
            "\n",
            "\r\n",
            "\n",
            "\"",
            "\\",
        ]),
        0..60,
    )
    .prop_map(|t| t.concat())
}

fn selections() -> Vec<Selected> {
    catalog::select_all()
}

/// Reads `body` as every stream's page and conforms every record handed
/// on (records before a broken part of a body included); every line
/// written must be a JSON RECORD of that stream carrying the id.
fn parse_and_conform(body: &str) {
    for sel in selections() {
        let def = sel.def;
        let mut conformer = Conformer::new(def, &sel.fields);
        let tail = conform::record_tail("2024-01-01T00:00:00.000Z", Some(7));
        let parent = def.parent.map(|_| "parent-1");
        let _ = scan::each_record(body, def, |record| {
            let Some(record) = record else { return };
            let meta = conformer.meta(record);
            let mut out = Vec::new();
            conformer.write_record(record, parent, &tail, &mut out);
            let Some(meta) = meta else { return };
            assert!(out.ends_with(b"\n"), "{}", def.name);
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
            let line: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                panic!(
                    "{}: not JSON ({e}): {}\nbody: {body}",
                    def.name,
                    String::from_utf8_lossy(&out)
                )
            });
            assert_eq!(line["type"], "RECORD");
            assert_eq!(line["stream"], def.name);
            assert_eq!(line["version"], 7);
            assert_eq!(
                line["record"]["id"],
                json!(meta.id),
                "{}: the id is kept\nbody: {body}",
                def.name
            );
            if let Some(p) = def.parent {
                assert_eq!(line["record"][p.child_field], "parent-1");
            }
        });
    }
}

/// A page in the documented shape of `stream` holding `records`.
fn page_of(stream: &str, records: &[Value]) -> String {
    let arr = Value::Array(records.to_vec());
    match stream {
        "tickets" => json!({"tickets": arr, "totalCount": records.len()}).to_string(),
        "survey_responses" => json!({"responses": arr}).to_string(),
        _ => arr.to_string(),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_pages_of_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        parse_and_conform(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_pages_of_nearly_json_never_panic(body in near_json()) {
        parse_and_conform(&body);
    }

    #[test]
    fn fuzz_record_shaped_pages_parse_and_conform(records in prop::collection::vec(record(), 0..6)) {
        for sel in selections() {
            let body = page_of(sel.def.name, &records);
            let page = scan::each_record(&body, sel.def, |_| {})
                .unwrap_or_else(|e| panic!("{}: a page of the documented shape is refused: {e}", sel.def.name));
            prop_assert_eq!(page.len, records.len());
        }
        let body = page_of("sessions", &records);
        parse_and_conform(&body);
        // Pretty-printed: line breaks between tokens, never in a RECORD line.
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
        parse_and_conform(&pretty);
        parse_and_conform(&page_of("tickets", &records));
        parse_and_conform(&page_of("survey_responses", &records));
    }

    /// The scanner never lets invalid JSON through to the output, and never
    /// refuses valid JSON. (serde_json decodes strings into `Value`, so it
    /// refuses lone surrogate escapes that the scanner, like serde_json's
    /// own `RawValue`, passes through as the valid JSON text they are.)
    #[test]
    fn fuzz_the_scanner_accepts_what_serde_json_accepts(body in near_json()) {
        let body = format!("[{body}]");
        let sessions = streams::find("sessions").unwrap();
        let ours = scan::each_record(&body, sessions, |_| {}).is_ok();
        prop_assert!(!ours || serde_json::from_str::<Box<RawValue>>(&body).is_ok(), "accepted: {}", body);
        prop_assert!(ours || serde_json::from_str::<Value>(&body).is_err(), "refused: {}", body);
    }

    #[test]
    fn fuzz_any_json_as_a_page_never_panics(v in any_json()) {
        parse_and_conform(&v.to_string());
    }

    #[test]
    fn fuzz_state_never_panics(v in any_json(), rk in any_json(), parts in any_json()) {
        let now = chrono::Utc::now();
        let _ = State::from_value(v, now);
        for name in ["tickets", "sessions", "survey_responses", "teams", "other"] {
            let shaped = json!({"bookmarks": {name: {"replication_key_value": rk.clone(), "partitions": parts.clone()}}});
            for candidate in [shaped.clone(), json!({"type": "STATE", "value": shaped.clone()}), json!({"singer_state": shaped})] {
                if let Ok(mut st) = State::from_value(candidate, now) {
                    for def in STREAMS {
                        for p in def.partitions() {
                            let _ = st.bookmark(def, p);
                            st.set_bookmark(def, p, "2024-01-01T00:00:00.000Z", None, None);
                        }
                    }
                    // What the tap prints, it can read back.
                    prop_assert!(State::from_value(st.to_value(), now).is_ok());
                }
            }
        }
    }

    #[test]
    fn fuzz_catalog_never_panics(
        v in any_json(),
        edits in prop::collection::vec((0usize..7, 0usize..40, key(), any_json()), 0..6),
    ) {
        let _ = catalog::from_value(&v);
        // The discovered catalog, edited at random places.
        let mut cat = catalog::discover();
        // (Edits go through `as_object_mut`: indexing a non-object `Value`
        // to assign would panic in this harness, not in the tap.)
        for (stream, md, k, value) in edits {
            let Some(entry) = cat["streams"].get_mut(stream) else { continue };
            let target = match md % 3 {
                0 => Some(entry),
                1 => entry
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut(md / 3))
                    .and_then(|m| m.get_mut("metadata")),
                _ => entry.get_mut("metadata").and_then(|m| m.get_mut(md / 3)),
            };
            if let Some(obj) = target.and_then(Value::as_object_mut) {
                obj.insert(k, value);
            }
        }
        if let Ok(selected) = catalog::from_value(&cat) {
            prop_assert!(!selected.is_empty());
            for s in &selected {
                prop_assert!(s.fields.iter().any(|f| f == s.def.key), "the key is always kept");
            }
        }
    }

    #[test]
    fn fuzz_config_never_panics(
        v in any_json(),
        values in prop::collection::vec((
            prop::sample::select(vec![
                "api_key", "project_id", "start_date", "api_url", "page_size",
                "requests_per_minute", "request_timeout_seconds", "retry_budget_seconds",
                "emit_activate_version_messages", "allow_insecure_http", "unknown",
                "reconcile_every", "reconcile_streams",
            ]),
            any_json(),
        ), 0..10),
    ) {
        let _ = tap_gleap::config::from_value(&v);
        let mut c = json!({"api_key": "k", "project_id": "p"});
        for (k, value) in values {
            c[k] = value;
        }
        if let Ok(config) = tap_gleap::config::from_value(&c) {
            prop_assert!((1..=10_000).contains(&config.page_size));
            prop_assert!(config.requests_per_minute >= 1);
            prop_assert!(!config.request_timeout.is_zero());
            prop_assert!(config.start_date.is_none_or(|t| t <= chrono::Utc::now()));
        } else if let Err(e) = tap_gleap::config::from_value(&c) {
            // One line, naming the setting.
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
    }
}
