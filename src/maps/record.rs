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
    /// A member of the tap's record as it was: its key as written (with
    /// quotes) and its value. Runs of these are copied in one piece.
    Member(&'a str, &'a str),
    Raw(&'a str),
    Val(Val),
}

pub struct Member<'a> {
    pub name: Cow<'a, str>,
    /// The key as written, quotes included.
    pub key: &'a str,
    pub value: &'a str,
}

impl<'a> Member<'a> {
    pub fn out(&self) -> Out<'a> {
        Out::Member(self.key, self.value)
    }
}

/// The index just past the JSON value starting at `b[at]`. In a container
/// only its own kind of bracket counts (the others balance inside it), so
/// the scan jumps from quote or bracket to the next with SIMD.
pub fn value_end(b: &[u8], at: usize) -> usize {
    match b.get(at) {
        Some(b'"') => string_end(b, at),
        Some(&open @ (b'{' | b'[')) => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut i = at;
            while let Some(off) = memchr::memchr3(b'"', open, close, &b[i..]) {
                i += off;
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    c if c == open => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
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

/// The members of a JSON object (`obj` starts with it).
pub fn members(obj: &str) -> Vec<Member<'_>> {
    members_until(obj, None)
}

/// The members of the JSON object `obj` starts with, in order, up to the
/// last of the `needed` names (all of them when `None`): a map that reads
/// and sets a few properties does not cut the rest of the record.
pub fn members_until<'a>(obj: &'a str, needed: Option<&[String]>) -> Vec<Member<'a>> {
    let b = obj.as_bytes();
    let mut out = Vec::with_capacity(if needed.is_some() { 4 } else { 40 });
    let mut missing = needed.map_or(usize::MAX, <[String]>::len);
    if missing == 0 {
        return out;
    }
    let mut i = skip_ws(b, 0) + 1;
    loop {
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'"' {
            return out;
        }
        let key_start = i;
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
        if let Some(names) = needed {
            if names.iter().any(|n| *n == name) {
                missing -= 1;
            }
        }
        out.push(Member {
            name,
            key: &obj[key_start..key_end],
            value: &obj[i..end],
        });
        if missing == 0 {
            return out;
        }
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return out,
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

/// Writes `{"name":value,...}`. Members of `text` (the tap's record) that
/// follow one another there as they do here are copied as one run.
pub fn write_object(fields: &[(Cow<'_, str>, Out<'_>)], text: &str, out: &mut Vec<u8>) {
    let base = text.as_ptr() as usize;
    let within = |s: &str| {
        let p = s.as_ptr() as usize;
        p >= base && p + s.len() <= base + text.len()
    };
    let bytes = text.as_bytes();
    let mut run: Option<(usize, usize)> = None;
    let mut first = true;
    let flush = |run: &mut Option<(usize, usize)>, first: &mut bool, out: &mut Vec<u8>| {
        if let Some((a, b)) = run.take() {
            if !std::mem::take(first) {
                out.push(b',');
            }
            out.extend_from_slice(&bytes[a..b]);
        }
    };
    out.push(b'{');
    for (name, value) in fields {
        if let Out::Member(k, v) = value {
            if within(k) && within(v) {
                let (start, end) = (
                    k.as_ptr() as usize - base,
                    v.as_ptr() as usize - base + v.len(),
                );
                if let Some((_, run_end)) = &mut run {
                    let gap = bytes.get(*run_end..start).unwrap_or(b"x");
                    if gap.iter().filter(|c| **c == b',').count() == 1
                        && gap
                            .iter()
                            .all(|c| matches!(c, b',' | b' ' | b'\t' | b'\n' | b'\r'))
                    {
                        *run_end = end;
                        continue;
                    }
                }
                flush(&mut run, &mut first, out);
                run = Some((start, end));
                continue;
            }
        }
        flush(&mut run, &mut first, out);
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_json_str(out, name);
        out.push(b':');
        match value {
            Out::Member(_, r) | Out::Raw(r) => out.extend_from_slice(r.as_bytes()),
            Out::Val(v) => write_json(v, out),
        }
    }
    flush(&mut run, &mut first, out);
    out.push(b'}');
}

/// Where `s` (a slice of `text`) starts in `text`.
fn offset(text: &str, s: &str) -> usize {
    s.as_ptr() as usize - text.as_ptr() as usize
}

/// Writes the record `text` with the members at the indices of `edits`
/// (in order) replaced by a value or removed, and `added` appended. What
/// lies between edited members is copied as it is, separators trimmed:
/// members that were not cut out of the text need not have been.
pub fn write_edited(
    text: &str,
    members: &[Member<'_>],
    edits: &[(usize, Option<Val>)],
    added: &[(&str, Val)],
    out: &mut Vec<u8>,
) {
    let bytes = text.as_bytes();
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    let segment = |from: usize, to: usize, out: &mut Vec<u8>, sep: &mut dyn FnMut(&mut Vec<u8>)| {
        let mut seg = bytes.get(from..to).unwrap_or_default();
        let junk = |c: &u8| matches!(c, b',' | b' ' | b'\t' | b'\n' | b'\r');
        while seg.first().is_some_and(junk) {
            seg = &seg[1..];
        }
        while seg.last().is_some_and(junk) {
            seg = &seg[..seg.len() - 1];
        }
        if !seg.is_empty() {
            sep(out);
            out.extend_from_slice(seg);
        }
    };
    let open = bytes.iter().position(|c| *c == b'{').map_or(0, |p| p + 1);
    let close = bytes
        .iter()
        .rposition(|c| *c == b'}')
        .unwrap_or(bytes.len());
    out.push(b'{');
    let mut from = open;
    for (at, edit) in edits {
        let m = &members[*at];
        segment(from, offset(text, m.key), out, &mut sep);
        if let Some(v) = edit {
            sep(out);
            out.extend_from_slice(m.key.as_bytes());
            out.push(b':');
            write_json(v, out);
        }
        from = offset(text, m.value) + m.value.len();
    }
    segment(from, close, out, &mut sep);
    for (name, v) in added {
        sep(out);
        write_json_str(out, name);
        out.push(b':');
        write_json(v, out);
    }
    out.push(b'}');
}

/// One record, as expressions read it.
pub struct RecordScope<'r, 'a> {
    pub members: &'r [Member<'a>],
    /// Values already parsed: (member index, value). Expressions read few.
    pub cache: RefCell<Vec<(usize, Val)>>,
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
            cache: RefCell::new(Vec::new()),
            properties,
            config,
            stream_name,
            original_stream_name,
            property: None,
        }
    }

    fn at(&self, i: usize) -> Val {
        if let Some((_, v)) = self.cache.borrow().iter().find(|(at, _)| *at == i) {
            return v.clone();
        }
        let v = parse_raw(self.members[i].value);
        self.cache.borrow_mut().push((i, v.clone()));
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
        let m = members_until(r#"{"a":1,"b":2,"c":3}"#, Some(&["b".to_string()]));
        assert_eq!(m.len(), 2);
        let text = r#"{"a":1, "b":2 ,"c":3,"d":4}"#;
        let m = members(text);
        let mut out = Vec::new();
        write_edited(
            text,
            &m[..3],
            &[(1, None), (2, Some(Val::Int(9)))],
            &[("e", Val::None)],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"c":9,"d":4,"e":null}"#
        );
        let mut out = Vec::new();
        write_edited(text, &m, &[(0, None), (3, None)], &[], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"b":2 ,"c":3}"#);
        assert_eq!(value_end(br#"[1,["]"],{"a":[]}]x"#, 0), 18);
        assert!(matches!(parse_raw("-1.5e3"), Val::Float(f) if f == -1500.0));
        assert!(matches!(parse_raw(r#""a\nb""#), Val::Str(s) if &*s == "a\nb"));
    }
}
