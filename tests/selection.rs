//! Stream and field selection through a catalog.

use serde_json::json;

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
