//! Stream maps and schema flattening, with the Meltano SDK's config and
//! semantics (`stream_maps`, `stream_map_config`, `flattening_enabled`,
//! `flattening_max_depth`), in Rust.
//!
//! - `expr`: the expression syntax (Python's, as simpleeval reads it);
//!   `eval`: checking names when the config is loaded, and evaluating with
//!   Python's semantics; `value`, `dates`: Python's values, `datetime`.
//!   `builtin`: the functions and modules an expression can name.
//! - `stream_map`: the SDK's stream maps (`__alias__`, `__source__`,
//!   `__filter__`, `__else__`, `__key_properties__`), their SCHEMA and
//!   records; `flatten`: the SDK's flattening.
//! - `record`: a RECORD's fields cut from the line, parsed only when read.
//!
//! `Mapper::new` builds everything before any request, so that every
//! problem the SDK would meet at run time for lack of a name, and every
//! construct outside the subset, is a config error naming the stream, the
//! property and the construct. With no maps and no flattening there is no
//! `Mapper`, and the writer's path is what it was. With one, the writer
//! hands it each batch: RECORD lines are cut into fields, mapped and
//! written again (fields no expression touched are copied byte for byte);
//! SCHEMA and ACTIVATE_VERSION lines follow their stream's maps; STATE
//! lines pass unchanged (bookmarks stay keyed by the tap's stream names).

pub mod builtin;
pub mod dates;
pub mod eval;
pub mod expr;
pub mod flatten;
pub mod record;
pub mod stream_map;
pub mod value;

use serde_json::{Map, Value};

use crate::catalog::Selected;
use crate::error::Error;
use crate::streams::{StreamDef, STREAMS};
use stream_map::{Kind, Source, StreamMap};
use value::{write_json_str, Val};

/// The four settings, as given.
#[derive(Clone, Debug, Default)]
pub struct MapSettings {
    pub stream_maps: Option<Map<String, Value>>,
    pub stream_map_config: Option<Map<String, Value>>,
    pub flattening_enabled: bool,
    pub flattening_max_depth: Option<i64>,
}

/// The maps of one of the tap's streams.
struct StreamMaps {
    stream: String,
    maps: Vec<StreamMap>,
    /// `{"type":"RECORD","stream":"<alias>","record":` for each map.
    prefixes: Vec<Vec<u8>>,
    /// Lines of this stream go out unchanged.
    unchanged: bool,
    /// The members the maps read (`None`: all of them).
    needed: Option<Vec<String>>,
    /// The tap's schema the maps were made for: a SCHEMA line of the
    /// stream with another one (new fields, `evolve.rs`) makes them again.
    source: Value,
}

pub struct Mapper {
    streams: Vec<StreamMaps>,
    config: Val,
    /// What makes a stream's maps again for another schema.
    build: Build,
}

/// The settings every stream's maps are made from.
struct Build {
    maps: Map<String, Value>,
    flatten: Option<usize>,
    remove_others: bool,
    config_keys: Vec<String>,
}

fn cfg(msg: String) -> Error {
    Error::Config(msg)
}

impl Mapper {
    /// The mapper for this config and catalog; `None` when nothing is to be
    /// mapped or flattened. Every error is a config error.
    pub fn new(settings: &MapSettings, selected: &[Selected]) -> Result<Option<Mapper>, Error> {
        let flatten = match (settings.flattening_enabled, settings.flattening_max_depth) {
            (true, None) => {
                return Err(cfg(
                    "\"flattening_max_depth\" is required when \"flattening_enabled\" is true (1 flattens one level of nested objects)".into(),
                ))
            }
            (true, Some(d)) if d > 0 => Some(d as usize),
            _ => None,
        };
        let empty = Map::new();
        let maps = settings.stream_maps.as_ref().unwrap_or(&empty);
        if maps.is_empty() && flatten.is_none() {
            return Ok(None);
        }
        let config_map = settings.stream_map_config.clone().unwrap_or_default();
        let config_keys: Vec<String> = config_map.keys().cloned().collect();
        let config = Val::from_json(&Value::Object(config_map));

        let mut remove_others = false;
        for (k, v) in maps {
            if k == "__else__" {
                if stream_map_null(v) {
                    remove_others = true;
                } else {
                    return Err(cfg(format!(
                        "stream_maps: \"__else__\" can only be null (or \"__NULL__\"), to leave out the streams not named; got {v}"
                    )));
                }
            } else if k.starts_with("__") {
                return Err(cfg(format!(
                    "stream_maps: option '{k}: {v}' is not expected"
                )));
            }
        }
        // Every map must name a stream the tap has: a misspelt name would
        // otherwise let data through unmapped (the SDK ignores it).
        let names: Vec<&str> = STREAMS.iter().map(|s| s.name).collect();
        for (k, v) in maps.iter().filter(|(k, _)| !k.starts_with("__")) {
            let source = match v.get("__source__") {
                Some(Value::String(s)) => s.as_str(),
                Some(other) => {
                    return Err(cfg(format!(
                        "stream_maps: stream '{k}', property '__source__': expected a stream name, got {other}"
                    )))
                }
                None => k.as_str(),
            };
            if let Some(a) = v.get("__alias__").filter(|a| !a.is_string()) {
                return Err(cfg(format!(
                    "stream_maps: stream '{k}', property '__alias__': expected a stream name, got {a}"
                )));
            }
            if !names.iter().any(|n| stream_map::fnmatch(n, source)) {
                return Err(cfg(format!(
                    "stream_maps: stream '{source}': the tap has no such stream (its streams: {})",
                    names.join(", ")
                )));
            }
        }

        let build = Build {
            maps: maps.clone(),
            flatten,
            remove_others,
            config_keys,
        };
        let mut streams = Vec::new();
        for def in STREAMS {
            let schema = match selected.iter().find(|s| s.def.name == def.name) {
                Some(s) => s.schema.clone(),
                None => crate::catalog::schema_of(def),
            };
            streams.push(build.stream(def, schema)?);
        }
        Ok(Some(Mapper {
            streams,
            config,
            build,
        }))
    }

    fn of(&self, stream: &str) -> Option<&StreamMaps> {
        self.streams
            .iter()
            .find(|s| s.stream == stream && !s.unchanged)
    }

    /// The SCHEMA a map sends, as `(stream, schema, key properties)`, for
    /// each map of `stream` that sends anything.
    pub fn schemas(&self, stream: &str) -> Vec<(String, Value, Vec<String>)> {
        match self.streams.iter().find(|s| s.stream == stream) {
            Some(s) => s
                .maps
                .iter()
                .filter(|m| !matches!(m.kind, Kind::Remove))
                .map(|m| {
                    (
                        m.alias.clone(),
                        m.schema.clone(),
                        m.key_properties.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            None => Vec::new(),
        }
    }

    /// Maps a batch of Singer lines into `out`. An error is one line naming
    /// the stream, the property and what went wrong (with the record's id).
    pub fn map_lines(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut rest = input;
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            self.map_line(&rest[..end], out)?;
            rest = &rest[end..];
        }
        Ok(())
    }

    fn map_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        const RECORD: &[u8] = br#"{"type":"RECORD","stream":""#;
        if let Some(rest) = line.strip_prefix(RECORD) {
            let Some(end) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err("internal: a RECORD line without its stream".into());
            };
            if rest[end] != b'"' {
                return Err("internal: a RECORD line whose stream name holds escapes".into());
            }
            let stream = simdutf8::basic::from_utf8(&rest[..end])
                .map_err(|_| "internal: a stream name that is not UTF-8".to_string())?;
            let Some(maps) = self.of(stream) else {
                out.extend_from_slice(line);
                return Ok(());
            };
            let after = &rest[end + 1..];
            let Some(body) = after.strip_prefix(br#","record":"#) else {
                return Err("internal: a RECORD line without \"record\" after \"stream\"".into());
            };
            let text = simdutf8::basic::from_utf8(body)
                .map_err(|_| "internal: a RECORD line that is not UTF-8".to_string())?;
            // The record ends where the line's tail (`,"time_extracted":...`,
            // written after it) begins: found from the end, without reading
            // the record through.
            let rec_end = memchr::memmem::rfind(body, br#","time_extracted":"#)
                .filter(|&at| at > 0 && body[at - 1] == b'}')
                .unwrap_or_else(|| record::value_end(body, 0));
            let (rec, tail) = (&text[..rec_end], &body[rec_end..]);
            let members = record::members_until(rec, maps.needed.as_deref());
            for (m, prefix) in maps.maps.iter().zip(&maps.prefixes) {
                let mark = out.len();
                out.extend_from_slice(prefix);
                if m.write(&members, rec, &self.config, out)? {
                    out.extend_from_slice(tail);
                } else {
                    out.truncate(mark);
                }
            }
            return Ok(());
        }
        let is = |t: &str| line.starts_with(format!("{{\"type\":\"{t}\"").as_bytes());
        if is("SCHEMA") || is("ACTIVATE_VERSION") {
            let msg: Value = serde_json::from_slice(line).map_err(|e| format!("internal: {e}"))?;
            let stream = msg["stream"].as_str().unwrap_or_default();
            if is("SCHEMA") {
                self.follow_schema(stream, &msg["schema"])?;
            }
            let Some(maps) = self.of(stream) else {
                out.extend_from_slice(line);
                return Ok(());
            };
            for m in maps.maps.iter().filter(|m| !matches!(m.kind, Kind::Remove)) {
                let mut msg = msg.clone();
                msg["stream"] = Value::String(m.alias.clone());
                if is("SCHEMA") {
                    msg["schema"] = m.schema.clone();
                    msg["key_properties"] =
                        serde_json::json!(m.key_properties.clone().unwrap_or_default());
                }
                serde_json::to_writer(&mut *out, &msg).expect("a JSON value serialises");
                out.push(b'\n');
            }
            return Ok(());
        }
        out.extend_from_slice(line);
        Ok(())
    }
}

impl Build {
    /// The maps of one of the tap's streams, whose schema is `schema`.
    fn stream(&self, def: &StreamDef, schema: Value) -> Result<StreamMaps, Error> {
        let (maps, flatten, remove_others, config_keys) = (
            &self.maps,
            self.flatten,
            self.remove_others,
            &self.config_keys,
        );
        let src = Source {
            name: def.name,
            schema: &schema,
            key_properties: vec![def.key.to_string()],
        };
        let mut list = vec![StreamMap::same(&src, flatten, remove_others).map_err(cfg)?];
        for (key, val) in maps.iter().filter(|(k, _)| !k.starts_with("__")) {
            let mut source = key.clone();
            let mut alias = key.clone();
            let mut primary = true;
            let mut body = val.as_object().cloned();
            if let Some(obj) = body.as_mut() {
                if let Some(Value::String(s)) = obj.remove("__source__") {
                    source = s;
                    primary = false;
                    if obj.contains_key("__alias__") {
                        return Err(cfg(format!("stream_maps: stream '{key}': __alias__ and __source__ cannot be used together")));
                    }
                } else if let Some(Value::String(a)) = obj.remove("__alias__") {
                    alias = stream_map::eval_alias(&a, def.name).map_err(cfg)?;
                }
            }
            if def.name != source {
                if !stream_map::fnmatch(def.name, &source) {
                    continue;
                }
                if alias == source {
                    alias = def.name.to_string();
                }
            }
            let m = match (&body, val) {
                (Some(obj), _) => {
                    StreamMap::custom(&src, &alias, obj, config_keys, flatten).map_err(cfg)?
                }
                (None, v) if stream_map_null(v) => {
                    let mut m = StreamMap::same(&src, flatten, true).map_err(cfg)?;
                    m.alias = alias;
                    m
                }
                (None, Value::String(s)) => {
                    return Err(cfg(format!(
                        "stream_maps: stream '{key}': option '{s}' is not expected (a stream map is an object of properties, or null to leave the stream out)"
                    )))
                }
                (None, other) => {
                    return Err(cfg(format!(
                        "stream_maps: stream '{key}': expected an object of properties or null, got {other}"
                    )))
                }
            };
            if primary {
                list[0] = m;
            } else {
                list.push(m);
            }
        }
        let unchanged = list.len() == 1
            && matches!(list[0].kind, Kind::Same)
            && list[0].flatten.is_none()
            && list[0].alias == def.name;
        let prefixes = list
            .iter()
            .map(|m| {
                let mut p = br#"{"type":"RECORD","stream":"#.to_vec();
                write_json_str(&mut p, &m.alias);
                p.extend_from_slice(br#","record":"#);
                p
            })
            .collect();
        Ok(StreamMaps {
            stream: def.name.to_string(),
            needed: list.iter().try_fold(Vec::new(), |mut acc, m| {
                acc.extend(m.needed_members()?);
                acc.sort();
                acc.dedup();
                Some(acc)
            }),
            maps: list,
            prefixes,
            unchanged,
            source: schema,
        })
    }
}

impl Mapper {
    /// A stream's schema changed (new fields, `evolve.rs`): its maps are
    /// made again for it, so that new fields go through them as any field
    /// does (passed on, flattened, left out by `__else__`).
    fn follow_schema(&mut self, stream: &str, schema: &Value) -> Result<(), String> {
        let Some(at) = self.streams.iter().position(|s| s.stream == stream) else {
            return Ok(());
        };
        if self.streams[at].source == *schema {
            return Ok(());
        }
        let def = crate::streams::find(stream)
            .ok_or_else(|| format!("internal: a SCHEMA of unknown stream {stream}"))?;
        self.streams[at] = self
            .build
            .stream(def, schema.clone())
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn stream_map_null(v: &Value) -> bool {
    v.is_null() || v == "__NULL__"
}
