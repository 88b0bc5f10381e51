//! A small, fast JSON writer into a `Vec<u8>`.
//!
//! Pages are written directly as bytes instead of building
//! `serde_json::Value` trees: the fake must never be the bottleneck of a
//! benchmark. Commas are handled with a single flag: a value or container
//! start writes a comma when the previous sibling left one pending; a key
//! clears it so its value does not get one.

/// JSON writer. Keys passed to `key` must not need escaping (they are
/// static ASCII identifiers); string values are always escaped.
pub(crate) struct Json {
    pub buf: Vec<u8>,
    comma: bool,
}

impl Json {
    pub fn with_capacity(n: usize) -> Self {
        Json {
            buf: Vec::with_capacity(n),
            comma: false,
        }
    }

    #[inline]
    fn pre(&mut self) {
        if self.comma {
            self.buf.push(b',');
        }
    }

    #[inline]
    pub fn key(&mut self, k: &str) {
        self.pre();
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.comma = false;
    }

    /// A key that may need escaping (configured by the user).
    pub fn key_escaped(&mut self, k: &str) {
        self.pre();
        escape_into(&mut self.buf, k);
        self.buf.push(b':');
        self.comma = false;
    }

    #[inline]
    pub fn begin_obj(&mut self) {
        self.pre();
        self.buf.push(b'{');
        self.comma = false;
    }

    #[inline]
    pub fn end_obj(&mut self) {
        self.buf.push(b'}');
        self.comma = true;
    }

    #[inline]
    pub fn begin_arr(&mut self) {
        self.pre();
        self.buf.push(b'[');
        self.comma = false;
    }

    #[inline]
    pub fn end_arr(&mut self) {
        self.buf.push(b']');
        self.comma = true;
    }

    #[inline]
    pub fn str(&mut self, s: &str) {
        self.pre();
        escape_into(&mut self.buf, s);
        self.comma = true;
    }

    /// A string value assembled from several pieces (no allocation).
    pub fn str_parts(&mut self, parts: &[&str]) {
        self.pre();
        self.buf.push(b'"');
        for p in parts {
            escape_body(&mut self.buf, p);
        }
        self.buf.push(b'"');
        self.comma = true;
    }

    #[inline]
    pub fn i64(&mut self, v: i64) {
        self.pre();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(v).as_bytes());
        self.comma = true;
    }

    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.pre();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(v).as_bytes());
        self.comma = true;
    }

    /// A decimal number given in tenths, e.g. 35 -> `3.5`.
    pub fn tenths(&mut self, v: i64) {
        self.pre();
        if v < 0 {
            self.buf.push(b'-');
        }
        let a = v.unsigned_abs();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(a / 10).as_bytes());
        self.buf.push(b'.');
        self.buf.push(b'0' + (a % 10) as u8);
        self.comma = true;
    }

    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.pre();
        self.buf
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        self.comma = true;
    }

    #[inline]
    pub fn null(&mut self) {
        self.pre();
        self.buf.extend_from_slice(b"null");
        self.comma = true;
    }

    /// Bytes known to be a valid, escape-free JSON string body (ids, hex).
    #[inline]
    pub fn ascii_str(&mut self, s: &[u8]) {
        self.pre();
        self.buf.push(b'"');
        self.buf.extend_from_slice(s);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// ISO 8601 UTC timestamp with milliseconds, `2024-01-15T10:30:00.000Z`.
    #[inline]
    pub fn date(&mut self, ms: i64) {
        self.pre();
        self.buf.push(b'"');
        push_iso(&mut self.buf, ms, true);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// Timestamp without a time zone designator (`2024-01-15T10:30:00.000`).
    pub fn date_no_tz(&mut self, ms: i64) {
        self.pre();
        self.buf.push(b'"');
        push_iso(&mut self.buf, ms, false);
        self.buf.push(b'"');
        self.comma = true;
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Writes `s` as a quoted JSON string.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_body(out, s);
    out.push(b'"');
}

/// Bytes that must be escaped inside a JSON string.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Writes the escaped body of a JSON string: quotes, backslashes and all
/// control characters are escaped; other UTF-8 is copied as is.
fn escape_body(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Fast path: most strings need no escaping at all.
    if !b.iter().any(|&c| NEEDS_ESCAPE[c as usize]) {
        out.extend_from_slice(b);
        return;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !NEEDS_ESCAPE[c as usize] {
            continue;
        }
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm): much faster than going through
/// chrono's formatting machinery for every timestamp of a page.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[inline]
fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `ms` (epoch milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmm[Z]`.
pub(crate) fn push_iso(out: &mut Vec<u8>, ms: i64, tz: bool) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
    out.push(b'T');
    push2(out, sod / 3600);
    out.push(b':');
    push2(out, sod / 60 % 60);
    out.push(b':');
    push2(out, sod % 60);
    out.push(b'.');
    out.push(b'0' + (milli / 100) as u8);
    push2(out, milli % 100);
    if tz {
        out.push(b'Z');
    }
}

/// Formats epoch milliseconds as the API does: `2024-01-15T10:30:00.000Z`.
pub(crate) fn iso(ms: i64) -> String {
    let mut v = Vec::with_capacity(24);
    push_iso(&mut v, ms, true);
    String::from_utf8(v).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn iso_matches_chrono() {
        for ms in [
            0i64,
            1_704_067_200_000,
            1_705_314_600_123,
            951_782_400_999,
            4_102_444_799_999,
        ] {
            let c = chrono::Utc.timestamp_millis_opt(ms).unwrap();
            assert_eq!(iso(ms), c.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
    }

    #[test]
    fn escapes_strings() {
        let mut j = Json::with_capacity(64);
        j.begin_arr();
        let nasty = "q\"b\\n\nt\tc\u{1}e\u{7f}ü😀\r\u{8}\u{c}";
        j.str(nasty);
        j.tenths(-35);
        j.end_arr();
        let v: serde_json::Value = serde_json::from_slice(&j.buf).unwrap();
        assert_eq!(v[0], nasty);
        assert_eq!(v[1], -3.5);
    }
}
