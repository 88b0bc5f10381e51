//! A RECORD line taken apart without parsing the record: its stream, the
//! record's exact bytes, and its table version. Batch files hold the raw
//! records of RECORD lines (`batch_files.rs`), so the cut must be exact.
//!
//! Every RECORD line the writer sees has one shape, whether the stream made
//! it (`conform::Conformer::write_record`) or a stream map wrote it again
//! (`maps::Mapper::map_lines`, which keeps the tail):
//!
//! ```text
//! {"type":"RECORD","stream":<JSON string>,"record":<JSON object>[,"version":<integer>],"time_extracted":"<RFC 3339>"}\n
//! ```
//!
//! The record is found from both ends, never by reading it through: the
//! front is fixed up to the stream's closing quote; the tail
//! (`conform::record_tail`) is found from the end. The last
//! `,"time_extracted":"` of the line is the tail's, since what follows it
//! is a timestamp and `"}`. Before it stands either the record's closing
//! `}` or `,"version":N` (digits end it, never a `}`). A record holding
//! keys named `version` or `time_extracted` (free-form fields do) cannot
//! fool this: they are inside the object, before its closing brace.

use std::borrow::Cow;

/// What a RECORD line holds, borrowed from it.
#[derive(Debug, PartialEq)]
pub struct RecordLine<'a> {
    pub stream: Cow<'a, str>,
    /// The record object as written, without a line break.
    pub record: &'a [u8],
    pub version: Option<i64>,
}

const FRONT: &[u8] = br#"{"type":"RECORD","stream":""#;
const RECORD_KEY: &[u8] = br#","record":"#;
const TIME_KEY: &[u8] = br#","time_extracted":""#;
const VERSION_KEY: &[u8] = br#","version":"#;

/// Whether `line` is a RECORD line (and must then be cut by [`cut`]).
pub fn is_record(line: &[u8]) -> bool {
    line.starts_with(FRONT)
}

/// Cuts a RECORD line (with or without its line break). `None` when the
/// line is not of the shape above: a bug of the tap, which the writer
/// stops on rather than write a wrong file.
pub fn cut(line: &[u8]) -> Option<RecordLine<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let rest = line.strip_prefix(FRONT)?;
    let name_end = string_end(rest)?;
    let stream = unescape(&rest[..name_end])?;
    let rest = rest[name_end + 1..].strip_prefix(RECORD_KEY)?;
    let time_at = memchr::memmem::rfind(rest, TIME_KEY)?;
    // What follows is the timestamp, then `"}`: no quote nor escape inside.
    let time = rest[time_at + TIME_KEY.len()..].strip_suffix(b"\"}")?;
    if time.iter().any(|&b| b == b'"' || b == b'\\') {
        return None;
    }
    let before = &rest[..time_at];
    let (record, version) = if before.ends_with(b"}") {
        (before, None)
    } else {
        let digits_at = before
            .iter()
            .rposition(|b| !b.is_ascii_digit() && *b != b'-')
            .map_or(0, |i| i + 1);
        let version: i64 = std::str::from_utf8(&before[digits_at..])
            .ok()?
            .parse()
            .ok()?;
        let record = before[..digits_at].strip_suffix(VERSION_KEY)?;
        (record, Some(version))
    };
    if !(record.starts_with(b"{") && record.ends_with(b"}")) {
        return None;
    }
    Some(RecordLine {
        stream,
        record,
        version,
    })
}

/// Where the JSON string starting at `s` (after its opening quote) ends:
/// the index of its closing quote.
fn string_end(s: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        at += memchr::memchr2(b'"', b'\\', &s[at..])?;
        if s[at] == b'"' {
            return Some(at);
        }
        at += 2; // an escape: skip the escaped character
    }
}

/// A stream name as JSON wrote it (without its quotes): borrowed unless it
/// holds escapes (an alias of a stream map may).
fn unescape(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .ok()
        .map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// A RECORD line as the conformer writes it: its prefix, the record,
    /// the tail of `conform::record_tail`.
    fn line(stream: &str, record: &Value, version: Option<i64>) -> Vec<u8> {
        let mut l = br#"{"type":"RECORD","stream":"#.to_vec();
        l.extend_from_slice(&serde_json::to_vec(stream).unwrap());
        l.extend_from_slice(br#","record":"#);
        l.extend_from_slice(&serde_json::to_vec(record).unwrap());
        l.extend_from_slice(&crate::conform::record_tail(
            "2024-05-01T10:00:00.123Z",
            version,
        ));
        l
    }

    #[test]
    fn the_record_is_cut_exactly_with_or_without_a_version() {
        let rec = json!({"id": "a", "n": 1});
        let l = line("tickets", &rec, None);
        let r = cut(&l).unwrap();
        assert_eq!((r.stream.as_ref(), r.version), ("tickets", None));
        assert_eq!(r.record, br#"{"id":"a","n":1}"#);
        let l = line("tickets", &rec, Some(1_714_557_600_000));
        let r = cut(&l).unwrap();
        assert_eq!(r.version, Some(1_714_557_600_000));
        assert_eq!(r.record, br#"{"id":"a","n":1}"#);
    }

    /// Free-form fields hold whatever their users put in them, including
    /// the keys and the very text of the tail.
    #[test]
    fn keys_and_text_of_the_tail_inside_the_record_do_not_fool_the_cut() {
        let tricky = [
            json!({"version": 7, "time_extracted": "x"}),
            json!({"customData": {"version": 3, "time_extracted": "2024-01-01T00:00:00Z"}}),
            json!({"a": {"b": {"version": -1}}}),
            json!({"s": "\",\"version\":5,\"time_extracted\":\"2024\"}"}),
            json!({"s": "},\"time_extracted\":\"", "version": 12}),
            json!({}),
        ];
        for rec in tricky {
            for version in [None, Some(0), Some(-4), Some(42)] {
                let l = line("sessions", &rec, version);
                let r = cut(&l).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&l)));
                assert_eq!(r.version, version, "{rec}");
                let back: Value = serde_json::from_slice(r.record).unwrap();
                assert_eq!(back, rec);
            }
        }
    }

    #[test]
    fn an_escaped_stream_name_is_read_as_json_reads_it() {
        let l = line("odd \"alias\"\\x", &json!({"id": "1"}), None);
        assert_eq!(cut(&l).unwrap().stream, "odd \"alias\"\\x");
    }

    #[test]
    fn lines_of_other_shapes_are_refused() {
        for l in [
            &br#"{"type":"RECORD","stream":"t","record":{}}"#[..],
            br#"{"type":"RECORD","stream":"t","record":{},"time_extracted":"x"#,
            br#"{"type":"RECORD","stream":"t","record":[],"time_extracted":"x"}"#,
            br#"{"type":"RECORD","stream":"t","record":{},"version":,"time_extracted":"x"}"#,
            br#"{"type":"RECORD","stream":"t","record":{},"vers":1,"time_extracted":"x"}"#,
            br#"{"type":"STATE","value":{}}"#,
        ] {
            assert!(cut(l).is_none(), "{}", String::from_utf8_lossy(l));
        }
    }

    /// Records as stream maps write them again go through the same cut.
    #[test]
    fn mapped_lines_are_cut_as_well() {
        let def = crate::streams::find("teams").unwrap();
        let selected = crate::catalog::select_only(&["teams".to_string()]);
        let settings = crate::maps::MapSettings {
            stream_maps: Some(
                json!({"teams": {"__alias__": "gleap_teams", "version": "'v' + name"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Default::default()
        };
        let mut mapper = crate::maps::Mapper::new(&settings, &selected)
            .unwrap()
            .unwrap();
        let rec = json!({"id": "t1", "name": "abc"});
        let mut out = Vec::new();
        mapper
            .map_lines(&line(def.name, &rec, Some(9)), &mut out)
            .unwrap();
        let r = cut(&out).unwrap();
        assert_eq!((r.stream.as_ref(), r.version), ("gleap_teams", Some(9)));
        let back: Value = serde_json::from_slice(r.record).unwrap();
        assert_eq!(back["version"], "vabc");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("version".to_string()),
            Just("time_extracted".to_string()),
            Just("record".to_string()),
            "[a-z\"\\\\,:{}]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just(r#"","version":1,"time_extracted":""#.to_string()),
                Just("}\n{".to_string()),
                ".{0,12}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_record_comes_back_byte_for_byte(
            fields in prop::collection::vec(("[a-z_]{1,8}|version|time_extracted", arb_json()), 0..6),
            version in prop::option::of(any::<i64>()),
            stream in "[a-z_\"\\\\ ]{1,10}",
        ) {
            let rec = Value::Object(fields.into_iter().collect());
            let l = line(&stream, &rec, version);
            let r = cut(&l).expect("a RECORD line is cut");
            prop_assert_eq!(r.stream.as_ref(), stream.as_str());
            prop_assert_eq!(r.version, version);
            prop_assert_eq!(r.record, &serde_json::to_vec(&rec).unwrap()[..]);
        }
    }
}
