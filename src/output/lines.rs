//! The lines the writer writes that are not records: SCHEMA and
//! ACTIVATE_VERSION, and the filter that writes each version of an
//! evolving schema once, in order (`evolve.rs`).

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

use crate::streams::StreamDef;

pub fn schema_line(def: &StreamDef, schema: &Value, incremental: bool) -> Vec<u8> {
    let mut msg = json!({
        "type": "SCHEMA",
        "stream": def.name,
        "schema": schema,
        "key_properties": [def.key],
    });
    if let (true, Some(rk)) = (incremental, def.replication_key) {
        msg["bookmark_properties"] = json!([rk]);
    }
    let mut line = serde_json::to_vec(&msg).expect("a JSON value serialises");
    line.push(b'\n');
    line
}

pub fn activate_version_line(def: &StreamDef, version: i64) -> Vec<u8> {
    let mut line = serde_json::to_vec(
        &json!({"type": "ACTIVATE_VERSION", "stream": def.name, "version": version}),
    )
    .expect("a JSON value serialises");
    line.push(b'\n');
    line
}

/// Starts and ends the version of a SCHEMA line written for evolution.
/// JSON text never holds it raw (control characters are escaped in
/// strings), so it cannot be part of a RECORD line.
pub const MARK: u8 = 0x1e;

/// Set once any stream's schema was extended: until then the writer does
/// not look for marked lines, so a sync with nothing new costs nothing.
static ANY_MARKED: AtomicBool = AtomicBool::new(false);

/// Called when a stream's schema is first extended (`evolve.rs`).
pub fn note_marked() {
    ANY_MARKED.store(true, Ordering::Relaxed);
}

fn any_marked() -> bool {
    ANY_MARKED.load(Ordering::Relaxed)
}

/// The writer's side: drops marked SCHEMA lines older than the last written
/// for their stream, and unmarks the others.
#[derive(Default)]
pub struct SchemaFilter {
    /// Per stream name, the last version written.
    written: Vec<(Box<str>, u32)>,
}

impl SchemaFilter {
    /// `lines` as they go to stdout; `None` when unchanged (no marked line).
    pub fn apply(&mut self, lines: &[u8]) -> Option<Vec<u8>> {
        if !any_marked() {
            return None;
        }
        // A stream's plain SCHEMA (sent as a batch of its own, at the start
        // of a pass) sets its schema back: the next marked line is needed.
        if lines.starts_with(br#"{"type":"SCHEMA","stream":""#) {
            let stream = stream_of(lines);
            self.written.retain(|(s, _)| **s != *stream);
        }
        let mut at = memchr::memchr(MARK, lines)?;
        let mut out = Vec::with_capacity(lines.len());
        let mut from = 0;
        loop {
            // A mark starts a line: `MARK version MARK {"type":"SCHEMA","stream":...}\n`.
            out.extend_from_slice(&lines[from..at]);
            let rest = &lines[at + 1..];
            let end = memchr::memchr(MARK, rest).unwrap_or(0);
            let version: u32 = std::str::from_utf8(&rest[..end])
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let line_start = at + 1 + end + 1;
            let line_end = memchr::memchr(b'\n', &lines[line_start..])
                .map_or(lines.len(), |n| line_start + n + 1);
            let line = &lines[line_start..line_end];
            let stream = stream_of(line);
            let last = match self.written.iter_mut().find(|(s, _)| **s == *stream) {
                Some((_, v)) => v,
                None => {
                    self.written.push((stream.into(), 0));
                    &mut self.written.last_mut().expect("just pushed").1
                }
            };
            if version > *last {
                *last = version;
                out.extend_from_slice(line);
            }
            from = line_end;
            match memchr::memchr(MARK, &lines[from..]) {
                Some(n) => at = from + n,
                None => break,
            }
        }
        out.extend_from_slice(&lines[from..]);
        Some(out)
    }
}

/// The stream name of a SCHEMA line as `output::schema_line` writes it.
fn stream_of(line: &[u8]) -> &str {
    let prefix = br#"{"type":"SCHEMA","stream":""#;
    let rest = line.strip_prefix(&prefix[..]).unwrap_or(b"");
    let end = memchr::memchr(b'"', rest).unwrap_or(0);
    std::str::from_utf8(&rest[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_writes_each_schema_version_once_and_never_an_older_one() {
        let def = crate::streams::find("teams").unwrap();
        let base = json!({"type": "object", "properties": {"id": {"type": "string"}}});
        let reg = crate::evolve::Registry::new(
            def,
            base,
            &serde_json::Map::new(),
            vec![],
            crate::evolve::Mode::Evolve,
            false,
        );
        reg.admit("a", crate::evolve::types::INT);
        let (v1, _) = reg.line();
        reg.admit("b", crate::evolve::types::STR);
        let (v2, _) = reg.line();
        let record = b"{\"type\":\"RECORD\",\"stream\":\"teams\",\"record\":{}}\n";
        let page = |schemas: &[&[u8]]| {
            let mut p = record.to_vec();
            for s in schemas {
                p.extend_from_slice(s);
                p.extend_from_slice(record);
            }
            p
        };
        let mut f = SchemaFilter::default();
        let out = f.apply(&page(&[&v2])).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains(MARK as char));
        let schema: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(schema["schema"]["properties"]["b"]["type"][0], "string");
        // An older version, or the same again, is dropped.
        let out = f.apply(&page(&[&v1, &v2])).unwrap();
        assert_eq!(out, record.repeat(3));
        // After the stream's plain SCHEMA (a new pass), the current one is
        // written again.
        let plain = schema_line(def, &json!({}), false);
        assert!(f.apply(&plain).is_none());
        let out = f.apply(&page(&[&v2])).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);
    }
}
