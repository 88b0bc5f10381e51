//! The JSON types seen of a field, as bits, and the JSON Schema they make:
//! what schema evolution (`evolve.rs`) and discovery (`catalog.rs`) both
//! type new fields by. A file of its own so that neither imports the other.

pub const NULL: u8 = 1;
pub const BOOL: u8 = 2;
pub const INT: u8 = 4;
pub const NUM: u8 = 8;
pub const STR: u8 = 16;
pub const OBJ: u8 = 32;
pub const ARR: u8 = 64;
/// Any JSON value (a catalog's `{}`).
pub const ANY: u8 = 127;

/// The type of a JSON value's text (valid JSON), from its first bytes.
#[inline]
pub fn of(raw: &[u8]) -> u8 {
    match raw.first() {
        Some(b'n') => NULL,
        Some(b't' | b'f') => BOOL,
        Some(b'"') => STR,
        Some(b'{') => OBJ,
        Some(b'[') => ARR,
        Some(_) if raw.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => NUM,
        Some(_) => INT,
        None => NULL,
    }
}

/// Whether values of type `t` fit a field of types `have`: an integer
/// is a number.
#[inline]
pub fn fits(t: u8, have: u8) -> bool {
    have & t == t || (t == INT && have & NUM != 0)
}

/// The types of a JSON Schema (`type` as a string or a list; none: any).
pub fn from_schema(schema: &serde_json::Value) -> u8 {
    let one = |t: &str| match t {
        "null" => NULL,
        "boolean" => BOOL,
        "integer" => INT,
        "number" => NUM,
        "string" => STR,
        "object" => OBJ,
        "array" => ARR,
        _ => ANY,
    };
    match &schema["type"] {
        serde_json::Value::String(t) => one(t) | NULL,
        serde_json::Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .fold(NULL, |acc, t| acc | one(t)),
        _ => ANY,
    }
}

/// The nullable JSON Schema of values of types `t`.
pub fn schema(t: u8) -> serde_json::Value {
    if t & ANY == ANY {
        return serde_json::json!({});
    }
    let mut names = Vec::new();
    for (bit, name) in [
        (BOOL, "boolean"),
        (INT, "integer"),
        (NUM, "number"),
        (STR, "string"),
        (OBJ, "object"),
        (ARR, "array"),
    ] {
        // An integer is a number: "number" covers both.
        if t & bit != 0 && !(bit == INT && t & NUM != 0) {
            names.push(name);
        }
    }
    names.push("null");
    let mut s = serde_json::json!({ "type": names });
    if t & ARR != 0 {
        s["items"] = serde_json::json!({});
    }
    s
}

/// The types, for a log line: `integer or string`.
pub fn describe(t: u8) -> String {
    match schema(t)["type"].as_array() {
        Some(names) => names
            .iter()
            .filter_map(|n| n.as_str())
            .filter(|n| *n != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        None => "any".into(),
    }
}
