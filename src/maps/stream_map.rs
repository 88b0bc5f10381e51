//! `stream_maps` read as the Meltano SDK reads it (`PluginMapper`,
//! `CustomStreamMap`): for each of the tap's streams, the maps it feeds
//! (the same-named one first, then those made with `__source__`), each with
//! its output name, its SCHEMA (properties added, typed and removed as the
//! SDK types them, then flattened) and its key properties, and how a
//! record is filtered and transformed.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::builtin::Builtin;
use super::eval::{self, CheckEnv};
use super::expr::{self, Expr, Ref};
use super::flatten;
use super::record::{self, Member, Out, RecordScope};
use super::value::Val;

const NULL_STRING: &str = "__NULL__";

/// A record's fields, in order, as a map sends them.
pub type Fields<'a> = Vec<(Cow<'a, str>, Out<'a>)>;

/// What a stream map does with a record.
pub enum Kind {
    /// `null`: nothing goes out (no SCHEMA, RECORD or ACTIVATE_VERSION).
    Remove,
    /// No map: the record as it is (flattened, if flattening is on).
    Same,
    Custom(Custom),
}

pub struct Custom {
    filter: Option<(String, Expr)>,
    include_by_default: bool,
    /// `(property, None)` removes it; `(property, Some(expression))` sets it.
    props: Vec<(String, Option<(String, Expr)>)>,
}

pub struct StreamMap {
    pub alias: String,
    pub kind: Kind,
    pub schema: Value,
    /// `None`: the SCHEMA carries `[]` (the SDK leaves the key out).
    pub key_properties: Option<Vec<String>>,
    /// `flattening_max_depth` when flattening applies.
    pub flatten: Option<usize>,
    /// The source stream's name and properties (what records hold).
    pub stream: String,
    pub properties: Vec<String>,
}

/// An error naming where in `stream_maps` it is, on one line (an
/// expression's line breaks are shown as `\n`).
fn at(stream: &str, prop: Option<&str>, what: impl std::fmt::Display) -> String {
    let what = what.to_string().replace('\r', "\\r").replace('\n', "\\n");
    match prop {
        Some(p) => format!("stream_maps: stream '{stream}', property '{p}': {what}"),
        None => format!("stream_maps: stream '{stream}': {what}"),
    }
}

fn is_null(v: &Value) -> bool {
    v.is_null() || v == NULL_STRING
}

/// The SDK's `_eval_type`: a computed property's JSON Schema type, read off
/// the expression's text.
fn eval_type(text: &str, default: Value, record_schema: &Value) -> Value {
    let t = |ty: &str| json!({"type": [ty]});
    if text == "record" {
        return record_schema.clone();
    }
    if text.starts_with("float(") {
        return t("number");
    }
    if text.starts_with("int(") {
        return t("integer");
    }
    if text.starts_with("str(") || text.starts_with("json.dumps(") {
        return t("string");
    }
    if text.starts_with("bool(") {
        return t("boolean");
    }
    if text.starts_with("datetime.date.")
        || text.starts_with("datetime.date(")
        || text.ends_with(".date()")
    {
        return json!({"type": ["string"], "format": "date"});
    }
    if text.starts_with("datetime.datetime.") || text.starts_with("datetime.datetime(") {
        return json!({"type": ["string"], "format": "date-time"});
    }
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        return t("string");
    }
    default
}

/// The SDK's `append_type(type_dict, "null")`, as `Property.to_dict` applies it.
fn nullable(mut schema: Value) -> Value {
    if let Some(any) = schema.get_mut("anyOf") {
        match any {
            Value::Array(a) if !a.iter().any(|x| x == "null") => a.push(json!("null")),
            Value::Array(_) => {}
            other if *other != "null" => *other = json!([other.clone(), "null"]),
            _ => {}
        }
        return schema;
    }
    if let Some(Value::Array(one)) = schema.get_mut("oneOf") {
        one.push(json!({"type": "null"}));
        return schema;
    }
    if let Some(t) = schema.get_mut("type") {
        match t {
            Value::Array(a) if !a.iter().any(|x| x == "null") => a.push(json!("null")),
            Value::Array(_) => {}
            other if *other != "null" => *other = json!([other.clone(), "null"]),
            _ => {}
        }
    }
    schema
}

/// Parses and checks an expression of `stream`'s map.
fn compile(
    text: &str,
    stream: &str,
    prop: Option<&str>,
    properties: &[String],
    config_keys: &[String],
) -> Result<Expr, String> {
    let mut e = expr::parse(text).map_err(|e| {
        at(
            stream,
            prop.or(Some("__filter__")),
            format!("{e} in `{text}`"),
        )
    })?;
    eval::check(
        &mut e,
        &CheckEnv {
            properties,
            stream,
            config_keys,
            property: prop,
        },
    )
    .map_err(|e| {
        at(
            stream,
            prop.or(Some("__filter__")),
            format!("{e} in `{text}`"),
        )
    })?;
    Ok(e)
}

pub struct Source<'a> {
    pub name: &'a str,
    pub schema: &'a Value,
    pub key_properties: Vec<String>,
}

impl StreamMap {
    pub fn same(src: &Source, flatten: Option<usize>, remove: bool) -> Result<StreamMap, String> {
        let schema = match flatten {
            Some(depth) => {
                flatten::flatten_schema(src.schema, depth).map_err(|e| at(src.name, None, e))?
            }
            None => src.schema.clone(),
        };
        Ok(StreamMap {
            alias: src.name.to_string(),
            kind: if remove { Kind::Remove } else { Kind::Same },
            schema,
            key_properties: Some(src.key_properties.clone()),
            flatten,
            stream: src.name.to_string(),
            properties: property_names(src.schema),
        })
    }

    /// The SDK's `CustomStreamMap` for one map object (`__source__` and
    /// `__alias__` already taken out).
    pub fn custom(
        src: &Source,
        alias: &str,
        map: &Map<String, Value>,
        config_keys: &[String],
        flatten: Option<usize>,
    ) -> Result<StreamMap, String> {
        let name = alias;
        let properties = property_names(src.schema);
        let mut key_properties = Some(src.key_properties.clone());
        let mut filter = None;
        let mut include_by_default = true;
        let mut entries = Vec::new();
        for (k, v) in map {
            match k.as_str() {
                "__filter__" => match v {
                    Value::Null => {}
                    Value::String(text) => {
                        filter = Some((text.clone(), compile(text, name, None, &properties, config_keys)?))
                    }
                    other => return Err(at(name, Some(k), format!("expected an expression string or null, got {other}"))),
                },
                "__key_properties__" => {
                    key_properties = match v {
                        Value::Null => None,
                        Value::Array(a) if a.iter().all(Value::is_string) => Some(
                            a.iter().filter_map(Value::as_str).map(String::from).collect(),
                        ),
                        other => return Err(at(name, Some(k), format!("expected a list of property names or null, got {other}"))),
                    }
                }
                "__else__" => {
                    if is_null(v) {
                        include_by_default = false;
                    } else {
                        return Err(at(name, Some(k), format!("only null (or \"__NULL__\") is supported, got {v}")));
                    }
                }
                "__alias__" | "__source__" => {
                    return Err(at(name, Some(k), "__alias__ and __source__ cannot be used together"))
                }
                other if other.starts_with("__") && other.ends_with("__") && other.len() > 4 => {
                    return Err(at(
                        name,
                        Some(k),
                        "unknown option (the options are __alias__, __source__, __filter__, __else__ and __key_properties__)",
                    ))
                }
                _ => entries.push((k.clone(), v.clone())),
            }
        }
        let raw_props = src
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut schema = if include_by_default {
            src.schema.clone()
        } else {
            json!({"type": "object", "properties": {}, "$schema": "https://json-schema.org/draft/2020-12/schema"})
        };
        if schema.get("properties").is_none() {
            schema["properties"] = json!({});
        }
        let mut props = Vec::new();
        for (k, v) in entries {
            if is_null(&v) {
                if key_properties.as_ref().is_some_and(|kp| kp.contains(&k)) {
                    return Err(at(name, Some(&k), "removing a key property is not permitted: use __key_properties__ to name other key properties, or null for none"));
                }
                schema["properties"]
                    .as_object_mut()
                    .expect("an object")
                    .remove(&k);
                if let Some(Value::Array(req)) = schema.get_mut("required") {
                    req.retain(|r| r != k.as_str());
                }
                props.push((k, None));
            } else if let Value::String(text) = &v {
                // With `__else__` the SDK's raw schema is a separate dict;
                // without, it shares its properties with the new schema.
                let (existing, record_schema) = {
                    let current = schema["properties"].as_object().expect("an object");
                    let lookup = if include_by_default {
                        current
                    } else {
                        &raw_props
                    };
                    let existing = current
                        .get(&k)
                        .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()))
                        .or_else(|| lookup.get(text.as_str()))
                        .cloned();
                    let record_schema = if include_by_default {
                        let mut r = src.schema.clone();
                        r["properties"] = Value::Object(current.clone());
                        r
                    } else {
                        src.schema.clone()
                    };
                    (existing, record_schema)
                };
                let default = existing.unwrap_or_else(|| json!({"type": ["string"]}));
                let typed = nullable(eval_type(text, default, &record_schema));
                schema["properties"]
                    .as_object_mut()
                    .expect("an object")
                    .insert(k.clone(), typed);
                let e = compile(text, name, Some(&k), &properties, config_keys)?;
                props.push((k, Some((text.clone(), e))));
            } else {
                return Err(at(
                    name,
                    Some(&k),
                    format!("expected an expression string or null, got {v}"),
                ));
            }
        }
        for kp in key_properties.iter().flatten() {
            if schema["properties"].get(kp).is_none() {
                return Err(at(
                    name,
                    None,
                    format!(
                        "invalid key properties [{}]: property '{kp}' is not in the mapped schema{}",
                        key_properties.as_deref().unwrap_or_default().join(","),
                        if include_by_default { "" } else { " (with __else__: null, list it, e.g. \"id\": \"id\")" }
                    ),
                ));
            }
        }
        if let Some(depth) = flatten {
            schema = flatten::flatten_schema(&schema, depth).map_err(|e| at(name, None, e))?;
        }
        Ok(StreamMap {
            alias: alias.to_string(),
            kind: Kind::Custom(Custom {
                filter,
                include_by_default,
                props,
            }),
            schema,
            key_properties,
            flatten,
            stream: src.name.to_string(),
            properties,
        })
    }

    /// The record this map sends for `members` (the tap's record), or
    /// `None` when the map filters it out or removes the stream.
    pub fn transform<'a>(
        &self,
        members: &[Member<'a>],
        config: &Val,
    ) -> Result<Option<Fields<'a>>, String> {
        let fields = match &self.kind {
            Kind::Remove => return Ok(None),
            Kind::Same => members.iter().map(|m| (m.name.clone(), m.out())).collect(),
            Kind::Custom(c) => {
                let mut scope =
                    RecordScope::new(members, &self.properties, config, &self.alias, &self.stream);
                if let Some((text, f)) = &c.filter {
                    let keep = eval::eval(f, &scope)
                        .map_err(|e| self.runtime_error(members, "__filter__", text, &e))?;
                    if !keep.truthy() {
                        return Ok(None);
                    }
                }
                let mut out: Vec<(Cow<'a, str>, Out<'a>)> = if c.include_by_default {
                    members.iter().map(|m| (m.name.clone(), m.out())).collect()
                } else {
                    let mut start = Vec::new();
                    for kp in self.key_properties.iter().flatten() {
                        if let Some(m) = members.iter().find(|m| m.name == kp.as_str()) {
                            start.push((m.name.clone(), m.out()));
                        }
                    }
                    start
                };
                for (k, def) in &c.props {
                    match def {
                        None => out.retain(|(n, _)| n != k.as_str()),
                        Some((text, e)) => {
                            scope.property = Some(k);
                            let v = eval::eval(e, &scope)
                                .map_err(|err| self.runtime_error(members, k, text, &err))?;
                            match out.iter_mut().find(|(n, _)| n == k.as_str()) {
                                Some(slot) => slot.1 = Out::Val(v),
                                None => out.push((Cow::Owned(k.clone()), Out::Val(v))),
                            }
                        }
                    }
                }
                out
            }
        };
        Ok(Some(match self.flatten {
            Some(depth) => flatten::flatten_record(
                fields,
                self.schema["properties"].as_object().unwrap_or(&Map::new()),
                depth,
            ),
            None => fields,
        }))
    }

    /// Writes the record this map sends for `members` (the tap's record,
    /// whose text is `text`); `false` when it sends none.
    pub fn write<'a>(
        &self,
        members: &[Member<'a>],
        text: &'a str,
        config: &Val,
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        match &self.kind {
            Kind::Remove => Ok(false),
            Kind::Same if self.flatten.is_none() => {
                out.extend_from_slice(text.as_bytes());
                Ok(true)
            }
            Kind::Custom(c) if c.include_by_default && self.flatten.is_none() => {
                // The usual map (a few properties set or removed): the
                // record is copied with those members edited in place.
                let mut scope =
                    RecordScope::new(members, &self.properties, config, &self.alias, &self.stream);
                if let Some((text, f)) = &c.filter {
                    let keep = eval::eval(f, &scope)
                        .map_err(|e| self.runtime_error(members, "__filter__", text, &e))?;
                    if !keep.truthy() {
                        return Ok(false);
                    }
                }
                let mut edits: Vec<(usize, Option<Val>)> = Vec::with_capacity(c.props.len());
                let mut added: Vec<(&str, Val)> = Vec::new();
                for (k, def) in &c.props {
                    let at = members.iter().position(|m| m.name == k.as_str());
                    let value =
                        match def {
                            None => None,
                            Some((expr_text, e)) => {
                                scope.property = Some(k);
                                Some(eval::eval(e, &scope).map_err(|err| {
                                    self.runtime_error(members, k, expr_text, &err)
                                })?)
                            }
                        };
                    match (at, value) {
                        (Some(i), v) => edits.push((i, v)),
                        (None, Some(v)) => added.push((k, v)),
                        (None, None) => {}
                    }
                }
                edits.sort_by_key(|(i, _)| *i);
                record::write_edited(text, members, &edits, &added, out);
                Ok(true)
            }
            _ => match self.transform(members, config)? {
                Some(fields) => {
                    record::write_object(&fields, text, out);
                    Ok(true)
                }
                None => Ok(false),
            },
        }
    }

    /// The members `write` reads: `Some(names)` (none for a map that
    /// copies or drops records), or `None` for all of them.
    pub fn needed_members(&self) -> Option<Vec<String>> {
        match (&self.kind, self.flatten) {
            (Kind::Remove, _) | (Kind::Same, None) => Some(Vec::new()),
            (Kind::Custom(c), None) if c.include_by_default => {
                let mut names: Vec<String> = self.key_properties.clone().unwrap_or_default();
                let mut all = false;
                let exprs = c.filter.iter().map(|(_, e)| e).chain(
                    c.props
                        .iter()
                        .filter_map(|(_, d)| d.as_ref().map(|(_, e)| e)),
                );
                for e in exprs {
                    field_refs(e, &mut names, &mut all);
                }
                names.extend(c.props.iter().map(|(k, _)| k.clone()));
                names.sort();
                names.dedup();
                (!all).then_some(names)
            }
            _ => None,
        }
    }

    fn runtime_error(&self, members: &[Member], prop: &str, text: &str, e: &str) -> String {
        let id = members
            .iter()
            .find(|m| m.name == "id")
            .map(|m| format!(" (record id {})", m.value))
            .unwrap_or_default();
        at(&self.alias, Some(prop), format!("{e} in `{text}`{id}"))
    }
}

/// The record's properties an expression reads (`all` when it reads the
/// whole record).
fn field_refs(e: &Expr, names: &mut Vec<String>, all: &mut bool) {
    let mut go = |x: &Expr| field_refs(x, names, all);
    match e {
        Expr::Ref(Ref::Field(n)) => names.push(n.to_string()),
        Expr::Ref(Ref::Record) => *all = true,
        Expr::Const(_) | Expr::Name(_) | Expr::Ref(_) => {}
        Expr::List(v) | Expr::Tuple(v) | Expr::Bool(_, v) => v.iter().for_each(go),
        Expr::Dict(v) => v.iter().for_each(|(a, b)| {
            go(a);
            go(b)
        }),
        Expr::FString(parts) => parts.iter().for_each(|p| {
            if let expr::FPart::Value(v) = p {
                go(v)
            }
        }),
        Expr::Attr(a, _) | Expr::Unary(_, a) => go(a),
        Expr::Call(f, args, kw) => {
            go(f);
            args.iter().for_each(&mut go);
            kw.iter().for_each(|(_, v)| go(v));
        }
        Expr::Index(a, b) | Expr::Bin(_, a, b) => {
            go(a);
            go(b)
        }
        Expr::Slice(a, parts) => {
            go(a);
            parts.iter().flatten().for_each(|p| go(p));
        }
        Expr::Compare(a, rest) => {
            go(a);
            rest.iter().for_each(|(_, r)| go(r));
        }
        Expr::IfElse { test, body, orelse } => {
            go(test);
            go(body);
            go(orelse)
        }
    }
}

pub fn property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// `fnmatch.fnmatch` (case-sensitive on POSIX): `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    fn go(n: &[char], p: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&n[i..], &p[1..])),
            Some('?') => !n.is_empty() && go(&n[1..], &p[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|c| *c == ']').map(|i| i + 2) else {
                    return n.first() == Some(&'[') && go(&n[1..], &p[1..]);
                };
                let Some(c) = n.first() else { return false };
                let (neg, set) = match p[1] {
                    '!' => (true, &p[2..close]),
                    _ => (false, &p[1..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&n[1..], &p[close + 1..])
            }
            Some(c) => n.first() == Some(c) && go(&n[1..], &p[1..]),
        }
    }
    go(&n, &p)
}

/// The SDK's `_eval_stream` for `__alias__`: the expression's value with
/// `__stream_name__` set, or the text itself when it names anything else.
pub fn eval_alias(text: &str, stream: &str) -> Result<String, String> {
    let mut e =
        expr::parse(text).map_err(|e| at(stream, Some("__alias__"), format!("{e} in `{text}`")))?;
    fn names_only_stream(e: &mut Expr) -> bool {
        match e {
            Expr::Name(n) if n == "__stream_name__" => {
                *e = Expr::Ref(Ref::StreamName);
                true
            }
            Expr::Name(_) => false,
            Expr::Const(_) | Expr::Ref(_) => true,
            Expr::List(v) | Expr::Tuple(v) | Expr::Bool(_, v) => {
                v.iter_mut().all(names_only_stream)
            }
            Expr::Dict(v) => v
                .iter_mut()
                .all(|(a, b)| names_only_stream(a) && names_only_stream(b)),
            Expr::FString(parts) => parts.iter_mut().all(|p| match p {
                expr::FPart::Value(v) => names_only_stream(v),
                expr::FPart::Text(_) => true,
            }),
            Expr::Attr(b, _) => names_only_stream(b),
            Expr::Call(f, args, kw) => {
                let f_ok = match &mut **f {
                    Expr::Name(n) if matches!(n.as_str(), "str" | "int" | "float") => {
                        let b = match n.as_str() {
                            "str" => Builtin::Str,
                            "int" => Builtin::Int,
                            _ => Builtin::Float,
                        };
                        **f = Expr::Ref(Ref::Builtin(b));
                        true
                    }
                    other => names_only_stream(other),
                };
                f_ok && args.iter_mut().all(names_only_stream)
                    && kw.iter_mut().all(|(_, v)| names_only_stream(v))
            }
            Expr::Index(a, b) | Expr::Bin(_, a, b) => names_only_stream(a) && names_only_stream(b),
            Expr::Slice(a, parts) => {
                names_only_stream(a) && parts.iter_mut().flatten().all(|p| names_only_stream(p))
            }
            Expr::Unary(_, a) => names_only_stream(a),
            Expr::Compare(a, rest) => {
                names_only_stream(a) && rest.iter_mut().all(|(_, r)| names_only_stream(r))
            }
            Expr::IfElse { test, body, orelse } => {
                names_only_stream(test) && names_only_stream(body) && names_only_stream(orelse)
            }
        }
    }
    if !names_only_stream(&mut e) {
        return Ok(text.to_string());
    }
    struct StreamOnly<'s>(&'s str, Val);
    impl eval::Scope for StreamOnly<'_> {
        fn field(&self, _: &str) -> Option<Val> {
            None
        }
        fn record(&self) -> Val {
            Val::None
        }
        fn config(&self) -> &Val {
            &self.1
        }
        fn stream_name(&self) -> &str {
            self.0
        }
        fn original_stream_name(&self) -> &str {
            self.0
        }
        fn property(&self) -> Option<&str> {
            None
        }
    }
    match eval::eval(&e, &StreamOnly(stream, Val::None)) {
        Ok(Val::Str(s)) if !s.is_empty() => Ok(s.to_string()),
        Ok(other) => Err(at(
            stream,
            Some("__alias__"),
            format!("`{text}` gives {}, not a stream name", other.repr()),
        )),
        Err(err) => Err(at(stream, Some("__alias__"), format!("{err} in `{text}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_in_place_gives_what_the_general_path_gives() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "string"}, "a": {"type": ["string", "null"]},
            "b": {"type": ["integer", "null"]}, "o": {"type": ["object", "null"]}}});
        let src = Source {
            name: "s",
            schema: &schema,
            key_properties: vec!["id".into()],
        };
        let maps = [
            json!({"a": "a.upper() if a else None"}),
            json!({"b": null}),
            json!({"new": "str(b)", "o": null}),
            json!({"o": "o", "a": null, "b": "b * 2 if b else 0", "z": "'x'"}),
            json!({"__filter__": "b != 2", "a": "self"}),
            json!({"id": null, "__key_properties__": ["b"]}),
            json!({}),
        ];
        let records = [
            r#"{"id":"1","a":"x","b":1,"o":{"k":[1,2]}}"#,
            r#"{ "o" : {} , "id":"2","b":2 }"#,
            r#"{"id":"3","a":null,"b":null,"o":null}"#,
            r#"{}"#,
        ];
        let parse = |b: &[u8]| -> Vec<(String, Value)> {
            let v: Value = serde_json::from_slice(b).unwrap();
            v.as_object().unwrap().clone().into_iter().collect()
        };
        for m in &maps {
            let sm = StreamMap::custom(&src, "s", m.as_object().unwrap(), &[], None).unwrap();
            for r in records {
                let needed = sm.needed_members();
                let mut fast = Vec::new();
                let sent = sm
                    .write(
                        &record::members_until(r, needed.as_deref()),
                        r,
                        &Val::None,
                        &mut fast,
                    )
                    .unwrap();
                let general = sm.transform(&record::members(r), &Val::None).unwrap();
                assert_eq!(sent, general.is_some(), "{m} on {r}");
                if let Some(fields) = general {
                    let mut slow = Vec::new();
                    record::write_object(&fields, r, &mut slow);
                    assert_eq!(parse(&fast), parse(&slow), "{m} on {r}");
                }
            }
        }
    }

    #[test]
    fn fnmatch_as_python() {
        assert!(fnmatch("tickets", "tick*"));
        assert!(fnmatch("tickets", "*"));
        assert!(fnmatch("survey_responses", "survey_?esponses"));
        assert!(fnmatch("teams", "[st]eams"));
        assert!(!fnmatch("teams", "[!t]eams"));
        assert!(!fnmatch("tickets", "ticket"));
    }

    #[test]
    fn aliases_evaluate_as_the_sdk() {
        assert_eq!(eval_alias("tickets_v2", "tickets").unwrap(), "tickets_v2");
        assert_eq!(eval_alias("my-tickets", "tickets").unwrap(), "my-tickets");
        assert_eq!(
            eval_alias("'gleap_' + __stream_name__", "tickets").unwrap(),
            "gleap_tickets"
        );
        assert_eq!(
            eval_alias("__stream_name__.upper()", "tickets").unwrap(),
            "TICKETS"
        );
        assert!(eval_alias("tickets v2", "tickets").is_err());
        assert!(eval_alias("123", "tickets").is_err());
    }

    #[test]
    fn types_are_inferred_as_the_sdk_does() {
        let d = json!({"type": ["string"]});
        let r = json!({});
        assert_eq!(
            nullable(eval_type("int(n)", d.clone(), &r)),
            json!({"type": ["integer", "null"]})
        );
        assert_eq!(
            nullable(eval_type("n * 2", d.clone(), &r)),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            nullable(eval_type(
                "datetime.datetime.fromisoformat(x).date()",
                d.clone(),
                &r
            )),
            json!({"type": ["string", "null"], "format": "date"})
        );
        assert_eq!(
            nullable(eval_type(
                "datetime.datetime.fromisoformat(x).year",
                d.clone(),
                &r
            )),
            json!({"type": ["string", "null"], "format": "date-time"})
        );
        assert_eq!(
            nullable(json!({"type": "string"})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            nullable(json!({"anyOf": [{"type": "string"}]})),
            json!({"anyOf": [{"type": "string"}, "null"]})
        );
    }
}
