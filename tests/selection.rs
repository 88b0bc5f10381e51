//! Stream and field selection through a catalog.

use serde_json::{json, Value};

use crate::util::*;

#[test]
fn only_selected_streams_and_fields_are_extracted() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let cat = catalog_selecting(&cfg, &["tickets", "teams"], |e| {
        if e["tap_stream_id"] == "tickets" {
            for m in e["metadata"].as_array_mut().unwrap() {
                let bc = m["breadcrumb"].clone();
                // Deselect a field, and try to deselect the key and the
                // replication key, which must stay.
                if bc == json!(["properties", "title"])
                    || bc == json!(["properties", "id"])
                    || bc == json!(["properties", "updatedAt"])
                {
                    m["metadata"]["selected"] = json!(false);
                }
            }
        }
    });
    // Meltano's legacy name for the catalog.
    let cat = s.write_json("catalog.json", &cat);
    let run = tap(&["--config", path_str(&cfg), "--properties", path_str(&cat)]);
    run.assert_ok();
    let streams: std::collections::BTreeSet<String> = run
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Record { stream, .. } | Message::Schema { stream, .. } => Some(stream.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        streams.into_iter().collect::<Vec<_>>(),
        vec!["teams", "tickets"]
    );
    assert_eq!(run.ids("tickets"), fake_ids(&server, "tickets"));
    for r in run.records("tickets") {
        assert!(r.get("title").is_none(), "deselected field extracted");
        assert!(
            r.get("id").is_some() && r.get("updatedAt").is_some(),
            "keys are always kept"
        );
    }
    let schema = run
        .messages
        .iter()
        .find_map(|m| match m {
            Message::Schema { stream, schema, .. } if stream == "tickets" => Some(schema.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        schema["properties"].get("title").is_none(),
        "the SCHEMA leaves the field out too"
    );
    assert!(schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r != "title"));
    assert_records_match_schemas(&run);
}

#[test]
fn meltano_style_top_level_replication_keys_are_read() {
    let server = start(fake_config());
    let s = Scratch::new();
    let cfg = s.config(&server, json!({}));
    let cat = catalog_selecting(&cfg, &["messages"], |e| {
        e["replication_method"] = json!("FULL_TABLE");
        e["metadata"][0]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("replication-method");
    });
    let cat = s.write_json("catalog.json", &cat);
    let st = s.write_json("state.json", &json!({"bookmarks": {"messages": {"replication_key": "updatedAt", "replication_key_value": "2025-06-01T00:00:00.000Z"}}}));
    let run = tap(&[
        "--config",
        path_str(&cfg),
        "--catalog",
        path_str(&cat),
        "--state",
        path_str(&st),
    ]);
    run.assert_ok();
    assert_eq!(run.ids("messages"), fake_ids(&server, "messages"));
    let schema_has_bookmarks = run.messages.iter().any(|m| {
        matches!(
            m,
            Message::Schema {
                bookmark_properties: Some(_),
                ..
            }
        )
    });
    assert!(
        !schema_has_bookmarks,
        "a FULL_TABLE stream declares no bookmark properties"
    );
    let _: Value = run.last_state().clone();
}
