//! From a page body to its records, in one validating pass.
//!
//! A page is scanned once, and each record handed on as soon as it is read
//! (while its bytes are still in cache, and without holding the fields of a
//! whole page): its fields are `(key, raw value)` positions in the body, so
//! free-form JSON (`formData`, `customData`, ...) can be copied to the
//! output byte for byte, never built into a tree and serialised again.
//! Every value is checked against the JSON grammar (strings, escapes,
//! numbers, literals, nesting) before it is handed on, so the raw text
//! copied to the output is always valid JSON; the tests hold the scanner to
//! accepting exactly what serde_json accepts.
//!
//! The scanner is the tap's hottest loop (most of a page's bytes are inside
//! strings): strings are skipped 16 bytes at a time with SIMD compares, and
//! a failed step carries no payload (`Stop`), so the happy path returns
//! nothing but a flag.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;
use wide::u8x16;

use crate::streams::{Shape, StreamDef};

/// A field of a record, as positions in the page text.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Field {
    /// The key with its quotes: `"name"`.
    key_at: u32,
    key_len: u32,
    value_at: u32,
    value_len: u32,
    /// When the key held escapes: its name's index in `Sink::names`.
    unescaped: Option<u32>,
}

/// What a page held besides its records.
#[derive(Debug, PartialEq)]
pub struct PageInfo {
    /// Elements in the records array: records, and anything else.
    pub len: usize,
    /// The total count the page reports, when its shape has one.
    pub total: Option<u64>,
}

/// Where the scan of a records array puts what it finds.
struct Sink<'e> {
    /// The fields of the record being read (storage reused record to record).
    fields: Vec<Field>,
    /// The names of its keys that held escapes, unescaped.
    names: Vec<String>,
    multiline: bool,
    len: usize,
    each: &'e mut dyn FnMut(Option<Record<'_>>),
}

/// One record of a page: its fields, by index.
#[derive(Clone, Copy)]
pub struct Record<'p> {
    text: &'p str,
    fields: &'p [Field],
    names: &'p [String],
    multiline: bool,
}

impl<'p> Record<'p> {
    /// The number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The name of field `i`, unescaped.
    #[inline]
    pub fn name(&self, i: usize) -> &'p str {
        let f = &self.fields[i];
        match f.unescaped {
            Some(n) => &self.names[n as usize],
            None => self.span(f.key_at + 1, f.key_len - 2),
        }
    }

    /// The name of field `i` as bytes: `name` without a check that the
    /// ends are character boundaries (they are quotes).
    #[inline]
    pub fn name_bytes(&self, i: usize) -> &'p [u8] {
        let f = &self.fields[i];
        match f.unescaped {
            Some(n) => self.names[n as usize].as_bytes(),
            None => {
                &self.text.as_bytes()[(f.key_at + 1) as usize..(f.key_at + f.key_len - 1) as usize]
            }
        }
    }

    /// Whether field `i`'s key is written in the page exactly as JSON
    /// escaping would write its name (it held no escapes).
    #[inline]
    pub fn name_as_sent(&self, i: usize) -> bool {
        self.fields[i].unescaped.is_none()
    }

    /// The exact text of field `i`'s value.
    #[inline]
    pub fn value(&self, i: usize) -> &'p str {
        let f = &self.fields[i];
        self.span(f.value_at, f.value_len)
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        let mut guess = 0;
        self.get_near(name, &mut guess)
    }

    /// The value of a field named `name`, looked for first at index
    /// `guess`, which moves to where it was found: the records of a page
    /// mostly share one layout, so one guess per name saves a search. (With
    /// a key sent twice, the one found may not be the first.)
    pub fn get_near(&self, name: &str, guess: &mut usize) -> Option<&'p str> {
        if *guess >= self.len() || self.name(*guess) != name {
            *guess = (0..self.len()).find(|&i| self.name(i) == name)?;
        }
        Some(self.value(*guess))
    }

    /// The members `from..=to` as sent, separators included: JSON that can
    /// be copied into an object as it is.
    pub fn members(&self, from: usize, to: usize) -> &'p str {
        let (first, last) = (&self.fields[from], &self.fields[to]);
        let end = last.value_at + last.value_len;
        self.span(first.key_at, end - first.key_at)
    }

    /// Whether the page holds line breaks. They can only be whitespace
    /// between tokens (inside strings they are escaped), which a RECORD
    /// line must not carry: the writer turns them into spaces.
    pub fn multiline(&self) -> bool {
        self.multiline
    }

    #[inline]
    fn span(&self, at: u32, len: u32) -> &'p str {
        &self.text[at as usize..(at + len) as usize]
    }
}

/// Reads a body of the stream's documented shape, handing each element of
/// its records array to `each` in order: a record, or `None` when the
/// element is not an object. A body of another shape, or that is not JSON,
/// is an error (the caller retries it, then gives up): records handed on
/// before the error was found are then to be discarded.
///
/// Bodies are at most 256 MiB (the client refuses larger), so positions fit
/// in a `u32`; a longer text is refused here too.
pub fn each_record(
    body: &str,
    def: &StreamDef,
    mut each: impl FnMut(Option<Record<'_>>),
) -> Result<PageInfo, String> {
    if u32::try_from(body.len()).is_err() {
        return Err("a body over 4 GiB".into());
    }
    let mut sink = Sink {
        fields: Vec::with_capacity(64),
        names: Vec::new(),
        // SIMD (the memchr crate): std's search is several times slower.
        multiline: memchr::memchr2(b'\n', b'\r', body.as_bytes()).is_some(),
        len: 0,
        each: &mut each,
    };
    let first = body.trim_start().as_bytes().first().copied();
    let total = match (def.shape, first) {
        (_, None) => return Err("empty body".into()),
        (Shape::Array | Shape::ArrayOrWrapped, Some(b'[')) => {
            records_array(body, &mut sink)?;
            None
        }
        (Shape::Object { records }, Some(b'{')) => {
            let mut scan = Scan::new(body);
            let mut total = None;
            let found = scan
                .object_page(records, def.total_field, &mut total, &mut sink)
                .and_then(|found| scan.end().map(|()| found))
                .map_err(|Stop| scan.problem())?;
            if !found {
                return Err(format!("an object without the \"{records}\" array"));
            }
            total
        }
        (Shape::ArrayOrWrapped, Some(b'{')) => {
            let map: HashMap<Cow<str>, &RawValue> =
                serde_json::from_str(body).map_err(|e| e.to_string())?;
            let arrays: Vec<&&RawValue> =
                map.values().filter(|v| v.get().starts_with('[')).collect();
            const LIKELY: [&str; 5] = ["responses", "items", "data", "results", "surveyResponses"];
            let chosen = LIKELY
                .iter()
                .find_map(|k| map.get(*k).filter(|v| v.get().starts_with('[')))
                .or(if arrays.len() == 1 {
                    Some(arrays[0])
                } else {
                    None
                })
                .ok_or("an object without a single array of records")?;
            // The chosen text lies inside `body`: borrow it with `body`'s lifetime.
            let offset = chosen.get().as_ptr() as usize - body.as_ptr() as usize;
            records_array(&body[offset..offset + chosen.get().len()], &mut sink)?;
            None
        }
        (Shape::Array, Some(_)) => return Err("expected a JSON array".into()),
        (Shape::Object { .. }, Some(_)) => return Err("expected a JSON object".into()),
        (Shape::ArrayOrWrapped, Some(_)) => return Err("expected a JSON array or object".into()),
    };
    Ok(PageInfo {
        len: sink.len,
        total,
    })
}

/// A body that is nothing but the records array.
fn records_array(text: &str, sink: &mut Sink) -> Result<(), String> {
    let mut scan = Scan::new(text);
    scan.records(0, sink)
        .and_then(|()| scan.end())
        .map_err(|Stop| scan.problem())
}

/// The raw text of member `name` of a JSON object (text the scanner has
/// already validated), or `None` when it has no such member.
pub fn member<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    let mut scan = Scan::new(object);
    scan.eat(b'{', "an object").ok()?;
    if scan.peek() == Some(b'}') {
        return None;
    }
    loop {
        let key = scan.key().ok()?;
        scan.ws();
        let start = scan.i;
        scan.value(1).ok()?;
        if key == name {
            return Some(&object[start..scan.i]);
        }
        match scan.peek() {
            Some(b',') => scan.i += 1,
            _ => return None,
        }
    }
}

/// The most containers nested in one another: serde_json's limit. Deeper
/// nesting is refused, as serde_json refuses it.
const MAX_DEPTH: usize = 127;

/// The scan stopped at a problem; `Scan::problem` says which. Carrying no
/// payload keeps every step's result a single flag.
struct Stop;

type Step<T = ()> = Result<T, Stop>;

/// A validating JSON scanner over a page body: it finds the records and
/// their `(key, value)` pairs in one pass, without building anything. The
/// body is a `&str`: its UTF-8 is already valid.
struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// What was expected where the scan stopped.
    expected: Cow<'static, str>,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan {
            s,
            b: s.as_bytes(),
            i: 0,
            expected: Cow::Borrowed(""),
        }
    }

    #[cold]
    #[inline(never)]
    fn fail<T>(&mut self, what: &'static str) -> Step<T> {
        self.expected = Cow::Borrowed(what);
        Err(Stop)
    }

    /// Where and why the scan stopped, for the error message.
    fn problem(&self) -> String {
        if self.i >= self.b.len() {
            format!("EOF while parsing {} at byte {}", self.expected, self.i)
        } else {
            format!("expected {} at byte {}", self.expected, self.i)
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8, what: &'static str) -> Step {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// Only whitespace may follow the page.
    fn end(&mut self) -> Step {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("the end of the body (trailing characters)"),
        }
    }

    /// `{"<records>": [...], "<total>": N, ...}`; false without the records key.
    fn object_page(
        &mut self,
        records_key: &str,
        total_key: Option<&str>,
        total: &mut Option<u64>,
        sink: &mut Sink,
    ) -> Step<bool> {
        let mut found = false;
        self.eat(b'{', "an object")?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(false);
        }
        loop {
            let k = self.key()?;
            if k == records_key {
                self.records(1, sink)?;
                found = true;
            } else if Some(k.as_ref()) == total_key {
                self.ws();
                let start = self.i;
                self.value(1)?;
                *total = self.s[start..self.i].parse::<u64>().ok();
            } else {
                self.value(1)?;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(found);
                }
                _ => return self.fail("',' or '}'"),
            }
        }
    }

    /// An array of records: objects become records, anything else `None`.
    fn records(&mut self, depth: usize, sink: &mut Sink) -> Step {
        self.eat(b'[', "an array of records")?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek() == Some(b'{') {
                sink.fields.clear();
                sink.names.clear();
                self.record(depth + 1, &mut sink.fields, &mut sink.names)?;
                (sink.each)(Some(Record {
                    text: self.s,
                    fields: &sink.fields,
                    names: &sink.names,
                    multiline: sink.multiline,
                }));
            } else {
                self.value(depth + 1)?;
                (sink.each)(None);
            }
            sink.len += 1;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.fail("',' or ']'"),
            }
        }
    }

    /// One record's fields, appended to `fields` (and `names`). `depth` counts the
    /// containers around the record (as for `value`). The position stays in
    /// a local (a register) through the whole record.
    fn record(&mut self, depth: usize, fields: &mut Vec<Field>, names: &mut Vec<String>) -> Step {
        if depth + 1 > MAX_DEPTH {
            return self.fail("less nesting (recursion limit exceeded)");
        }
        let b = self.b;
        let mut i = self.i + 1; // `{`
        skip_ws(b, &mut i);
        if b.get(i) == Some(&b'}') {
            self.i = i + 1;
            return Ok(());
        }
        let lexed: Lex = 'record: loop {
            let key_start = i;
            let (key_end, escaped) = match lex_key(b, &mut i) {
                Ok(key) => key,
                Err(what) => break 'record Err(what),
            };
            skip_ws(b, &mut i);
            let start = i;
            let value = match b.get(i) {
                Some(b'"') => lex_string(b, &mut i).map(|_| ()),
                Some(b'{' | b'[') => {
                    self.i = i;
                    self.container(depth + 1)?;
                    i = self.i;
                    Ok(())
                }
                _ => lex_scalar(b, &mut i),
            };
            if let Err(what) = value {
                break 'record Err(what);
            }
            let unescaped = if escaped {
                let name = self.unescape_key(key_start, key_end)?;
                names.push(name.into_owned());
                Some(names.len() as u32 - 1)
            } else {
                None
            };
            // Positions fit: `parse_page` refuses texts over 4 GiB.
            fields.push(Field {
                key_at: key_start as u32,
                key_len: (key_end - key_start) as u32,
                value_at: start as u32,
                value_len: (i - start) as u32,
                unescaped,
            });
            skip_ws(b, &mut i);
            match b.get(i) {
                Some(b',') => {
                    i += 1;
                    skip_ws(b, &mut i);
                }
                Some(b'}') => break 'record Ok(()),
                _ => break 'record Err("',' or '}'"),
            }
        };
        match lexed {
            Ok(()) => {
                self.i = i + 1;
                Ok(())
            }
            Err(what) => {
                self.i = i;
                self.fail(what)
            }
        }
    }

    /// `"key":`, unescaped only when it holds escapes.
    #[inline]
    fn key(&mut self) -> Step<Cow<'a, str>> {
        let mut i = self.i;
        skip_ws(self.b, &mut i);
        let start = i;
        let lexed = lex_key(self.b, &mut i);
        self.i = i;
        match lexed {
            Ok((end, false)) => Ok(Cow::Borrowed(&self.s[start + 1..end - 1])),
            Ok((end, true)) => self.unescape_key(start, end),
            Err(what) => self.fail(what),
        }
    }

    /// The name of a key holding escapes (`"k\u0065y"`), at `from..to`
    /// with its quotes.
    #[cold]
    #[inline(never)]
    fn unescape_key(&mut self, from: usize, to: usize) -> Step<Cow<'a, str>> {
        match serde_json::from_str::<String>(&self.s[from..to]) {
            Ok(key) => Ok(Cow::Owned(key)),
            Err(e) => {
                self.i = from;
                self.expected = Cow::Owned(format!("a key serde_json can decode ({e})"));
                Err(Stop)
            }
        }
    }

    /// Skips one value, checking it. `depth` counts the containers around it.
    #[inline]
    fn value(&mut self, depth: usize) -> Step {
        let mut i = self.i;
        skip_ws(self.b, &mut i);
        let lexed = match self.b.get(i) {
            Some(b'"') => lex_string(self.b, &mut i).map(|_| ()),
            Some(b'{' | b'[') => {
                self.i = i;
                return self.container(depth);
            }
            _ => lex_scalar(self.b, &mut i),
        };
        self.i = i;
        lexed.or_else(|what| self.fail(what))
    }

    /// Skips an object or array (at its opening bracket), checking it. One
    /// loop over its tokens, the open containers kept as bits: no call per
    /// nested value, and the position stays in a register.
    fn container(&mut self, depth: usize) -> Step {
        let b = self.b;
        let mut i = self.i;
        // Bit k: whether the k-th open container (from the outside) is an object.
        let mut objects: u128 = 0;
        let mut open = 0usize;
        let lexed: Lex = 'scan: loop {
            // Expecting a value at `i`.
            skip_ws(b, &mut i);
            match b.get(i) {
                Some(&c @ (b'{' | b'[')) => {
                    if depth + open + 1 > MAX_DEPTH {
                        break 'scan Err("less nesting (recursion limit exceeded)");
                    }
                    i += 1;
                    skip_ws(b, &mut i);
                    let close = if c == b'{' { b'}' } else { b']' };
                    if b.get(i) == Some(&close) {
                        i += 1; // empty: a complete value
                    } else {
                        objects = objects << 1 | u128::from(c == b'{');
                        open += 1;
                        if c == b'{' {
                            if let Err(what) = lex_key(b, &mut i) {
                                break 'scan Err(what);
                            }
                        }
                        continue 'scan;
                    }
                }
                Some(b'"') => {
                    if let Err(what) = lex_string(b, &mut i) {
                        break 'scan Err(what);
                    }
                }
                _ => {
                    if let Err(what) = lex_scalar(b, &mut i) {
                        break 'scan Err(what);
                    }
                }
            }
            // After a complete value: close containers, or go on to the next value.
            loop {
                if open == 0 {
                    break 'scan Ok(());
                }
                skip_ws(b, &mut i);
                let in_object = objects & 1 == 1;
                match (b.get(i), in_object) {
                    (Some(b','), false) => {
                        i += 1;
                        continue 'scan;
                    }
                    (Some(b','), true) => {
                        i += 1;
                        skip_ws(b, &mut i);
                        if let Err(what) = lex_key(b, &mut i) {
                            break 'scan Err(what);
                        }
                        continue 'scan;
                    }
                    (Some(b']'), false) | (Some(b'}'), true) => {
                        i += 1;
                        objects >>= 1;
                        open -= 1;
                    }
                    (_, false) => break 'scan Err("',' or ']'"),
                    (_, true) => break 'scan Err("',' or '}'"),
                }
            }
        };
        self.i = i;
        lexed.or_else(|what| self.fail(what))
    }
}

/// A lexing step: on failure, what was expected (at the position reached).
type Lex<T = ()> = Result<T, &'static str>;

#[inline(always)]
fn skip_ws(b: &[u8], i: &mut usize) {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(*i) {
        *i += 1;
    }
}

/// `"key"` then `:`, at the key's opening quote (after whitespace).
/// Returns where the quoted key ends, and whether it holds escapes.
#[inline(always)]
fn lex_key(b: &[u8], i: &mut usize) -> Lex<(usize, bool)> {
    if b.get(*i) != Some(&b'"') {
        return Err("a string key");
    }
    let escaped = lex_string(b, i)?;
    let end = *i;
    skip_ws(b, i);
    if b.get(*i) != Some(&b':') {
        return Err("':'");
    }
    *i += 1;
    Ok((end, escaped))
}

/// A number, `true`, `false` or `null` at `i`.
#[inline(always)]
fn lex_scalar(b: &[u8], i: &mut usize) -> Lex {
    match b.get(*i) {
        Some(b't') => lex_literal(b, i, *b"true", 4),
        Some(b'f') => lex_literal(b, i, *b"fals", 5),
        Some(b'n') => lex_literal(b, i, *b"null", 4),
        Some(b'-' | b'0'..=b'9') => lex_number(b, i),
        _ => Err("a value"),
    }
}

/// `true`, `false` or `null`: compared as one 4-byte word (`false` by its
/// first four bytes and its `e`), not byte by byte.
#[inline(always)]
fn lex_literal(b: &[u8], i: &mut usize, head: [u8; 4], len: usize) -> Lex {
    let word = b.get(*i..*i + 4);
    if word == Some(&head[..]) && (len == 4 || b.get(*i + 4) == Some(&b'e')) {
        *i += len;
        Ok(())
    } else {
        Err("a value")
    }
}

/// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`
#[inline(always)]
fn lex_number(b: &[u8], i: &mut usize) -> Lex {
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.get(*i) == Some(&b'-') {
        *i += 1;
    }
    match b.get(*i) {
        Some(b'0') => *i += 1,
        Some(b'1'..=b'9') => {
            digits(i);
        }
        _ => return Err("a digit"),
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if !digits(i) {
            return Err("a digit after '.'");
        }
    }
    if let Some(b'e' | b'E') = b.get(*i) {
        *i += 1;
        if let Some(b'+' | b'-') = b.get(*i) {
            *i += 1;
        }
        if !digits(i) {
            return Err("a digit in the exponent");
        }
    }
    Ok(())
}

/// Skips a string (at its opening quote), checking its escapes and that it
/// holds no control character. Returns whether it holds escapes.
#[inline(always)]
fn lex_string(b: &[u8], i: &mut usize) -> Lex<bool> {
    *i += 1;
    let mut escaped = false;
    loop {
        // Sixteen bytes at a time while none is `"`, `\` or a control character.
        while let Some(chunk) = b.get(*i..*i + 16) {
            let special = specials(chunk.try_into().expect("16 bytes"));
            if special != 0 {
                *i += special.trailing_zeros() as usize;
                break;
            }
            *i += 16;
        }
        match b.get(*i) {
            Some(b'"') => {
                *i += 1;
                return Ok(escaped);
            }
            Some(b'\\') => {
                escaped = true;
                *i += 1;
                match b.get(*i) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 1,
                    Some(b'u') => {
                        let hex = b.get(*i + 1..*i + 5);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return Err("four hex digits after \\u");
                        }
                        *i += 5;
                    }
                    _ => return Err("an escape"),
                }
            }
            Some(0..=0x1f) => return Err("no control character in a string"),
            Some(_) => *i += 1,
            None => return Err("the end of a string"),
        }
    }
}

/// A bit for each of the 16 bytes that is `"`, `\` or a control character
/// (SSE2 on x86-64, NEON on ARM, plain code elsewhere: the `wide` crate).
#[inline(always)]
fn specials(chunk: &[u8; 16]) -> u32 {
    let v = u8x16::new(*chunk);
    let quote = v.cmp_eq(u8x16::splat(b'"'));
    let backslash = v.cmp_eq(u8x16::splat(b'\\'));
    let control = v.min(u8x16::splat(0x1f)).cmp_eq(v);
    (quote | backslash | control).move_mask() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{self, StreamDef};
    use serde_json::Value;

    /// A page as plain data: each element's `(name, value)` pairs (`None`
    /// when not an object), and the total.
    struct Parsed {
        records: Vec<Option<Vec<(String, String)>>>,
        total: Option<u64>,
    }

    impl Parsed {
        fn len(&self) -> usize {
            self.records.len()
        }
    }

    fn parse_page(body: &str, def: &StreamDef) -> Result<Parsed, String> {
        let mut records = Vec::new();
        let info = each_record(body, def, |r| {
            records.push(r.map(|r| {
                (0..r.len())
                    .map(|i| (r.name(i).to_string(), r.value(i).to_string()))
                    .collect()
            }))
        })?;
        assert_eq!(info.len, records.len());
        Ok(Parsed {
            records,
            total: info.total,
        })
    }

    fn fields(page: &Parsed, i: usize) -> &[(String, String)] {
        page.records[i].as_deref().unwrap()
    }

    #[test]
    fn pages_of_every_documented_shape() {
        let tickets = streams::find("tickets").unwrap();
        let p = parse_page(
            r#"{"count":1,"tickets":[{"id":"a"}],"totalCount":7}"#,
            tickets,
        )
        .unwrap();
        assert_eq!((p.len(), p.total), (1, Some(7)));
        assert!(parse_page("[]", tickets).is_err());
        assert!(parse_page(r#"{"error":"x"}"#, tickets).is_err());
        assert!(
            parse_page(r#"{"tickets":[{"id":"a"}"#, tickets).is_err(),
            "truncated"
        );
        let responses = streams::find("survey_responses").unwrap();
        for (body, n) in [
            (r#"[{"id":"a"},{"id":"b"}]"#, 2),
            (r#"{"responses":[{"id":"a"}],"count":1}"#, 1),
            (r#"{"whatever":[{"id":"a"}]}"#, 1),
        ] {
            assert_eq!(parse_page(body, responses).unwrap().len(), n, "{body}");
        }
        let sessions = streams::find("sessions").unwrap();
        assert!(parse_page("<html>oops</html>", sessions).is_err());
        assert!(parse_page("", sessions).is_err());
        let p = parse_page(r#"[{"id":"a"}, 5, null, "x", {}]"#, sessions).unwrap();
        assert_eq!(p.records.iter().filter(|r| r.is_none()).count(), 3);
        assert_eq!(fields(&p, 0), [("id".to_string(), "\"a\"".to_string())]);
        assert!(fields(&p, 4).is_empty());
    }

    #[test]
    fn the_scanner_accepts_exactly_what_serde_json_accepts() {
        let sessions = streams::find("sessions").unwrap();
        let values = [
            r#""plain""#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE80""#,
            r#""ünïcødé 決済 🚀 and a long tail to cross sixteen-byte words""#,
            r#""a string of exactly sixteen b""#,
            r#""\"quote at the start of a long string, then more than sixteen bytes""#,
            r#""bad \x escape""#,
            r#""bad \u12 escape""#,
            "\"raw\ncontrol\"",
            "\"raw\ttab\"",
            "\"a control character far past the first sixteen bytes \u{1}\"",
            "\"DEL \u{7f} is no control character in JSON\"",
            r#""unterminated"#,
            r#""unterminated and longer than sixteen bytes"#,
            "0",
            "-0",
            "12",
            "-3.25",
            "1e5",
            "1E+5",
            "2.5e-3",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "--1",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "fals",
            "falsy",
            "True",
            "{}",
            "[]",
            r#"{"a":[1,{"b":null}],"c":"d"}"#,
            "[1,2,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "[1 2]",
            r#"{"a":}"#,
            "[",
            "{",
        ];
        for v in values {
            let body = format!(r#"[{{"id":"x","v": {v} }}]"#);
            let ours = parse_page(&body, sessions);
            let theirs = serde_json::from_str::<Value>(&body);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{v}: {:?}", ours.err());
            if let Ok(page) = ours {
                assert_eq!(fields(&page, 0)[1].1, v.trim(), "{v}");
            }
        }
        let deep = format!(
            "[{{\"id\":\"x\",\"v\":{}{}}}]",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse_page(&deep, sessions).is_err(), "too deep");
        // The nesting limit is serde_json's, to the level, empty or not.
        let tickets = streams::find("tickets").unwrap();
        for n in 120..=130 {
            for inner in ["", "1", "{}"] {
                let record = format!(
                    "{{\"id\":\"x\",\"v\":{}{inner}{}}}",
                    "[".repeat(n),
                    "]".repeat(n)
                );
                for (body, def) in [
                    (format!("[{record}]"), sessions),
                    (format!("{{\"tickets\":[{record}]}}"), tickets),
                ] {
                    let theirs = serde_json::from_str::<Value>(&body).is_ok();
                    assert_eq!(parse_page(&body, def).is_ok(), theirs, "{n} {inner}");
                }
            }
        }
        let p = parse_page(r#" [ { "id" : "a" , "k\u0065y" : 1 } , 3 ] "#, sessions).unwrap();
        assert_eq!(fields(&p, 0)[1].0, "key");
        assert!(p.records[1].is_none());
        assert!(
            parse_page(r#"[{"id":"a"}] x"#, sessions).is_err(),
            "trailing"
        );
        for (body, total) in [
            (r#"{"tickets":[],"totalCount":7}"#, Some(7)),
            (r#"{"tickets":[],"totalCount": 7 }"#, Some(7)),
            (r#"{"totalCount":null,"tickets":[]}"#, None),
            (r#"{"totalCount":-1,"tickets":[]}"#, None),
            (r#"{"totalCount":"7","tickets":[]}"#, None),
        ] {
            assert_eq!(parse_page(body, tickets).unwrap().total, total, "{body}");
        }
        assert!(parse_page(r#"{"tickets":{}}"#, tickets).is_err());
        assert!(parse_page(r#"{}"#, tickets).is_err());
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let sessions = streams::find("sessions").unwrap();
        for (body, message) in [
            (r#"[{"id":"a"},]"#, "expected a value at byte 12"),
            (r#"[{"id":"a""#, "EOF while parsing ',' or '}' at byte 10"),
            (r#"[{"id":"a"} x"#, "expected ',' or ']' at byte 12"),
            (r#"[{"\uD800":1}]"#, "expected a key serde_json can decode"),
        ] {
            let err = parse_page(body, sessions).err().unwrap();
            assert!(err.starts_with(message), "{body}: {err}");
        }
    }

    #[test]
    fn a_record_gives_names_values_and_its_members_as_sent() {
        let sessions = streams::find("sessions").unwrap();
        // The first record's fields must not show in the second's.
        let body = "[{\"x\":1,\"y\\u0020\":2},{\"a\": 1 ,\n\"k\\u0065y\":\"v\",\"c\":[true]}]";
        let mut seen = 0;
        let page = each_record(body, sessions, |r| {
            seen += 1;
            let r = r.unwrap();
            if seen == 1 {
                assert_eq!((r.len(), r.name(1)), (2, "y "));
                return;
            }
            assert_eq!(r.len(), 3);
            assert_eq!((r.name(0), r.name_as_sent(0), r.value(0)), ("a", true, "1"));
            assert_eq!(
                (r.name(1), r.name_as_sent(1), r.value(1)),
                ("key", false, "\"v\"")
            );
            assert_eq!(
                (r.name(2), r.name_as_sent(2), r.value(2)),
                ("c", true, "[true]")
            );
            assert_eq!(r.members(0, 0), "\"a\": 1");
            assert_eq!(r.members(1, 2), "\"k\\u0065y\":\"v\",\"c\":[true]");
            assert_eq!(
                r.members(0, 2),
                &body[body.find("\"a\"").unwrap()..body.len() - 2]
            );
            assert_eq!(r.get("key"), Some("\"v\""));
            assert_eq!(r.get("x"), None);
            assert!(r.multiline());
        })
        .unwrap();
        assert_eq!(
            (seen, page),
            (
                2,
                PageInfo {
                    len: 2,
                    total: None
                }
            )
        );
    }

    #[test]
    fn members_of_an_object_by_name() {
        let obj = r#"{ "_id" : "u1", "n": {"id": "inner"}, "id": 5 }"#;
        assert_eq!(member(obj, "_id"), Some("\"u1\""));
        assert_eq!(member(obj, "id"), Some("5"));
        assert_eq!(member(obj, "n"), Some(r#"{"id": "inner"}"#));
        assert_eq!(member(obj, "email"), None);
        assert_eq!(member("{}", "id"), None);
        assert_eq!(member("[1]", "id"), None);
    }

    /// Every position of each special byte in a 16-byte chunk is found,
    /// and nothing else is flagged (UTF-8 lead and continuation bytes, DEL).
    #[test]
    fn the_simd_compare_flags_exactly_quotes_backslashes_and_controls() {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..16 {
                let mut chunk = [b'a'; 16];
                chunk[at] = special;
                assert_eq!(specials(&chunk), 1 << at, "{special} at {at}");
            }
        }
        let harmless: [u8; 16] = *b"\x7f\x80\xc3\xa9\xe6\xb1\xba \x20!#[]{}~";
        assert_eq!(specials(&harmless), 0);
    }
}
