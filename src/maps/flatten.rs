//! Schema flattening as the Meltano SDK does it (`flattening_enabled`,
//! `flattening_max_depth`): nested object properties become top-level
//! properties named `parent__child` down to the max depth; objects below it,
//! free-form objects and arrays become JSON-encoded strings, in the SCHEMA
//! and in every RECORD alike.

use serde_json::{json, Map, Value};

use super::record::{self, Out};
use super::value::{py_json, raw_to_py_json, Val};

pub const SEPARATOR: &str = "__";
pub const MAX_KEY_LENGTH: usize = 255;

/// The SDK's `flatten_key`: names joined by `__`; a name too long has its
/// parts shortened, first to last, to their capitals (`inflection.camelize`
/// without the lower-case letters) or their first three characters.
pub fn flatten_key(name: &str, parents: &[String]) -> String {
    let mut parts: Vec<String> = parents.to_vec();
    parts.push(name.to_string());
    let mut i = 0;
    while parts.join(SEPARATOR).chars().count() >= MAX_KEY_LENGTH && i < parts.len() {
        let reduced: String = camelize(&parts[i])
            .chars()
            .filter(|c| !c.is_ascii_lowercase())
            .collect();
        parts[i] = if reduced.chars().count() > 1 {
            reduced
        } else {
            parts[i].chars().take(3).collect()
        }
        .to_lowercase();
        i += 1;
    }
    parts.join(SEPARATOR)
}

/// `inflection.camelize`: the first character and each one after `_` in capitals, `_` dropped.
fn camelize(s: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' && chars.peek().is_some() && !up {
            up = true;
            continue;
        }
        if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `"object" in field_schema["type"]`: membership for a list, substring for a string.
fn type_has(schema: &Value, t: &str) -> bool {
    match &schema["type"] {
        Value::String(s) => s.contains(t),
        Value::Array(a) => a.iter().any(|x| x == t),
        _ => false,
    }
}

/// The SDK's `flatten_schema`: the schema with its properties flattened
/// (the properties key moved last, as the SDK rebuilds the dict).
pub fn flatten_schema(schema: &Value, max_level: usize) -> Result<Value, String> {
    let mut out = Map::new();
    if let Value::Object(o) = schema {
        for (k, v) in o {
            if k != "properties" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut parents = Vec::new();
    let props = flatten_node(schema, &mut parents, 0, max_level)?;
    out.insert("properties".into(), Value::Object(props));
    Ok(Value::Object(out))
}

fn flatten_node(
    node: &Value,
    parents: &mut Vec<String>,
    level: usize,
    max_level: usize,
) -> Result<Map<String, Value>, String> {
    let mut items: Map<String, Value> = Map::new();
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return Ok(items);
    };
    let push = |items: &mut Map<String, Value>, k: String, v: Value| -> Result<(), String> {
        if items.insert(k.clone(), v).is_some() {
            return Err(format!("Duplicate column name produced in schema: {k}"));
        }
        Ok(())
    };
    for (name, field) in props {
        let key = flatten_key(name, parents);
        if field.get("type").is_some() {
            if type_has(field, "object") && field.get("properties").is_some() && level < max_level {
                parents.push(name.clone());
                let inner = flatten_node(field, parents, level + 1, max_level);
                parents.pop();
                for (k, v) in inner? {
                    push(&mut items, k, v)?;
                }
            } else if type_has(field, "array") || (type_has(field, "object") && max_level > 0) {
                let nullable = match &field["type"] {
                    Value::String(s) => s.contains("null"),
                    Value::Array(a) => a.iter().any(|x| x == "null"),
                    _ => false,
                };
                let t = if nullable {
                    json!(["string", "null"])
                } else {
                    json!("string")
                };
                push(&mut items, key, json!({ "type": t }))?;
            } else {
                push(&mut items, key, field.clone())?;
            }
        } else if let Some(first) = field
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            // anyOf, oneOf...: the first alternative, made nullable.
            let t = first.get("type").and_then(Value::as_str);
            if let Some(t @ ("string" | "array" | "object")) = t {
                let mut f = first.clone();
                f["type"] = json!(["null", t]);
                push(&mut items, key, f)?;
            }
        } else {
            push(&mut items, key, json!({"type": ["null", "string"]}))?;
        }
    }
    Ok(items)
}

/// The SDK's `flatten_record`: an object whose flattened name is not a
/// property of the flattened schema is opened (above the max depth);
/// every other object or array is written as a JSON string.
pub fn flatten_record<'a>(
    fields: Vec<(std::borrow::Cow<'a, str>, Out<'a>)>,
    schema_props: &Map<String, Value>,
    max_level: usize,
) -> Vec<(std::borrow::Cow<'a, str>, Out<'a>)> {
    let mut out = Vec::with_capacity(fields.len());
    let mut parents = Vec::new();
    flatten_fields(fields, schema_props, &mut parents, 0, max_level, &mut out);
    out
}

fn flatten_fields<'a>(
    fields: Vec<(std::borrow::Cow<'a, str>, Out<'a>)>,
    schema_props: &Map<String, Value>,
    parents: &mut Vec<String>,
    level: usize,
    max_level: usize,
    out: &mut Vec<(std::borrow::Cow<'a, str>, Out<'a>)>,
) {
    for (name, value) in fields {
        let key = if parents.is_empty() && name.len() < MAX_KEY_LENGTH {
            name.clone()
        } else {
            flatten_key(&name, parents).into()
        };
        let is_object = match &value {
            Out::Member(_, r) | Out::Raw(r) => r.starts_with('{'),
            Out::Val(Val::Dict(_)) => true,
            Out::Val(_) => false,
        };
        if is_object && !schema_props.contains_key(key.as_ref()) && level < max_level {
            let inner: Vec<(std::borrow::Cow<'a, str>, Out<'a>)> = match value {
                Out::Member(_, r) | Out::Raw(r) => record::members(r)
                    .into_iter()
                    .map(|m| (m.name, Out::Raw(m.value)))
                    .collect(),
                Out::Val(Val::Dict(d)) => d
                    .iter()
                    .map(|(k, v)| {
                        let k = match k {
                            Val::Str(s) => s.to_string(),
                            other => other.to_str(),
                        };
                        (k.into(), Out::Val(v.clone()))
                    })
                    .collect(),
                Out::Val(_) => unreachable!("objects only"),
            };
            parents.push(name.into_owned());
            flatten_fields(inner, schema_props, parents, level + 1, max_level, out);
            parents.pop();
            continue;
        }
        let value = match value {
            Out::Member(_, r) | Out::Raw(r) if r.starts_with('{') || r.starts_with('[') => {
                let mut s = String::new();
                raw_to_py_json(r, &mut s);
                Out::Val(Val::str(s))
            }
            Out::Val(v @ (Val::Dict(_) | Val::List(_) | Val::Tuple(_))) => {
                let mut s = String::new();
                match py_json(&v, true, &mut s) {
                    Ok(()) => Out::Val(Val::str(s)),
                    Err(_) => Out::Val(v),
                }
            }
            other => other,
        };
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested() -> Value {
        json!({"type": "object", "properties": {
            "id": {"type": "string"},
            "foo": {"type": ["object", "null"], "properties": {
                "bar": {"type": ["object", "null"], "properties": {
                    "baz": {"type": ["object", "null"], "properties": {"qux": {"type": "string"}}}}}}},
            "free": {"type": ["object", "null"]},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "any": {}
        }})
    }

    #[test]
    fn schemas_flatten_as_the_sdks_doctests_say() {
        let p = |lvl| flatten_schema(&nested(), lvl).unwrap()["properties"].clone();
        assert_eq!(
            p(1),
            json!({"id": {"type": "string"}, "foo__bar": {"type": ["string", "null"]},
                   "free": {"type": ["string", "null"]}, "tags": {"type": ["string", "null"]},
                   "any": {"type": ["null", "string"]}})
        );
        assert_eq!(p(2)["foo__bar__baz"], json!({"type": ["string", "null"]}));
        assert_eq!(p(3)["foo__bar__baz__qux"], json!({"type": "string"}));
    }

    #[test]
    fn records_flatten_with_json_strings_below_the_depth() {
        let schema = flatten_schema(&nested(), 1).unwrap();
        let raw = r#"{"id":"a","foo":{"bar":{"baz":{"qux":"é"}}},"free":{"a":[1,2.50]},"tags":["x"],"n":null}"#;
        let fields = record::members(raw)
            .into_iter()
            .map(|m| (m.name, Out::Raw(m.value)))
            .collect();
        let flat = flatten_record(fields, schema["properties"].as_object().unwrap(), 1);
        let mut out = Vec::new();
        record::write_object(&flat, raw, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"a","foo__bar":"{\"baz\":{\"qux\":\"\\u00e9\"}}","free":"{\"a\":[1,2.50]}","tags":"[\"x\"]","n":null}"#
        );
    }

    #[test]
    fn long_keys_are_shortened_as_the_sdk_does() {
        let parent = "a_very_long_parent_name".repeat(12);
        let k = flatten_key("child", &[parent]);
        // Both as singer-sdk 0.54.9's flatten_key gives them.
        assert_eq!(
            k,
            "avlpnvlpnvlpnvlpnvlpnvlpnvlpnvlpnvlpnvlpnvlpnvlpn__child"
        );
        let k = flatten_key("child_name_x", &["a".repeat(130), "Bb_cc".repeat(30)]);
        assert_eq!(k, format!("aaa__{}__child_name_x", "Bb_cc".repeat(30)));
    }
}
