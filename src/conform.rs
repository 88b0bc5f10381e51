//! From a page's bytes to RECORD lines, in one parse.
//!
//! A page is parsed once into records of `(key, raw value)` pairs: values stay
//! borrowed slices of the body (`RawValue`), so free-form JSON (`formData`,
//! `customData`, ...) is copied to the output byte for byte, never built into
//! a tree and serialised again. Each field is then conformed to its schema
//! type: canonical dates are copied as they are, other date forms normalised,
//! populated references reduced to their id, and fields the schema does not
//! know dropped and reported once per stream (schema drift).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::streams::{Shape, StreamDef};
use crate::timefmt;

/// How a field's values are conformed, derived from its JSON Schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    /// A string; a populated reference object becomes its `_id`/`id`.
    Str,
    DateTime,
    Int,
    Num,
    Bool,
    /// Free-form JSON object, copied raw.
    Object,
    /// Free-form JSON array, copied raw.
    Array,
    /// An array of strings (ids or tags); populated objects become their id.
    StrArray,
}

impl FieldKind {
    fn of(schema: &Value) -> FieldKind {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if schema["format"] == "date-time" {
            FieldKind::DateTime
        } else if types.contains(&"object") {
            FieldKind::Object
        } else if types.contains(&"array") {
            if schema["items"]["type"] == "string" {
                FieldKind::StrArray
            } else {
                FieldKind::Array
            }
        } else if types.contains(&"integer") {
            FieldKind::Int
        } else if types.contains(&"number") {
            FieldKind::Num
        } else if types.contains(&"boolean") {
            FieldKind::Bool
        } else {
            FieldKind::Str
        }
    }
}

/// One record as the API sent it: its fields in order, values unparsed.
/// `None` when the array element was not an object at all.
pub struct RawRecord<'a>(Option<Vec<(Cow<'a, str>, &'a RawValue)>>);

impl<'de> Deserialize<'de> for RawRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRecord<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(40));
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    fields.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawRecord(Some(fields)))
            }
            // Anything else in the array is kept as "not a record" so the
            // rest of the page survives; the caller counts and reports it.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawRecord(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawRecord(None))
            }
        }
        d.deserialize_any(V)
    }
}

pub struct ParsedPage<'a> {
    pub records: Vec<RawRecord<'a>>,
    pub total: Option<u64>,
}

/// Finds the records in a body of the stream's documented shape. A body of
/// another shape is an error (the caller retries it, then gives up).
pub fn parse_page<'a>(body: &'a str, def: &StreamDef) -> Result<ParsedPage<'a>, String> {
    let first = body.trim_start().as_bytes().first().copied();
    let err = |e: serde_json::Error| e.to_string();
    match (def.shape, first) {
        (_, None) => Err("empty body".into()),
        (Shape::Array | Shape::ArrayOrWrapped, Some(b'[')) => Ok(ParsedPage {
            records: serde_json::from_str(body).map_err(err)?,
            total: None,
        }),
        (Shape::Object { records }, Some(b'{')) => {
            let mut de = serde_json::Deserializer::from_str(body);
            let page = ObjectPage {
                records_key: records,
                total_key: def.total_field,
            }
            .deserialize(&mut de)
            .map_err(err)?;
            de.end().map_err(err)?;
            page.ok_or_else(|| format!("an object without the \"{records}\" array"))
        }
        (Shape::ArrayOrWrapped, Some(b'{')) => {
            let map: HashMap<Cow<str>, &RawValue> = serde_json::from_str(body).map_err(err)?;
            let arrays: Vec<(&Cow<str>, &&RawValue)> = map
                .iter()
                .filter(|(_, v)| v.get().starts_with('['))
                .collect();
            const LIKELY: [&str; 5] = ["responses", "items", "data", "results", "surveyResponses"];
            let chosen = LIKELY
                .iter()
                .find_map(|k| map.get(*k).filter(|v| v.get().starts_with('[')))
                .or(if arrays.len() == 1 {
                    Some(arrays[0].1)
                } else {
                    None
                })
                .ok_or("an object without a single array of records")?;
            Ok(ParsedPage {
                records: serde_json::from_str(chosen.get()).map_err(err)?,
                total: None,
            })
        }
        (Shape::Array, Some(_)) => Err("expected a JSON array".into()),
        (Shape::Object { .. }, Some(_)) => Err("expected a JSON object".into()),
        (Shape::ArrayOrWrapped, Some(_)) => Err("expected a JSON array or object".into()),
    }
}

/// Reads `{"<records_key>": [...], "<total_key>": N, ...}` in one pass.
struct ObjectPage {
    records_key: &'static str,
    total_key: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for ObjectPage {
    type Value = Option<ParsedPage<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectPage {
    type Value = Option<ParsedPage<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a \"{}\" array", self.records_key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        let mut total = None;
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if k == self.records_key {
                records = Some(map.next_value::<Vec<RawRecord<'de>>>()?);
            } else if Some(k.as_ref()) == self.total_key {
                total = map.next_value::<Option<u64>>().ok().flatten();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(records.map(|records| ParsedPage { records, total }))
    }
}

/// What the pager needs to know of a record.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    /// The replication key as epoch milliseconds, when the record has a valid one.
    pub updated_ms: Option<i64>,
}

/// Conforms one stream's records to its (selected) schema.
pub struct Conformer {
    stream: &'static str,
    key: &'static str,
    replication_key: Option<&'static str>,
    fields: HashMap<String, FieldKind>,
    /// Schema fields the catalog deselected, and fields deliberately left out:
    /// dropped without a drift warning.
    quiet: HashSet<String>,
    /// Problems already reported, so each is logged once per stream.
    reported: HashSet<String>,
    /// `{"type":"RECORD","stream":"<name>","record":{`
    prefix: Vec<u8>,
    /// The parent id field of a child stream, written into every record.
    child_field: Option<&'static str>,
}

impl Conformer {
    pub fn new(def: &'static StreamDef, selected: &[String]) -> Conformer {
        let full = crate::catalog::schema_of(def);
        let props = full["properties"].as_object().cloned().unwrap_or_default();
        let fields: HashMap<String, FieldKind> = props
            .iter()
            .filter(|(k, _)| selected.contains(k))
            .map(|(k, v)| (k.clone(), FieldKind::of(v)))
            .collect();
        let mut quiet: HashSet<String> = props
            .keys()
            .filter(|k| !fields.contains_key(*k))
            .cloned()
            .collect();
        quiet.extend(def.ignored_fields.iter().map(|s| s.to_string()));
        let mut prefix = br#"{"type":"RECORD","stream":"#.to_vec();
        write_json_str(&mut prefix, def.name);
        prefix.extend_from_slice(br#","record":{"#);
        Conformer {
            stream: def.name,
            key: def.key,
            replication_key: def.replication_key,
            fields,
            quiet,
            reported: HashSet::new(),
            prefix,
            child_field: def.parent.map(|p| p.child_field),
        }
    }

    fn report(&mut self, what: String) {
        if self.reported.insert(what.clone()) {
            tracing::warn!(stream = self.stream, "{what}");
        }
    }

    /// Counts and reports (once) an element that cannot be a record: not an
    /// object, or without `id` and `_id`. It cannot be keyed in a warehouse.
    pub fn skip_without_id(&mut self, stats: &crate::metrics::StreamStats) {
        stats
            .skipped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.report("a record without an id (or not an object) was skipped; further ones are counted in the summary".into());
    }

    /// The record's id and replication key value. `None` (with a report)
    /// when it has no usable id: such a record cannot be keyed in a warehouse.
    pub fn meta(&mut self, rec: &RawRecord) -> Option<Meta> {
        let fields = rec.0.as_ref()?;
        let raw_id = fields
            .iter()
            .find(|(k, _)| k == self.key)
            .or_else(|| fields.iter().find(|(k, _)| k == "_id"))
            .map(|(_, v)| *v);
        let id = match raw_id.map(|v| serde_json::from_str::<Value>(v.get())) {
            Some(Ok(Value::String(s))) if !s.is_empty() => s,
            Some(Ok(Value::Number(n))) => n.to_string(),
            _ => return None,
        };
        let updated_ms = self.replication_key.and_then(|rk| {
            let (_, v) = fields.iter().find(|(k, _)| k == rk)?;
            instant_ms(v.get())
        });
        Some(Meta { id, updated_ms })
    }

    /// Appends one RECORD line to `out`.
    pub fn write_record(
        &mut self,
        rec: &RawRecord,
        parent_id: Option<&str>,
        tail: &[u8],
        out: &mut Vec<u8>,
    ) {
        let Some(fields) = rec.0.as_ref() else { return };
        out.extend_from_slice(&self.prefix);
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if let (Some(cf), Some(pid)) = (self.child_field, parent_id) {
            sep(out);
            write_json_str(out, cf);
            out.push(b':');
            write_json_str(out, pid);
        }
        let has_key = fields.iter().any(|(k, _)| k == self.key);
        for (k, v) in fields {
            // A record with `_id` but no `id` gets its id from `_id`.
            let name: &str = if !has_key && k == "_id" { self.key } else { k };
            let Some(&kind) = self.fields.get(name) else {
                if !self.quiet.contains(name) && Some(name) != self.child_field {
                    self.report(format!(
                        "schema drift: field \"{name}\" is not in the schema and is dropped"
                    ));
                }
                continue;
            };
            if Some(name) == self.child_field {
                continue;
            }
            sep(out);
            write_json_str(out, name);
            out.push(b':');
            if let Err(problem) = conform_value(kind, v.get(), out) {
                self.report(format!("field \"{name}\": {problem}"));
            }
        }
        out.push(b'}');
        out.extend_from_slice(tail);
    }
}

/// Writes `raw` conformed to `kind`. On a value that cannot be conformed it
/// writes `null` and says why (the record itself is kept).
fn conform_value(kind: FieldKind, raw: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let b = raw.as_bytes();
    let first = b.first().copied().unwrap_or(b'n');
    if first == b'n' {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let fail = |out: &mut Vec<u8>, why: String| {
        out.extend_from_slice(b"null");
        Err(why)
    };
    match kind {
        FieldKind::Str => match first {
            b'"' => out.extend_from_slice(b),
            b'{' => match reference_id(raw) {
                Some(id) => write_json_str(out, &id),
                None => write_json_str(out, raw),
            },
            _ => write_json_str(out, raw),
        },
        FieldKind::DateTime => {
            if first == b'"' && b.len() == 26 && timefmt::is_canonical(&b[1..25]) {
                out.extend_from_slice(b);
            } else {
                match instant_ms(raw).and_then(timefmt::format_epoch_ms) {
                    Some(t) => write_json_str(out, &t),
                    None => {
                        return fail(out, format!("{} is not a date; written as null", cut(raw)))
                    }
                }
            }
        }
        FieldKind::Int => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => out.extend_from_slice(b),
            Ok(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    out.extend_from_slice((f as i64).to_string().as_bytes())
                }
                _ => {
                    return fail(
                        out,
                        format!("{} is not a whole number; written as null", cut(raw)),
                    )
                }
            },
            Ok(Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(n) => out.extend_from_slice(n.to_string().as_bytes()),
                Err(_) => {
                    return fail(
                        out,
                        format!("{} is not a whole number; written as null", cut(raw)),
                    )
                }
            },
            _ => {
                return fail(
                    out,
                    format!("{} is not a whole number; written as null", cut(raw)),
                )
            }
        },
        FieldKind::Num => match first {
            b'-' | b'0'..=b'9' => out.extend_from_slice(b),
            b'"' => match serde_json::from_str::<String>(raw)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite())
            {
                Some(f) => out.extend_from_slice(
                    serde_json::Number::from_f64(f)
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                        .as_bytes(),
                ),
                None => {
                    return fail(
                        out,
                        format!("{} is not a number; written as null", cut(raw)),
                    )
                }
            },
            _ => {
                return fail(
                    out,
                    format!("{} is not a number; written as null", cut(raw)),
                )
            }
        },
        FieldKind::Bool => match raw {
            "true" | "false" => out.extend_from_slice(b),
            "\"true\"" | "1" => out.extend_from_slice(b"true"),
            "\"false\"" | "0" => out.extend_from_slice(b"false"),
            _ => {
                return fail(
                    out,
                    format!("{} is not a boolean; written as null", cut(raw)),
                )
            }
        },
        FieldKind::Object | FieldKind::Array => {
            let want = if kind == FieldKind::Object {
                b'{'
            } else {
                b'['
            };
            if first == want {
                out.extend_from_slice(b);
            } else if let Some(inner) = embedded_json(raw, want) {
                // The API sometimes sends JSON as a string holding JSON.
                out.extend_from_slice(inner.get().as_bytes());
            } else {
                // Keep the value, in the shape the schema promises.
                if kind == FieldKind::Object {
                    out.extend_from_slice(b"{\"value\":");
                    out.extend_from_slice(b);
                    out.push(b'}');
                } else {
                    out.push(b'[');
                    out.extend_from_slice(b);
                    out.push(b']');
                }
                return Err(format!(
                    "expected JSON {}, got {}; wrapped",
                    if want == b'{' { "object" } else { "array" },
                    cut(raw)
                ));
            }
        }
        FieldKind::StrArray => match serde_json::from_str::<Vec<&RawValue>>(raw) {
            Ok(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    // Cannot fail for Str: every value has a string form.
                    let _ = conform_value(FieldKind::Str, item.get(), out);
                }
                out.push(b']');
            }
            Err(_) => {
                out.push(b'[');
                let _ = conform_value(FieldKind::Str, raw, out);
                out.push(b']');
                return Err(format!("expected an array, got {}; wrapped", cut(raw)));
            }
        },
    }
    Ok(())
}

/// The id of a populated reference: `{"_id": "...", "email": ...}`.
fn reference_id(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "_id")]
        underscore: Option<String>,
        id: Option<String>,
    }
    let r: Ref = serde_json::from_str(raw).ok()?;
    r.underscore.or(r.id)
}

fn embedded_json(raw: &str, want: u8) -> Option<Box<RawValue>> {
    let s: String = serde_json::from_str(raw).ok()?;
    if s.trim_start().as_bytes().first() != Some(&want) {
        return None;
    }
    serde_json::from_str::<Box<RawValue>>(s.trim()).ok()
}

/// A date value (string in any usual form, or epoch number) as epoch ms.
pub fn instant_ms(raw: &str) -> Option<i64> {
    let b = raw.as_bytes();
    match b.first()? {
        b'"' => {
            if b.len() == 26 && timefmt::is_canonical(&b[1..25]) {
                return canonical_ms(&b[1..25]);
            }
            let s: Cow<str> = serde_json::from_str(raw).ok()?;
            timefmt::parse_instant(&s).map(|t| t.timestamp_millis())
        }
        b'-' | b'0'..=b'9' => {
            timefmt::from_epoch_number(raw.parse::<f64>().ok()?).map(|t| t.timestamp_millis())
        }
        _ => None,
    }
}

/// Epoch milliseconds of a canonical timestamp, without a general parser.
fn canonical_ms(s: &[u8]) -> Option<i64> {
    let n = |a: usize, b: usize| {
        s[a..b]
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let date = chrono::NaiveDate::from_ymd_opt(n(0, 4) as i32, n(5, 7) as u32, n(8, 10) as u32)?;
    let t = date.and_hms_milli_opt(
        n(11, 13) as u32,
        n(14, 16) as u32,
        n(17, 19) as u32,
        n(20, 23) as u32,
    )?;
    Some(t.and_utc().timestamp_millis())
}

pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, straight into the buffer.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A value shown in a warning, cut short.
fn cut(raw: &str) -> String {
    if raw.len() > 40 {
        let end = (0..=40)
            .rev()
            .find(|&i| raw.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &raw[..end])
    } else {
        raw.to_string()
    }
}

/// `,"time_extracted":"...","version":N}` + newline: the part of a RECORD
/// line after the record, the same for a whole page.
pub fn record_tail(time_extracted: &str, version: Option<i64>) -> Vec<u8> {
    let mut tail = Vec::with_capacity(64);
    if let Some(v) = version {
        let _ = write!(tail, ",\"version\":{v}");
    }
    tail.extend_from_slice(b",\"time_extracted\":");
    write_json_str(&mut tail, time_extracted);
    tail.extend_from_slice(b"}\n");
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams;

    fn conform(kind: FieldKind, raw: &str) -> (String, bool) {
        let mut out = Vec::new();
        let ok = conform_value(kind, raw, &mut out).is_ok();
        (String::from_utf8(out).unwrap(), ok)
    }

    #[test]
    fn values_are_conformed_to_their_schema_type() {
        assert_eq!(
            conform(FieldKind::Str, r#""a\"b""#),
            (r#""a\"b""#.into(), true)
        );
        assert_eq!(
            conform(FieldKind::Str, r#"{"_id":"abc","email":"x"}"#),
            (r#""abc""#.into(), true)
        );
        assert_eq!(conform(FieldKind::Str, "12"), (r#""12""#.into(), true));
        assert_eq!(
            conform(FieldKind::DateTime, r#""2024-01-15T10:30:00.000Z""#).0,
            r#""2024-01-15T10:30:00.000Z""#
        );
        assert_eq!(
            conform(FieldKind::DateTime, r#""2024-01-15T10:30:00""#).0,
            r#""2024-01-15T10:30:00.000Z""#
        );
        assert_eq!(
            conform(FieldKind::DateTime, "1705314600000").0,
            r#""2024-01-15T10:30:00.000Z""#
        );
        assert_eq!(
            conform(FieldKind::DateTime, r#""never""#),
            ("null".into(), false)
        );
        assert_eq!(conform(FieldKind::Int, "3.0"), ("3".into(), true));
        assert_eq!(conform(FieldKind::Int, r#""42""#), ("42".into(), true));
        assert_eq!(conform(FieldKind::Int, "3.5"), ("null".into(), false));
        assert_eq!(conform(FieldKind::Num, r#""2.5""#), ("2.5".into(), true));
        assert_eq!(conform(FieldKind::Bool, r#""true""#), ("true".into(), true));
        assert_eq!(
            conform(FieldKind::Object, r#"{"a":[1,{"b":null}]}"#),
            (r#"{"a":[1,{"b":null}]}"#.into(), true)
        );
        assert_eq!(
            conform(FieldKind::Object, r#""{\"a\":1}""#),
            (r#"{"a":1}"#.into(), true)
        );
        assert_eq!(
            conform(FieldKind::Object, r#""plain""#),
            (r#"{"value":"plain"}"#.into(), false)
        );
        assert_eq!(
            conform(FieldKind::Array, r#"{"x":1}"#),
            (r#"[{"x":1}]"#.into(), false)
        );
        assert_eq!(
            conform(FieldKind::StrArray, r#"["a",{"_id":"b"}]"#),
            (r#"["a","b"]"#.into(), true)
        );
        assert_eq!(conform(FieldKind::Str, "null"), ("null".into(), true));
    }

    #[test]
    fn pages_of_every_documented_shape() {
        let tickets = streams::find("tickets").unwrap();
        let p = parse_page(
            r#"{"count":1,"tickets":[{"id":"a"}],"totalCount":7}"#,
            tickets,
        )
        .unwrap();
        assert_eq!((p.records.len(), p.total), (1, Some(7)));
        assert!(parse_page("[]", tickets).is_err());
        assert!(parse_page(r#"{"error":"x"}"#, tickets).is_err());
        assert!(
            parse_page(r#"{"tickets":[{"id":"a"}"#, tickets).is_err(),
            "truncated"
        );
        let responses = streams::find("survey_responses").unwrap();
        assert_eq!(
            parse_page(r#"[{"id":"a"},{"id":"b"}]"#, responses)
                .unwrap()
                .records
                .len(),
            2
        );
        assert_eq!(
            parse_page(r#"{"responses":[{"id":"a"}],"count":1}"#, responses)
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(
            parse_page(r#"{"whatever":[{"id":"a"}]}"#, responses)
                .unwrap()
                .records
                .len(),
            1
        );
        let sessions = streams::find("sessions").unwrap();
        assert!(parse_page("<html>oops</html>", sessions).is_err());
        assert!(parse_page("", sessions).is_err());
        let p = parse_page(r#"[{"id":"a"}, 5, null, "x"]"#, sessions).unwrap();
        assert_eq!(p.records.iter().filter(|r| r.0.is_none()).count(), 3);
    }

    #[test]
    fn records_keep_known_fields_take_id_from_underscore_id_and_drop_drift() {
        let def = streams::find("survey_responses").unwrap();
        let schema = crate::catalog::schema_of(def);
        let fields: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut c = Conformer::new(def, &fields);
        let page = parse_page(
            r#"[{"_id":"r1","survey":"s1","session":{"_id":"u1"},"responses":{"q":"a"},"newField":1,"updatedAt":"2024-01-15T10:30:00Z"}]"#,
            def,
        )
        .unwrap();
        let meta = c.meta(&page.records[0]).unwrap();
        assert_eq!(meta.id, "r1");
        assert_eq!(meta.updated_ms, Some(1_705_314_600_000));
        let mut out = Vec::new();
        c.write_record(
            &page.records[0],
            Some("s1"),
            &record_tail("2024-01-01T00:00:00.000Z", None),
            &mut out,
        );
        let line: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"type":"RECORD","stream":"survey_responses","time_extracted":"2024-01-01T00:00:00.000Z",
                "record":{"survey_id":"s1","id":"r1","session":"u1","responses":{"q":"a"},"updatedAt":"2024-01-15T10:30:00.000Z"}})
        );
        assert!(c.reported.iter().any(|r| r.contains("newField")));
        assert!(!c.reported.iter().any(|r| r.contains("\"survey\"")));
    }
}
