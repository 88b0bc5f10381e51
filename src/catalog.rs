//! The Singer catalog: what `--discover` prints, and how a catalog passed to
//! a sync selects streams, fields and replication methods.
//!
//! Meltano writes a stream's settings both as root metadata
//! (`replication-method`, `replication-key`, `selected`) and as top-level
//! `replication_method` / `replication_key` keys; both are read, metadata first.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::streams::{self, Method, StreamDef, STREAMS};

/// A stream chosen for this sync, with its method and the fields to keep.
#[derive(Debug)]
pub struct Selected {
    pub def: &'static StreamDef,
    pub method: Method,
    /// The schema's properties that are selected (keys and the replication
    /// key always are), in schema order.
    pub fields: Vec<String>,
    /// The schema sent in the SCHEMA message: deselected fields removed,
    /// from `required` too; fields the catalog adds to `schemas/` (found by
    /// `--discover`) added, as the catalog types them.
    pub schema: Value,
    /// Fields the catalog deselects that `schemas/` lacks: kept out when the
    /// API sends them (`evolve.rs`).
    pub deselected: Vec<String>,
}

pub fn schema_of(def: &StreamDef) -> Value {
    serde_json::from_str(def.schema)
        .expect("embedded schemas are valid JSON (checked by a unit test)")
}

fn property_names(schema: &Value) -> Vec<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn is_automatic(def: &StreamDef, field: &str) -> bool {
    field == def.key
        || Some(field) == def.replication_key
        || def.parent.is_some_and(|p| p.child_field == field)
}

/// The catalog `--discover` prints.
pub fn discover() -> Value {
    discover_only(&[])
}

/// The catalog, with only the streams of `--select` (when any) marked
/// `"selected": true` and the others `false`. Otherwise every stream is
/// `selected-by-default`, as the Meltano SDK has it, but those that cost a
/// request per changed parent record (`StreamDef::selected_by_default`),
/// which say `"selected-by-default": false` and `"selected": false`.
pub fn discover_only(only: &[String]) -> Value {
    let streams: Vec<Value> = STREAMS
        .iter()
        .map(|def| {
            let mut entry = discover_stream(def);
            if !only.is_empty() {
                entry["metadata"][0]["metadata"]["selected"] =
                    json!(only.iter().any(|n| n == def.name));
            }
            entry
        })
        .collect();
    json!({ "streams": streams })
}

fn discover_stream(def: &StreamDef) -> Value {
    let schema = schema_of(def);
    let mut root = Map::new();
    root.insert("inclusion".into(), json!("available"));
    root.insert(
        "selected-by-default".into(),
        json!(def.selected_by_default()),
    );
    if !def.selected_by_default() {
        root.insert("selected".into(), json!(false));
    }
    root.insert("table-key-properties".into(), json!([def.key]));
    match def.replication_key {
        Some(rk) => {
            root.insert("valid-replication-keys".into(), json!([rk]));
            root.insert(
                "replication-method".into(),
                json!(def.default_method.as_singer()),
            );
            root.insert("replication-key".into(), json!(rk));
        }
        None => {
            root.insert(
                "forced-replication-method".into(),
                json!(Method::FullTable.as_singer()),
            );
        }
    }
    let mut metadata = vec![json!({ "breadcrumb": [], "metadata": root })];
    for field in property_names(&schema) {
        let inclusion = if is_automatic(def, &field) {
            "automatic"
        } else {
            "available"
        };
        metadata.push(json!({
            "breadcrumb": ["properties", field],
            "metadata": { "inclusion": inclusion, "selected-by-default": true }
        }));
    }
    let mut entry = json!({
        "tap_stream_id": def.name,
        "stream": def.name,
        "schema": schema,
        "key_properties": [def.key],
        "replication_method": def.default_method.as_singer(),
        "metadata": metadata,
    });
    if let Some(rk) = def.replication_key {
        entry["replication_key"] = json!(rk);
    }
    entry
}

/// Adds the fields `--discover` saw the API send (`sample.rs`) to their
/// streams' entries, typed as their values were (nullable), selected by
/// default; and says where each field of the catalog comes from, in its
/// metadata: `"tap-gleap.source": "schema"` (`schemas/`) or `"api"`.
pub fn add_seen(catalog: &mut Value, seen: &[(&str, Vec<(String, u8)>)]) {
    use crate::json_types as types;
    let Some(entries) = catalog["streams"].as_array_mut() else {
        return;
    };
    for entry in entries {
        let name = entry["tap_stream_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(metadata) = entry["metadata"].as_array_mut() else {
            continue;
        };
        for m in metadata.iter_mut() {
            if m["breadcrumb"].as_array().is_some_and(|b| b.len() == 2) {
                m["metadata"]["tap-gleap.source"] = json!("schema");
            }
        }
        let Some((_, fields)) = seen.iter().find(|(s, _)| *s == name) else {
            continue;
        };
        for (field, _) in fields {
            metadata.push(json!({
                "breadcrumb": ["properties", field],
                "metadata": {
                    "inclusion": "available",
                    "selected-by-default": true,
                    "tap-gleap.source": "api"
                }
            }));
        }
        for (field, t) in fields {
            entry["schema"]["properties"][field] = types::schema(t | types::NULL);
        }
    }
}

/// The streams selected by default, with every field: a sync without a
/// catalog (every stream but those costing a request per changed parent).
pub fn select_all() -> Vec<Selected> {
    select_only(&[])
}

/// The streams of `--select` with every field, whatever their default
/// (a stream named is a stream wanted); without `--select`, the streams
/// selected by default.
pub fn select_only(only: &[String]) -> Vec<Selected> {
    STREAMS
        .iter()
        .filter(|def| {
            if only.is_empty() {
                def.selected_by_default()
            } else {
                only.iter().any(|n| n == def.name)
            }
        })
        .map(|def| {
            let schema = schema_of(def);
            Selected {
                def,
                method: def.default_method,
                fields: property_names(&schema),
                schema,
                deselected: Vec::new(),
            }
        })
        .collect()
}

/// Reads a catalog file and returns the streams it selects.
pub fn load(path: &Path) -> Result<Vec<Selected>> {
    load_only(path, &[])
}

/// Reads a catalog file and returns the streams it selects, or, when `only`
/// (`--select`) names streams, those streams whatever the catalog selects.
pub fn load_only(path: &Path, only: &[String]) -> Result<Vec<Selected>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Catalog(format!("cannot read {name}: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Catalog(format!("{name} is not valid JSON: {e}")))?;
    select(&value, only).map_err(|m| Error::Catalog(format!("{name}: {m}")))
}

/// One line for the log: which streams a sync extracts, with how many fields.
pub fn summary(selected: &[Selected]) -> String {
    let streams: Vec<String> = selected
        .iter()
        .map(|s| format!("{} ({} fields)", s.def.name, s.fields.len()))
        .collect();
    format!(
        "{} of {} streams selected: {}",
        selected.len(),
        STREAMS.len(),
        streams.join(", ")
    )
}

/// The streams a catalog (already parsed) selects; the error says what is wrong.
pub fn from_value(catalog: &Value) -> std::result::Result<Vec<Selected>, String> {
    select(catalog, &[])
}

fn select(catalog: &Value, only: &[String]) -> std::result::Result<Vec<Selected>, String> {
    let entries = catalog
        .get("streams")
        .and_then(Value::as_array)
        .ok_or("expected an object with a \"streams\" array, as `tap-gleap --discover` prints")?;
    let mut selected = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let id = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("streams[{i}] has no \"tap_stream_id\""))?;
        let def = streams::find(id).ok_or_else(|| {
            let known: Vec<&str> = STREAMS.iter().map(|s| s.name).collect();
            format!(
                "unknown stream \"{id}\": the streams are {}",
                known.join(", ")
            )
        })?;
        if !seen.insert(id) {
            return Err(format!("stream \"{id}\" appears twice"));
        }
        let chosen = if only.is_empty() {
            is_selected(metadata_for(entry, &[]), entry.get("selected"))
        } else {
            only.iter().any(|n| n == id)
        };
        if chosen {
            selected.push(select_stream(def, entry)?);
        }
    }
    if let Some(missing) = only.iter().find(|n| !seen.contains(n.as_str())) {
        return Err(format!(
            "stream \"{missing}\" (from --select) is not in the catalog: add its entry from `tap-gleap --discover`"
        ));
    }
    if selected.is_empty() {
        return Err("no stream is selected: set \"selected\": true in a stream's root metadata (breadcrumb [])".into());
    }
    Ok(selected)
}

fn metadata_for<'a>(entry: &'a Value, breadcrumb: &[&str]) -> Option<&'a Map<String, Value>> {
    entry.get("metadata")?.as_array()?.iter().find_map(|m| {
        let bc = m.get("breadcrumb")?.as_array()?;
        let same = bc.len() == breadcrumb.len()
            && bc
                .iter()
                .zip(breadcrumb)
                .all(|(a, b)| a.as_str() == Some(*b));
        if same {
            m.get("metadata")?.as_object()
        } else {
            None
        }
    })
}

/// `selected` wins; otherwise `selected-by-default`, as the Meltano SDK reads it.
fn is_selected(md: Option<&Map<String, Value>>, fallback: Option<&Value>) -> bool {
    let md_value = |k: &str| md.and_then(|m| m.get(k)).and_then(Value::as_bool);
    md_value("selected")
        .or_else(|| fallback.and_then(Value::as_bool))
        .or_else(|| md_value("selected-by-default"))
        .unwrap_or(false)
}

/// A stream chosen for the sync: its method and fields, as its entry says.
fn select_stream(def: &'static StreamDef, entry: &Value) -> std::result::Result<Selected, String> {
    let root = metadata_for(entry, &[]);
    let root_str = |k: &str| root.and_then(|m| m.get(k)).and_then(Value::as_str);
    let method = match root_str("replication-method").or_else(|| entry.get("replication_method").and_then(Value::as_str)) {
        None | Some("") => def.default_method,
        Some(m) if m.eq_ignore_ascii_case("FULL_TABLE") => Method::FullTable,
        Some(m) if m.eq_ignore_ascii_case("INCREMENTAL") => {
            if def.replication_key.is_none() {
                return Err(format!(
                    "stream \"{}\" can only be synced FULL_TABLE (the API gives no way to filter it by update time)",
                    def.name
                ));
            }
            Method::Incremental
        }
        Some(other) => return Err(format!("stream \"{}\": replication method \"{other}\" is not supported: use INCREMENTAL or FULL_TABLE", def.name)),
    };
    if let Some(rk) =
        root_str("replication-key").or_else(|| entry.get("replication_key").and_then(Value::as_str))
    {
        if !rk.is_empty() && Some(rk) != def.replication_key {
            let valid = def
                .replication_key
                .map(|k| format!("\"{k}\""))
                .unwrap_or_else(|| "none".into());
            return Err(format!(
                "stream \"{}\": unknown replication key \"{rk}\" (valid: {valid})",
                def.name
            ));
        }
    }
    let mut schema = schema_of(def);
    let all = property_names(&schema);
    let fields: Vec<String> = all
        .iter()
        .filter(|f| {
            if is_automatic(def, f) {
                return true;
            }
            let md = metadata_for(entry, &["properties", f.as_str()]);
            let unsupported =
                md.and_then(|m| m.get("inclusion")).and_then(Value::as_str) == Some("unsupported");
            // `selected` wins, then `selected-by-default`; a field with neither is kept.
            let flag = |k: &str| md.and_then(|m| m.get(k)).and_then(Value::as_bool);
            !unsupported
                && flag("selected")
                    .or_else(|| flag("selected-by-default"))
                    .unwrap_or(true)
        })
        .cloned()
        .collect();
    if let Some(props) = schema["properties"].as_object_mut() {
        props.retain(|k, _| fields.contains(k));
    }
    if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|k| k.as_str().is_some_and(|k| fields.iter().any(|f| f == k)));
    }
    let (added, deselected) = fields_beyond_schemas(entry, &all);
    if let Some(props) = schema["properties"].as_object_mut() {
        props.extend(added);
    }
    Ok(Selected {
        def,
        method,
        fields,
        schema,
        deselected,
    })
}

/// The fields a catalog entry names that `schemas/` lacks (`known`): those
/// selected, with the type the entry's schema gives them (any, without
/// one), and the names of those deselected. A field the catalog does not
/// name at all is neither: it follows `schema_evolution`.
fn fields_beyond_schemas(entry: &Value, known: &[String]) -> (Map<String, Value>, Vec<String>) {
    let mut added = Map::new();
    let mut deselected = Vec::new();
    let in_schema = entry["schema"]["properties"].as_object();
    let in_metadata = entry["metadata"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m["breadcrumb"].as_array()?.as_slice() {
            [p, name] if p == "properties" => name.as_str(),
            _ => None,
        });
    let names: BTreeSet<&str> = in_schema
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .chain(in_metadata)
        .filter(|n| !known.iter().any(|k| k == n))
        .collect();
    for name in names {
        let md = metadata_for(entry, &["properties", name]);
        let flag = |k: &str| md.and_then(|m| m.get(k)).and_then(Value::as_bool);
        let unsupported =
            md.and_then(|m| m.get("inclusion")).and_then(Value::as_str) == Some("unsupported");
        let chosen = !unsupported
            && flag("selected")
                .or_else(|| flag("selected-by-default"))
                .unwrap_or(true);
        if !chosen {
            deselected.push(name.to_string());
        } else if let Some(s) = in_schema.and_then(|p| p.get(name)) {
            added.insert(name.to_string(), s.clone());
        }
    }
    (added, deselected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_root(mut cat: Value, stream: &str, md: Value) -> Value {
        for e in cat["streams"].as_array_mut().unwrap() {
            if e["tap_stream_id"] == stream {
                let m = e["metadata"].as_array_mut().unwrap();
                for (k, v) in md.as_object().unwrap() {
                    m[0]["metadata"][k] = v.clone();
                }
            }
        }
        cat
    }

    fn deselect_all(mut cat: Value) -> Value {
        for e in cat["streams"].as_array_mut().unwrap() {
            e["metadata"][0]["metadata"]["selected"] = json!(false);
        }
        cat
    }

    #[test]
    fn the_discovered_catalog_selects_everything_by_default_but_per_parent_streams() {
        let names = |s: Vec<Selected>| s.iter().map(|s| s.def.name).collect::<Vec<_>>();
        let by_default = names(select(&discover(), &[]).unwrap());
        assert_eq!(by_default, names(select_all()));
        assert_eq!(by_default.len(), STREAMS.len() - 3);
        for name in [
            "ticket_activity_logs",
            "session_activities",
            "session_events",
        ] {
            assert!(!by_default.contains(&name), "{name}");
            let entry = discover()["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["tap_stream_id"] == name)
                .unwrap()
                .clone();
            assert_eq!(
                entry["metadata"][0]["metadata"]["selected-by-default"],
                false
            );
            assert_eq!(entry["metadata"][0]["metadata"]["selected"], false);
            // Named, it is extracted: by --select, or by the catalog.
            let only = vec![name.to_string()];
            assert_eq!(names(select(&discover(), &only).unwrap()), [name]);
            assert_eq!(names(select_only(&only)), [name]);
            assert_eq!(names(select(&discover_only(&only), &[]).unwrap()), [name]);
            let cat = with_root(deselect_all(discover()), name, json!({"selected": true}));
            assert_eq!(names(select(&cat, &[]).unwrap()), [name]);
        }
    }

    #[test]
    fn only_selected_streams_and_fields_are_kept_but_keys_always_are() {
        let mut cat = with_root(
            deselect_all(discover()),
            "tickets",
            json!({"selected": true}),
        );
        for e in cat["streams"].as_array_mut().unwrap() {
            for m in e["metadata"].as_array_mut().unwrap() {
                if m["breadcrumb"] == json!(["properties", "title"])
                    || m["breadcrumb"] == json!(["properties", "id"])
                {
                    m["metadata"]["selected"] = json!(false);
                }
            }
        }
        let s = select(&cat, &[]).unwrap();
        assert_eq!(s.len(), 1);
        assert!(!s[0].fields.contains(&"title".to_string()));
        assert!(
            s[0].fields.contains(&"id".to_string())
                && s[0].fields.contains(&"updatedAt".to_string())
        );
        assert!(s[0].schema["properties"].get("title").is_none());
    }

    #[test]
    fn full_table_can_be_chosen_for_an_incremental_stream_in_either_place() {
        let cat = with_root(
            deselect_all(discover()),
            "sessions",
            json!({"selected": true, "replication-method": "FULL_TABLE"}),
        );
        assert_eq!(select(&cat, &[]).unwrap()[0].method, Method::FullTable);
        let mut cat = with_root(
            deselect_all(discover()),
            "sessions",
            json!({"selected": true}),
        );
        for e in cat["streams"].as_array_mut().unwrap() {
            if e["tap_stream_id"] == "sessions" {
                e["replication_method"] = json!("FULL_TABLE");
                e["metadata"][0]["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("replication-method");
            }
        }
        assert_eq!(select(&cat, &[]).unwrap()[0].method, Method::FullTable);
    }

    #[test]
    fn select_names_the_streams_whatever_the_catalog_selects() {
        let only = vec!["teams".to_string(), "tickets".to_string()];
        // Every stream is selected by default: --select narrows it.
        let names = |s: Vec<Selected>| s.iter().map(|s| s.def.name).collect::<Vec<_>>();
        assert_eq!(
            names(select(&discover(), &only).unwrap()),
            ["tickets", "teams"]
        );
        // A stream the catalog deselects is taken, with the catalog's fields.
        let mut cat = deselect_all(discover());
        for e in cat["streams"].as_array_mut().unwrap() {
            for m in e["metadata"].as_array_mut().unwrap() {
                if m["breadcrumb"] == json!(["properties", "title"]) {
                    m["metadata"]["selected"] = json!(false);
                }
            }
        }
        let s = select(&cat, &only).unwrap();
        assert!(!s[0].fields.contains(&"title".to_string()));
        assert_eq!(names(select_only(&only)), ["tickets", "teams"]);
        // A stream missing from the catalog cannot be synced.
        let e = select(&json!({"streams": [discover()["streams"][0]]}), &only).unwrap_err();
        assert!(e.contains("\"teams\"") && e.contains("--select"), "{e}");
        // --discover --select marks only those selected.
        let d = discover_only(&only);
        assert_eq!(names(select(&d, &[]).unwrap()), ["tickets", "teams"]);
    }

    #[test]
    fn the_summary_names_each_stream_and_its_field_count() {
        let s = select_only(&["teams".to_string()]);
        let n = s[0].fields.len();
        assert_eq!(
            summary(&s),
            format!(
                "1 of {} streams selected: teams ({n} fields)",
                STREAMS.len()
            )
        );
    }

    #[test]
    fn bad_catalogs_are_refused_with_a_reason() {
        assert!(select(&json!({}), &[]).unwrap_err().contains("streams"));
        assert!(
            select(&json!({"streams": [{"tap_stream_id": "nope"}]}), &[])
                .unwrap_err()
                .contains("unknown stream \"nope\"")
        );
        assert!(select(&deselect_all(discover()), &[])
            .unwrap_err()
            .contains("no stream is selected"));
        let cat = with_root(
            deselect_all(discover()),
            "tickets",
            json!({"selected": true, "replication-key": "createdAt"}),
        );
        assert!(select(&cat, &[])
            .unwrap_err()
            .contains("unknown replication key"));
        let cat = with_root(
            deselect_all(discover()),
            "teams",
            json!({"selected": true, "replication-method": "INCREMENTAL"}),
        );
        assert!(select(&cat, &[]).unwrap_err().contains("FULL_TABLE"));
    }
}
