//! From a page's records to RECORD lines.
//!
//! The records come from `scan` one at a time, their fields' names and raw
//! values read straight from the body. Each field is conformed to its
//! schema type: free-form JSON (`formData`, `customData`, ...) and
//! canonical dates are copied byte for byte (runs of such fields in one
//! piece), other date forms normalised, populated references reduced to
//! their id. Fields the schema does not know follow `schema_evolution`
//! (`evolve.rs`): written as sent and added to the schema, or dropped and
//! reported once per stream (schema drift), or failing the stream.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::Value;

use crate::evolve::{types, Mode, Registry};
use crate::scan::{self, Record};
use crate::streams::StreamDef;
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

/// What the pager needs to know of a record.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    /// The replication key as epoch milliseconds, when the record has a valid one.
    pub updated_ms: Option<i64>,
    /// `createdAt`, epoch milliseconds, when the conformer `wants_created`:
    /// splits a group of records that share one `updatedAt` (`pager/ties.rs`).
    pub created_ms: Option<i64>,
    /// Bit `i` set when the record's `StreamDef::hidden[i].flag` is `true`
    /// (an archived or spam ticket).
    pub flags: u8,
    /// Bit `i` set when that flag is `false` (not merely missing).
    pub cleared: u8,
}

/// What to do with a field of a given name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Write it: index into `Conformer::fields`.
    Write(usize),
    /// Drop it quietly: deselected, deliberately left out, or the child field
    /// (which the tap writes itself).
    Quiet,
    /// Drop it: not in the schema (reported once when first met).
    Drift,
    /// Not in the schema, evolving: index into `Conformer::news`.
    New(u32),
}

/// A field the schema lacks, as this conformer last knew it from the
/// stream's `Registry`.
#[derive(Clone)]
struct Local {
    key_json: Box<[u8]>,
    /// The types the registry allows (0: not in the schema yet).
    types: u8,
    /// The registry's version that has them.
    since: u32,
}

/// A selected field: how to conform it, and `"name":` ready to copy.
#[derive(Clone)]
struct Field {
    kind: FieldKind,
    key_json: Box<[u8]>,
}

/// A field name met before: its slot, and the name that followed it in the
/// last record. Records mostly repeat one order, so the next name is
/// predicted from the previous one: a record missing a field costs one hash
/// lookup, not one for every field after it.
#[derive(Clone)]
struct Known {
    name: Box<str>,
    slot: Slot,
    next: u32,
}

/// No name: the start of a record, or a successor not yet seen.
const NO_NAME: u32 = u32::MAX;
/// After a name not remembered (past `MAX_REMEMBERED_NAMES`): nothing to predict from.
const UNREMEMBERED: u32 = u32::MAX - 1;

/// Names classified so far, beyond which new names are not remembered (a
/// server sending ever new keys must not grow memory).
const MAX_REMEMBERED_NAMES: usize = 4096;

/// Conforms one stream's records to its (selected) schema.
///
/// The hot path is per field: records of a page share their keys, mostly in
/// the same order, so each key is first compared with the name that followed
/// the previous key last time (`Known::next`); only on a miss is it looked
/// up (by hash) and classified. The `"name":` bytes are escaped once, up
/// front.
///
/// A clone conforms the same stream on another task (a slice of a walk,
/// another parent's child walk); clones share what was reported, so each
/// problem is still logged once per stream.
#[derive(Clone)]
pub struct Conformer {
    stream: &'static str,
    key: &'static str,
    replication_key: Option<&'static str>,
    fields: Vec<Field>,
    /// Every name classified so far (selected, quiet and drift names), by id.
    known: Vec<Known>,
    ids: HashMap<Box<str>, u32, FastHash>,
    /// The id of the first name of the last record.
    first: u32,
    /// Problems already reported, so each is logged once per stream.
    reported: Arc<Mutex<HashSet<String>>>,
    /// `{"type":"RECORD","stream":"<name>","record":{`
    prefix: Vec<u8>,
    /// Where the key, the replication key and `createdAt` were in the last record.
    key_at: usize,
    replication_key_at: usize,
    created_at: usize,
    /// Whether `meta` reads `createdAt` (only a tie group's reading needs it).
    pub wants_created: bool,
    /// Fields whose `true` marks a record a plain listing may hide, and
    /// where each was in the last record.
    flag_fields: Vec<(&'static str, usize)>,
    /// The parent id field of a child stream, written into every record.
    child_field: Option<&'static str>,
    /// `"<child_field>":`
    child_key_json: Vec<u8>,
    /// The stream's schema as extended by new fields, shared by its tasks.
    registry: Arc<Registry>,
    /// New fields met, by `Slot::New` index.
    news: Vec<Local>,
    /// The schema version whose SCHEMA line the current page holds.
    announced: u32,
}

impl Conformer {
    /// A conformer that drops fields the schema lacks (with a warning).
    pub fn new(def: &'static StreamDef, selected: &[String]) -> Conformer {
        Conformer::with_registry(def, selected, Registry::discard(def))
    }

    /// A conformer of a stream selected for a sync: unknown fields follow
    /// `mode`; `incremental` as the stream's SCHEMA says.
    pub fn evolving(sel: &crate::catalog::Selected, mode: Mode, incremental: bool) -> Conformer {
        let builtin = crate::catalog::schema_of(sel.def);
        let registry = Registry::new(
            sel.def,
            sel.schema.clone(),
            builtin["properties"]
                .as_object()
                .unwrap_or(&Default::default()),
            sel.deselected.clone(),
            mode,
            incremental,
        );
        Conformer::with_registry(sel.def, &sel.fields, registry)
    }

    fn with_registry(
        def: &'static StreamDef,
        selected: &[String],
        registry: Arc<Registry>,
    ) -> Conformer {
        let full = crate::catalog::schema_of(def);
        let props = full["properties"].as_object().cloned().unwrap_or_default();
        let child_field = def.parent.map(|p| p.child_field);
        let mut fields = Vec::new();
        let mut slots: Vec<(Box<str>, Slot)> = Vec::new();
        for (k, v) in &props {
            let slot = if Some(k.as_str()) == child_field || !selected.contains(k) {
                Slot::Quiet
            } else {
                let mut key_json = Vec::with_capacity(k.len() + 3);
                write_json_str(&mut key_json, k);
                key_json.push(b':');
                fields.push(Field {
                    kind: FieldKind::of(v),
                    key_json: key_json.into(),
                });
                Slot::Write(fields.len() - 1)
            };
            slots.push((k.as_str().into(), slot));
        }
        for name in def.ignored_fields.iter().copied().chain(child_field) {
            if !slots.iter().any(|(n, _)| &**n == name) {
                slots.push((name.into(), Slot::Quiet));
            }
        }
        let ids = slots
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i as u32))
            .collect();
        let known = slots
            .into_iter()
            .map(|(name, slot)| Known {
                name,
                slot,
                next: NO_NAME,
            })
            .collect();
        let mut prefix = br#"{"type":"RECORD","stream":"#.to_vec();
        write_json_str(&mut prefix, def.name);
        prefix.extend_from_slice(br#","record":{"#);
        let mut child_key_json = Vec::new();
        if let Some(cf) = child_field {
            write_json_str(&mut child_key_json, cf);
            child_key_json.push(b':');
        }
        Conformer {
            stream: def.name,
            key: def.key,
            replication_key: def.replication_key,
            fields,
            known,
            ids,
            first: NO_NAME,
            reported: Arc::default(),
            prefix,
            key_at: 0,
            replication_key_at: 0,
            created_at: 0,
            wants_created: false,
            flag_fields: def.hidden.iter().map(|h| (h.flag, 0)).collect(),
            child_field,
            child_key_json,
            registry,
            news: Vec::new(),
            announced: 0,
        }
    }

    /// A new page's lines begin: the SCHEMA lines of the last page may not
    /// reach stdout (a page can be dropped and fetched again), so records of
    /// this one with new fields are preceded by one of their own.
    pub fn begin_page(&mut self) {
        self.announced = 0;
    }

    /// Why the stream must fail (`freeze` met an unknown field), once it must.
    pub fn violation(&self) -> Option<&str> {
        self.registry.violation()
    }

    /// The stream's schema now, new fields included.
    pub fn schema(&self) -> Value {
        self.registry.schema()
    }

    fn report(&mut self, what: String) {
        let new = self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.clone());
        if new {
            tracing::warn!(stream = self.stream, "{what}");
        }
    }

    /// The slot of the field named `name`, which follows the name `prev`
    /// (`NO_NAME` for a record's first field); `prev` moves on to `name`.
    #[inline]
    fn slot(&mut self, prev: &mut u32, name: &[u8]) -> Slot {
        let predicted = match self.known.get(*prev as usize) {
            Some(k) => k.next,
            None if *prev == NO_NAME => self.first,
            None => NO_NAME,
        };
        if let Some(k) = self.known.get(predicted as usize) {
            if same(k.name.as_bytes(), name) {
                *prev = predicted;
                return k.slot;
            }
        }
        self.slot_slow(prev, name)
    }

    #[cold]
    fn slot_slow(&mut self, prev: &mut u32, name: &[u8]) -> Slot {
        // Names come from text, at character boundaries: never lossy.
        let name = String::from_utf8_lossy(name);
        let name = name.as_ref();
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let slot = self.classify_unknown(name);
                if self.known.len() >= MAX_REMEMBERED_NAMES {
                    *prev = UNREMEMBERED;
                    return match slot {
                        Slot::New(_) => {
                            self.report(format!(
                                "schema drift: field \"{name}\" is dropped: more than {MAX_REMEMBERED_NAMES} field names met"
                            ));
                            Slot::Drift
                        }
                        other => other,
                    };
                }
                let id = self.known.len() as u32;
                self.known.push(Known {
                    name: name.into(),
                    slot,
                    next: NO_NAME,
                });
                self.ids.insert(name.into(), id);
                id
            }
        };
        match self.known.get_mut(*prev as usize) {
            Some(k) => k.next = id,
            None if *prev == NO_NAME => self.first = id,
            None => {}
        }
        *prev = id;
        self.known[id as usize].slot
    }

    /// What to do with a field the schema lacks (met for the first time by
    /// this conformer): `schema_evolution` decides, but a field the catalog
    /// deselects stays out whatever it is.
    #[cold]
    fn classify_unknown(&mut self, name: &str) -> Slot {
        if self.registry.deselected.iter().any(|d| d == name) {
            return Slot::Quiet;
        }
        // Known to the registry: a field the catalog adds (in every mode),
        // or one another task of the stream added.
        if let Some(known) = self.registry.known(name) {
            return self.new_field(name, known);
        }
        match self.registry.mode {
            Mode::Evolve => self.new_field(name, (0, 0)),
            Mode::Discard => {
                self.report(format!(
                    "schema drift: field \"{name}\" is not in the schema and is dropped"
                ));
                Slot::Drift
            }
            Mode::Freeze => {
                self.registry.violate(name);
                Slot::Drift
            }
        }
    }

    /// A field the schema lacks, written: `(types, since)` as the registry
    /// knows it (`(0, 0)`: not yet).
    fn new_field(&mut self, name: &str, (types, since): (u8, u32)) -> Slot {
        if self.news.len() >= MAX_REMEMBERED_NAMES {
            return Slot::Drift;
        }
        let mut key_json = Vec::with_capacity(name.len() + 3);
        write_json_str(&mut key_json, name);
        key_json.push(b':');
        self.news.push(Local {
            key_json: key_json.into(),
            types,
            since,
        });
        Slot::New(self.news.len() as u32 - 1)
    }

    /// Whether the value `raw` of new field `i` (named `name`) is written:
    /// not when the field is not in the schema yet and the value is null.
    /// A value of a type the field's schema lacks widens it (the registry
    /// makes the new version); `needs` becomes the version the record needs.
    #[cold]
    fn admit(&mut self, i: usize, name: &[u8], raw: &[u8], needs: &mut u32) -> bool {
        let t = types::of(raw);
        let local = &self.news[i];
        if t == types::NULL && local.types == 0 {
            return false;
        }
        if !types::fits(t, local.types) {
            let name = String::from_utf8_lossy(name);
            let (types, since) = self.registry.admit(&name, t);
            let local = &mut self.news[i];
            local.types = types;
            local.since = local.since.max(since);
        }
        *needs = (*needs).max(self.news[i].since);
        true
    }

    /// Reports (once) an element that cannot be a record: not an object, or
    /// without `id` and `_id`. It cannot be keyed in a warehouse. Such
    /// elements are counted in the summary when their page is written.
    pub fn skip_without_id(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        self.report("a record without an id (or not an object) was skipped; further ones are counted in the summary".into());
    }

    /// The record's id and replication key value. `None` (with a report)
    /// when it has no usable id: such a record cannot be keyed in a warehouse.
    pub fn meta(&mut self, record: Record) -> Option<Meta> {
        let raw_id = record
            .get_near(self.key, &mut self.key_at)
            .or_else(|| record.get("_id"))?;
        let id = match raw_id.as_bytes() {
            // The usual case: a plain string, copied without a parser.
            [b'"', body @ .., b'"'] if !body.is_empty() && !body.contains(&b'\\') => {
                raw_id[1..raw_id.len() - 1].to_string()
            }
            _ => match serde_json::from_str::<Value>(raw_id) {
                Ok(Value::String(s)) if !s.is_empty() => s,
                Ok(Value::Number(n)) => n.to_string(),
                _ => return None,
            },
        };
        let (updated_ms, created_ms) = match self.replication_key {
            Some(rk) => (
                record
                    .get_near(rk, &mut self.replication_key_at)
                    .and_then(instant_ms),
                if self.wants_created {
                    record
                        .get_near("createdAt", &mut self.created_at)
                        .and_then(instant_ms)
                } else {
                    None
                },
            ),
            None => (None, None),
        };
        let (mut flags, mut cleared) = (0, 0);
        for (i, (f, at)) in self.flag_fields.iter_mut().enumerate() {
            match record.get_near(f, at) {
                Some("true") => flags |= 1 << i,
                Some("false") => cleared |= 1 << i,
                _ => {}
            }
        }
        Some(Meta {
            id,
            updated_ms,
            created_ms,
            flags,
            cleared,
        })
    }

    /// Appends one RECORD line to `out`.
    ///
    /// Fields already in their schema's form are not copied one by one: a
    /// run of consecutive such fields is copied from the page in one piece,
    /// separators and all. A run ends at a field that is dropped, renamed
    /// or changed.
    pub fn write_record(
        &mut self,
        record: Record,
        parent_id: Option<&str>,
        tail: &[u8],
        out: &mut Vec<u8>,
    ) {
        let line_start = out.len();
        out.extend_from_slice(&self.prefix);
        let mut first = true;
        if let (Some(_), Some(pid)) = (self.child_field, parent_id) {
            first = false;
            out.extend_from_slice(&self.child_key_json);
            write_json_str(out, pid);
        }
        let has_key = record.get_near(self.key, &mut self.key_at).is_some();
        let mut prev = NO_NAME;
        // The schema version this record's new fields need.
        let mut needs = 0;
        // The run of fields written as sent and not copied yet: `from..=to`.
        let mut run: Option<(usize, usize)> = None;
        for at in 0..record.len() {
            let (name, value) = (record.name_bytes(at), record.value(at));
            // A record with `_id` but no `id` gets its id from `_id`.
            let renamed = !has_key && name == b"_id";
            let name = if renamed { self.key.as_bytes() } else { name };
            let (f, kind) = match self.slot(&mut prev, name) {
                Slot::Write(f) => (f, Some(self.fields[f].kind)),
                // A new field's values are written as sent.
                Slot::New(i) if self.admit(i as usize, name, value.as_bytes(), &mut needs) => {
                    (i as usize, None)
                }
                _ => {
                    if let Some((from, to)) = run.take() {
                        out.extend_from_slice(record.members(from, to).as_bytes());
                    }
                    continue;
                }
            };
            let written_as_sent = kind.is_none_or(|kind| as_sent(kind, value.as_bytes()));
            if !renamed && record.name_as_sent(at) && written_as_sent {
                match &mut run {
                    Some((_, to)) if *to + 1 == at => *to = at,
                    _ => {
                        if let Some((from, to)) = run.take() {
                            out.extend_from_slice(record.members(from, to).as_bytes());
                        }
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        run = Some((at, at));
                    }
                }
                continue;
            }
            if let Some((from, to)) = run.take() {
                out.extend_from_slice(record.members(from, to).as_bytes());
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let Some(kind) = kind else {
                // A new field whose name was sent escaped: its value as sent.
                out.extend_from_slice(&self.news[f].key_json);
                out.extend_from_slice(value.as_bytes());
                continue;
            };
            out.extend_from_slice(&self.fields[f].key_json);
            if let Err(problem) = conform_value(kind, value, out) {
                let name = String::from_utf8_lossy(name);
                self.report(format!("field \"{name}\": {problem}"));
            }
        }
        if let Some((from, to)) = run {
            out.extend_from_slice(record.members(from, to).as_bytes());
        }
        out.push(b'}');
        if record.multiline() {
            unbreak_lines(&mut out[line_start..]);
        }
        if needs > self.announced {
            self.announce(line_start, out);
        }
        out.extend_from_slice(tail);
    }

    /// Puts the stream's SCHEMA line (marked with its version, see
    /// `evolve.rs`) before the record line that starts at `line_start`.
    #[cold]
    fn announce(&mut self, line_start: usize, out: &mut Vec<u8>) {
        let (line, version) = self.registry.line();
        out.splice(line_start..line_start, line.iter().copied());
        self.announced = version;
    }
}

/// Byte equality for short strings (field names) without a call to libc's
/// memcmp: two overlapping 8-byte words cover up to 16 bytes.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    match n {
        0..=7 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// FxHash (rustc's hasher): field names are short and not attacker-chosen
/// in any way that matters here (the map is capped), so SipHash is wasted.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// Whether `raw` (valid JSON) already has the form `kind` writes, so that
/// it is written exactly as sent.
#[inline]
fn as_sent(kind: FieldKind, raw: &[u8]) -> bool {
    match (kind, raw.first()) {
        (_, Some(b'n')) => true, // null
        (FieldKind::Str, Some(b'"')) => true,
        (FieldKind::DateTime, Some(b'"')) => raw.len() == 26 && timefmt::is_canonical(&raw[1..25]),
        (FieldKind::Int, _) => is_small_integer(raw),
        (FieldKind::Num, Some(b'-' | b'0'..=b'9')) => true,
        (FieldKind::Bool, Some(b't' | b'f')) => true, // true, false
        (FieldKind::Object, Some(b'{')) | (FieldKind::Array, Some(b'[')) => true,
        _ => false,
    }
}

/// Writes `raw` conformed to `kind`. On a value that cannot be conformed it
/// writes `null` and says why (the record itself is kept).
fn conform_value(kind: FieldKind, raw: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let b = raw.as_bytes();
    if as_sent(kind, b) {
        out.extend_from_slice(b);
        return Ok(());
    }
    // What follows is for values not in their schema's form.
    let first = b.first().copied().unwrap_or(b'n');
    let fail = |out: &mut Vec<u8>, why: String| {
        out.extend_from_slice(b"null");
        Err(why)
    };
    match kind {
        FieldKind::Str => match first {
            b'{' => match reference_id(raw) {
                Some(id) => out.extend_from_slice(id.as_bytes()),
                None => write_json_str(out, raw),
            },
            _ => write_json_str(out, raw),
        },
        FieldKind::DateTime => match instant_ms(raw).and_then(timefmt::format_epoch_ms) {
            Some(t) => write_json_str(out, &t),
            None => return fail(out, format!("{} is not a date; written as null", cut(raw))),
        },
        FieldKind::Int => {
            let whole: Option<Cow<str>> = match serde_json::from_str::<Value>(raw) {
                Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(raw.into()),
                Ok(Value::Number(n)) => n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| (f as i64).to_string().into()),
                Ok(Value::String(s)) => s.trim().parse::<i64>().ok().map(|n| n.to_string().into()),
                _ => None,
            };
            match whole {
                Some(text) => out.extend_from_slice(text.as_bytes()),
                None => {
                    return fail(
                        out,
                        format!("{} is not a whole number; written as null", cut(raw)),
                    )
                }
            }
        }
        // A number sent as a string; any other non-number is refused.
        FieldKind::Num => {
            let number = (first == b'"')
                .then(|| serde_json::from_str::<String>(raw).ok())
                .flatten()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64);
            match number {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => {
                    return fail(
                        out,
                        format!("{} is not a number; written as null", cut(raw)),
                    )
                }
            }
        }
        FieldKind::Bool => match raw {
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
            if let Some(inner) = embedded_json(raw, want) {
                // The API sometimes sends JSON as a string holding JSON,
                // which may hold line breaks between its tokens.
                let at = out.len();
                out.extend_from_slice(inner.get().as_bytes());
                unbreak_lines(&mut out[at..]);
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

/// The id of a populated reference (`{"_id": "...", "email": ...}`): its
/// `_id`, or else its `id`, as JSON string text.
fn reference_id(raw: &str) -> Option<&str> {
    let is_string = |v: &&str| v.starts_with('"');
    scan::member(raw, "_id")
        .filter(is_string)
        .or_else(|| scan::member(raw, "id").filter(is_string))
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

/// Turns line breaks into spaces in JSON text, where they can only be
/// whitespace between tokens (inside strings they are escaped): a RECORD
/// message is one line.
fn unbreak_lines(json: &mut [u8]) {
    for b in json {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
}

/// `0`, or an integer without leading zeros of at most 18 digits.
fn is_small_integer(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    matches!(digits, [b'0'] | [b'1'..=b'9', ..])
        && digits.len() <= 18
        && !(b.len() > digits.len() && digits == b"0")
        && digits.iter().all(u8::is_ascii_digit)
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
            conform(FieldKind::Object, r#""{\r\n  \"a\": 1\n}""#),
            (r#"{    "a": 1 }"#.into(), true)
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
    fn same_is_byte_equality_at_every_length() {
        let words = [
            "",
            "a",
            "b",
            "id",
            "_id",
            "title",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "bbcdefgh",
            "updatedAt",
            "processingTeam",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "bbcdefghijklmnop",
            "abcdefgXijklmnop",
            "conversationClosed",
            "conversationClosee",
        ];
        for a in words {
            for b in words {
                assert_eq!(same(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
    }

    /// Each record of `body` (a tickets page), conformed: its RECORD line.
    fn lines_of(body: &str) -> Vec<String> {
        let def = streams::find("tickets").unwrap();
        let all = crate::catalog::schema_of(def)["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        let mut c = Conformer::new(def, &all);
        let tail = record_tail("2024-01-01T00:00:00.000Z", None);
        let mut lines = Vec::new();
        scan::each_record(body, def, |record| {
            let record = record.unwrap();
            let mut out = Vec::new();
            assert!(c.meta(record).is_some());
            c.write_record(record, None, &tail, &mut out);
            lines.push(String::from_utf8(out).unwrap());
        })
        .unwrap();
        lines
    }

    /// A pretty-printed page (line breaks between tokens, inside nested
    /// values too) still gives one line per RECORD, the same as compact.
    #[test]
    fn pretty_printed_pages_give_one_line_per_record() {
        let compact = r#"{"tickets":[{"_id":"a","title":"x\ny","formData":{"k":[1,{"m":null}]},"tags":["t"],"updatedAt":"2024-01-15T10:30:00.000Z"},{"id":"b","priority":"HIGH"}],"totalCount":2}"#;
        let value: Value = serde_json::from_str(compact).unwrap();
        let pretty = serde_json::to_string_pretty(&value)
            .unwrap()
            .replace('\n', "\r\n");
        assert!(pretty.contains("\r\n      \"formData\": {\r\n"));
        let (expected, got) = (lines_of(compact), lines_of(&pretty));
        assert_eq!(got.len(), 2);
        for (want, line) in expected.iter().zip(&got) {
            assert!(
                line.ends_with('\n') && !line[..line.len() - 1].contains(['\n', '\r']),
                "{line}"
            );
            let (want, line): (Value, Value) = (
                serde_json::from_str(want).unwrap(),
                serde_json::from_str(line).unwrap(),
            );
            assert_eq!(want, line);
        }
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
        let mut out = Vec::new();
        scan::each_record(
            r#"[{"_id":"r1","survey":"s1","session":{"_id":"u1"},"responses":{"q":"a"},"newField":1,"updatedAt":"2024-01-15T10:30:00Z"}]"#,
            def,
            |record| {
                let record = record.unwrap();
                let meta = c.meta(record).unwrap();
                assert_eq!(meta.id, "r1");
                assert_eq!(meta.updated_ms, Some(1_705_314_600_000));
                c.write_record(
                    record,
                    Some("s1"),
                    &record_tail("2024-01-01T00:00:00.000Z", None),
                    &mut out,
                );
            },
        )
        .unwrap();
        let line: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"type":"RECORD","stream":"survey_responses","time_extracted":"2024-01-01T00:00:00.000Z",
                "record":{"survey_id":"s1","id":"r1","session":"u1","responses":{"q":"a"},"updatedAt":"2024-01-15T10:30:00.000Z"}})
        );
        assert!(c
            .reported
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("newField")));
        assert!(!c
            .reported
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("\"survey\"")));
    }
}
