//! A RECORD's fields as the mapper sees them: names and raw JSON values cut
//! from the line the tap wrote (valid JSON, so the cutting does not
//! validate again), parsed into values only when an expression reads them,
//! and copied through byte for byte otherwise.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::Value;

use super::eval::Scope;
use super::value::{string_end, write_json, write_json_str, Val};

/// A field of the output record: raw JSON from the input, or a computed value.
#[derive(Clone, Debug)]
pub enum Out<'a> {
    Raw(&'a str),
    Val(Val),
}

pub struct Member<'a> {
    pub name: Cow<'a, str>,
    pub value: &'a str,
}

/// The index just past the JSON value starting at `b[at]`.
pub fn value_end(b: &[u8], at: usize) -> usize {
    match b.get(at) {
        Some(b'"') => string_end(b, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = at;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            i
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The members of a JSON object (`obj` is its whole text).
pub fn members(obj: &str) -> Vec<Member<'_>> {
    let b = obj.as_bytes();
    let mut out = Vec::with_capacity(40);
    let mut i = skip_ws(b, 0) + 1;
    loop {
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'"' {
            return out;
        }
        let key_end = string_end(b, i);
        let key = &obj[i + 1..key_end - 1];
        let name = if key.contains('\\') {
            Cow::Owned(serde_json::from_str(&obj[i..key_end]).unwrap_or_else(|_| key.to_string()))
        } else {
            Cow::Borrowed(key)
        };
        i = skip_ws(b, key_end) + 1; // the ':'
        i = skip_ws(b, i);
        let end = value_end(b, i);
        out.push(Member {
            name,
            value: &obj[i..end],
        });
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i += 1;
        } else {
            return out;
        }
    }
}

/// A raw JSON value (valid) as a value.
pub fn parse_raw(raw: &str) -> Val {
    let b = raw.as_bytes();
    match b.first() {
        Some(b'"') if !raw[1..raw.len() - 1].contains('\\') => Val::str(&raw[1..raw.len() - 1]),
        Some(b'n') => Val::None,
        Some(b't') => Val::Bool(true),
        Some(b'f') => Val::Bool(false),
        Some(b'-' | b'0'..=b'9') if !raw.contains(['.', 'e', 'E']) => match raw.parse::<i64>() {
            Ok(i) => Val::Int(i),
            Err(_) => Val::Float(raw.parse().unwrap_or(f64::NAN)),
        },
        Some(b'-' | b'0'..=b'9') => Val::Float(raw.parse().unwrap_or(f64::NAN)),
        _ => serde_json::from_str::<Value>(raw)
            .map(|v| Val::from_json(&v))
            .unwrap_or(Val::None),
    }
}

/// Writes `{"name":value,...}`.
pub fn write_object(fields: &[(Cow<'_, str>, Out<'_>)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, name);
        out.push(b':');
        match value {
            Out::Raw(r) => out.extend_from_slice(r.as_bytes()),
            Out::Val(v) => write_json(v, out),
        }
    }
    out.push(b'}');
}

/// One record, as expressions read it.
pub struct RecordScope<'r, 'a> {
    pub members: &'r [Member<'a>],
    /// Values already parsed, by member index.
    pub cache: RefCell<Vec<Option<Val>>>,
    /// The stream's properties: one of them absent from a record reads as None.
    pub properties: &'r [String],
    pub config: &'r Val,
    pub stream_name: &'r str,
    pub original_stream_name: &'r str,
    pub property: Option<&'r str>,
}

impl<'r, 'a> RecordScope<'r, 'a> {
    pub fn new(
        members: &'r [Member<'a>],
        properties: &'r [String],
        config: &'r Val,
        stream_name: &'r str,
        original_stream_name: &'r str,
    ) -> Self {
        RecordScope {
            members,
            cache: RefCell::new(vec![None; members.len()]),
            properties,
            config,
            stream_name,
            original_stream_name,
            property: None,
        }
    }

    fn at(&self, i: usize) -> Val {
        if let Some(v) = &self.cache.borrow()[i] {
            return v.clone();
        }
        let v = parse_raw(self.members[i].value);
        self.cache.borrow_mut()[i] = Some(v.clone());
        v
    }
}

impl Scope for RecordScope<'_, '_> {
    fn field(&self, name: &str) -> Option<Val> {
        match self.members.iter().position(|m| m.name == name) {
            Some(i) => Some(self.at(i)),
            None if self.properties.iter().any(|p| p == name) => Some(Val::None),
            None => None,
        }
    }

    fn record(&self) -> Val {
        Val::Dict(std::sync::Arc::new(
            (0..self.members.len())
                .map(|i| (Val::str(self.members[i].name.as_ref()), self.at(i)))
                .collect(),
        ))
    }

    fn config(&self) -> &Val {
        self.config
    }

    fn stream_name(&self) -> &str {
        self.stream_name
    }

    fn original_stream_name(&self) -> &str {
        self.original_stream_name
    }

    fn property(&self) -> Option<&str> {
        self.property
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_cut_from_the_text() {
        let text = r#"{"a":"x\"}","b\u0041":[1,{"c":"]"}], "n": -1.5e3 ,"t":true,"o":{}}"#;
        let m = members(text);
        let got: Vec<(&str, &str)> = m.iter().map(|m| (m.name.as_ref(), m.value)).collect();
        assert_eq!(
            got,
            [
                ("a", r#""x\"}""#),
                ("bA", r#"[1,{"c":"]"}]"#),
                ("n", "-1.5e3"),
                ("t", "true"),
                ("o", "{}")
            ]
        );
        assert!(members("{}").is_empty());
        assert!(matches!(parse_raw("-1.5e3"), Val::Float(f) if f == -1500.0));
        assert!(matches!(parse_raw(r#""a\nb""#), Val::Str(s) if &*s == "a\nb"));
    }
}
