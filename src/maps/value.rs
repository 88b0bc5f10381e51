//! The values expressions compute with, as Python has them (the SDK
//! evaluates map expressions in Python): `str()` and `repr()` of each,
//! Python's float formatting, and how each is written into a RECORD (as the
//! SDK's JSON encoder writes it) or by `json.dumps`.

use std::sync::Arc;

use serde_json::Value;

use super::builtin::Builtin;
use super::dates::{Date, DateTime, TimeDelta};

#[derive(Clone, Debug)]
pub enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    List(Arc<Vec<Val>>),
    Tuple(Arc<Vec<Val>>),
    /// Keys in insertion order, as Python's dicts keep them.
    Dict(Arc<Vec<(Val, Val)>>),
    DateTime(DateTime),
    Date(Date),
    TimeDelta(TimeDelta),
    /// A fixed-offset time zone (seconds east of UTC).
    Tz(i32),
    Builtin(Builtin),
    /// A method bound to its object: `email.upper`.
    Method(Box<Val>, Arc<str>),
}

impl Val {
    pub fn str(s: impl Into<Arc<str>>) -> Val {
        Val::Str(s.into())
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::None => "NoneType",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "str",
            Val::List(_) => "list",
            Val::Tuple(_) => "tuple",
            Val::Dict(_) => "dict",
            Val::DateTime(_) => "datetime.datetime",
            Val::Date(_) => "datetime.date",
            Val::TimeDelta(_) => "datetime.timedelta",
            Val::Tz(_) => "datetime.timezone",
            Val::Builtin(_) => "builtin_function_or_method",
            Val::Method(..) => "method",
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Val::None => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) | Val::Tuple(l) => !l.is_empty(),
            Val::Dict(d) => !d.is_empty(),
            Val::TimeDelta(t) => !t.is_zero(),
            _ => true,
        }
    }

    /// A JSON value read from a record (or `stream_map_config`).
    pub fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::None,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Val::str(s.as_str()),
            Value::Array(a) => Val::List(Arc::new(a.iter().map(Val::from_json).collect())),
            Value::Object(o) => Val::Dict(Arc::new(
                o.iter()
                    .map(|(k, v)| (Val::str(k.as_str()), Val::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// Python's `str(x)`.
    pub fn to_str(&self) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            Val::DateTime(d) => d.to_string_py(' '),
            Val::Date(d) => d.isoformat(),
            Val::TimeDelta(t) => t.to_string_py(),
            other => other.repr(),
        }
    }

    /// Python's `repr(x)`.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        self.repr_into(&mut out);
        out
    }

    fn repr_into(&self, out: &mut String) {
        match self {
            Val::None => out.push_str("None"),
            Val::Bool(true) => out.push_str("True"),
            Val::Bool(false) => out.push_str("False"),
            Val::Int(i) => out.push_str(&i.to_string()),
            Val::Float(f) => out.push_str(&float_repr(*f)),
            Val::Str(s) => str_repr(s, out),
            Val::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.repr_into(out);
                }
                out.push(']');
            }
            Val::Tuple(items) => {
                out.push('(');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.repr_into(out);
                }
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Val::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.repr_into(out);
                    out.push_str(": ");
                    v.repr_into(out);
                }
                out.push('}');
            }
            Val::DateTime(d) => out.push_str(&d.repr()),
            Val::Date(d) => out.push_str(&d.repr()),
            Val::TimeDelta(t) => out.push_str(&t.repr()),
            Val::Tz(0) => out.push_str("datetime.timezone.utc"),
            Val::Tz(s) => out.push_str(&format!(
                "datetime.timezone({})",
                TimeDelta::from_micros(*s as i64 * 1_000_000).repr()
            )),
            Val::Builtin(b) => out.push_str(&format!("<built-in function {}>", b.name())),
            Val::Method(_, m) => out.push_str(&format!("<built-in method {m}>")),
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds
/// single quotes and no double ones.
fn str_repr(s: &str, out: &mut String) {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

/// Close to Python's `str.isprintable` for what records hold: controls,
/// separators other than the space, and unassigned format characters are not.
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c as u32, 0x80..=0xa0 | 0xad | 0x2028 | 0x2029 | 0x200b..=0x200f | 0xfeff))
}

/// Python's `repr(float)`: the shortest text that reads back the same,
/// fixed notation for exponents from -4 to 15, scientific otherwise.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x".
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.push_str(&"0".repeat(point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// How a computed value is written into a RECORD, as the SDK's encoder
/// writes it: datetimes and dates as ISO 8601, other non-JSON values as
/// their `str()`. NaN and infinities become `null` (`ignore_nan`).
pub fn write_json(v: &Val, out: &mut Vec<u8>) {
    match v {
        Val::None => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Val::Float(f) if !f.is_finite() => out.extend_from_slice(b"null"),
        Val::Float(f) => out.extend_from_slice(float_repr(*f).as_bytes()),
        Val::Str(s) => write_json_str(out, s),
        Val::List(items) | Val::Tuple(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Val::Dict(items) => {
            out.push(b'{');
            for (i, (k, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, &json_key(k));
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }
        Val::DateTime(d) => write_json_str(out, &d.isoformat('T')),
        other => write_json_str(out, &other.to_str()),
    }
}

/// A dict key as JSON encoders write it: strings as they are, numbers,
/// booleans and None as their JSON text.
fn json_key(k: &Val) -> String {
    match k {
        Val::Str(s) => s.to_string(),
        Val::None => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Float(f) => float_repr(*f),
        other => other.to_str(),
    }
}

pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Python's `json.dumps(v)` (`compact`: the SDK's `separators=(",", ":")`),
/// with `ensure_ascii`: every character outside printable ASCII escaped.
pub fn py_json(v: &Val, compact: bool, out: &mut String) -> Result<(), String> {
    let (item_sep, key_sep) = if compact { (",", ":") } else { (", ", ": ") };
    match v {
        Val::None => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => out.push_str(&i.to_string()),
        Val::Float(f) if f.is_nan() => out.push_str(if compact { "null" } else { "NaN" }),
        Val::Float(f) if f.is_infinite() => out.push_str(match (compact, *f > 0.0) {
            (true, _) => "null",
            (false, true) => "Infinity",
            (false, false) => "-Infinity",
        }),
        Val::Float(f) => out.push_str(&float_repr(*f)),
        Val::Str(s) => py_json_str(s, out),
        Val::List(items) | Val::Tuple(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                py_json(item, compact, out)?;
            }
            out.push(']');
        }
        Val::Dict(items) => {
            out.push('{');
            for (i, (k, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                match k {
                    Val::Str(_) | Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::None => {
                        py_json_str(&json_key(k), out)
                    }
                    other => {
                        return Err(format!(
                            "keys must be str, int, float, bool or None, not {}",
                            other.type_name()
                        ))
                    }
                }
                out.push_str(key_sep);
                py_json(item, compact, out)?;
            }
            out.push('}');
        }
        Val::DateTime(d) if compact => py_json_str(&d.isoformat('T'), out),
        other if compact => py_json_str(&other.to_str(), out),
        other => {
            return Err(format!(
                "Object of type {} is not JSON serializable",
                other.type_name().rsplit('.').next().unwrap_or("")
            ))
        }
    }
    Ok(())
}

pub fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Raw JSON text (valid: the tap wrote it) re-encoded as the SDK's
/// `serialize_json` writes a parsed value: no whitespace, strings with
/// `ensure_ascii`, numbers as written (the SDK reads them as `Decimal`).
pub fn raw_to_py_json(raw: &str, out: &mut String) {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let end = string_end(b, i);
                let text: String = serde_json::from_str(&raw[i..end])
                    .unwrap_or_else(|_| raw[i + 1..end - 1].into());
                py_json_str(&text, out);
                i = end;
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b'"' | b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                out.push_str(&raw[start..i]);
            }
        }
    }
}

/// The index just past the JSON string starting at `b[at]` (a quote).
/// Most strings (keys, ids, dates) are short: they are read a byte at a
/// time, and only a long one is searched with SIMD.
pub fn string_end(b: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    let short_end = (i + 24).min(b.len());
    while i < short_end {
        match b[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    while i < b.len() {
        match memchr::memchr2(b'"', b'\\', &b[i..]) {
            Some(off) if b[i + off] == b'\\' => i += off + 2,
            Some(off) => return i + off + 1,
            None => break,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123_456_789.123_456_79, "123456789.12345679"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (-0.0, "-0.0"),
            (3.0, "3.0"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(float_repr(f), want);
        }
    }

    #[test]
    fn reprs_are_pythons() {
        let v = Val::List(Arc::new(vec![
            Val::Int(1),
            Val::str("a"),
            Val::None,
            Val::Bool(true),
            Val::str("it's"),
            Val::Tuple(Arc::new(vec![Val::Float(1.5)])),
        ]));
        assert_eq!(v.to_str(), "[1, 'a', None, True, \"it's\", (1.5,)]");
        let d = Val::Dict(Arc::new(vec![(Val::str("a"), Val::Float(1.5))]));
        assert_eq!(d.to_str(), "{'a': 1.5}");
    }

    #[test]
    fn json_dumps_escapes_as_python() {
        let mut s = String::new();
        py_json(
            &Val::Dict(Arc::new(vec![(
                Val::str("a"),
                Val::List(Arc::new(vec![Val::Int(1), Val::str("é😀")])),
            )])),
            false,
            &mut s,
        )
        .unwrap();
        assert_eq!(s, r#"{"a": [1, "\u00e9\ud83d\ude00"]}"#);
        let mut s = String::new();
        raw_to_py_json(r#"{ "x" : [1, 2.50, "é\n"], "y": null }"#, &mut s);
        assert_eq!(s, r#"{"x":[1,2.50,"\u00e9\n"],"y":null}"#);
    }
}
