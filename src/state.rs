//! Singer state, in the Meltano SDK's layout:
//!
//! ```json
//! {"bookmarks": {
//!   "sessions": {"replication_key": "updatedAt", "replication_key_value": "2024-05-01T10:00:00.000Z"},
//!   "tickets": {"partitions": [
//!     {"context": {}, "replication_key": "updatedAt", "replication_key_value": "..."},
//!     {"context": {"archived": "true"}, "replication_key": "updatedAt", "replication_key_value": "..."}]}}}
//! ```
//!
//! Whatever else the given state holds (streams not synced this time, keys of
//! other tools) is carried through untouched: the orchestrator saves the last
//! STATE it sees, so dropping a key here would lose it for good.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::seen::Seen;
use crate::streams::{self, StreamDef};
use crate::timefmt;

/// A partition's query parameters, as written in the state's `context`.
pub type Context = &'static [(&'static str, &'static str)];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    value: Map<String, Value>,
}

impl State {
    pub fn empty() -> Self {
        State::default()
    }

    pub fn load(path: &Path) -> Result<State> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::State(format!("cannot read {name}: {e}")))?;
        if text.trim().is_empty() {
            // An orchestrator's first run may hand over an empty file.
            return Ok(State::empty());
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::State(format!("{name} is not valid JSON: {e}")))?;
        State::from_value(value, Utc::now()).map_err(|m| Error::State(format!("{name}: {m}")))
    }

    /// Accepts the state itself, a whole STATE message (the last line of a
    /// previous run's output), or Meltano's `{"singer_state": ...}` export.
    pub fn from_value(value: Value, now: DateTime<Utc>) -> std::result::Result<State, String> {
        let mut value = match value {
            Value::Object(map) => map,
            _ => return Err("expected a JSON object like {\"bookmarks\": {...}}".into()),
        };
        if value.get("type").and_then(Value::as_str) == Some("STATE") {
            match value.remove("value") {
                Some(Value::Object(inner)) => value = inner,
                _ => return Err("a STATE message without an object \"value\"".into()),
            }
        } else if let Some(Value::Object(inner)) = value.get("singer_state") {
            value = inner.clone();
        }
        let state = State { value };
        state.validate(now)?;
        Ok(state)
    }

    fn validate(&self, now: DateTime<Utc>) -> std::result::Result<(), String> {
        let Some(bookmarks) = self.value.get("bookmarks") else {
            return Ok(());
        };
        let bookmarks = bookmarks
            .as_object()
            .ok_or("\"bookmarks\" must be an object keyed by stream name")?;
        for (stream, bm) in bookmarks {
            // Streams this tap does not know are kept as they are, unchecked.
            if streams::find(stream).is_none() {
                continue;
            }
            let bm = bm
                .as_object()
                .ok_or_else(|| format!("bookmarks.{stream} must be an object"))?;
            check_value(&format!("bookmarks.{stream}"), bm, now)?;
            check_reconciled(&format!("bookmarks.{stream}"), bm, now)?;
            check_progress(&format!("bookmarks.{stream}"), bm)?;
            check_lookback(&format!("bookmarks.{stream}"), bm)?;
            if let Some(parts) = bm.get("partitions") {
                let parts = parts
                    .as_array()
                    .ok_or_else(|| format!("bookmarks.{stream}.partitions must be an array"))?;
                for (i, p) in parts.iter().enumerate() {
                    let p = p.as_object().ok_or_else(|| {
                        format!("bookmarks.{stream}.partitions[{i}] must be an object")
                    })?;
                    check_value(&format!("bookmarks.{stream}.partitions[{i}]"), p, now)?;
                    check_progress(&format!("bookmarks.{stream}.partitions[{i}]"), p)?;
                    check_lookback(&format!("bookmarks.{stream}.partitions[{i}]"), p)?;
                }
            }
        }
        Ok(())
    }

    fn stream(&self, name: &str) -> Option<&Map<String, Value>> {
        self.value.get("bookmarks")?.get(name)?.as_object()
    }

    /// The object holding a partition's bookmark, if the state has one.
    fn holder(&self, def: &StreamDef, context: Context) -> Option<&Map<String, Value>> {
        let bm = self.stream(def.name)?;
        if !def.is_partitioned() {
            return Some(bm);
        }
        bm.get("partitions")?
            .as_array()?
            .iter()
            .filter_map(Value::as_object)
            .find(|p| context_matches(p, context))
    }

    /// Where an incremental partition resumes: its bookmark, if any.
    pub fn bookmark(&self, def: &StreamDef, context: Context) -> Option<DateTime<Utc>> {
        self.holder(def, context)?
            .get("replication_key_value")?
            .as_str()
            .and_then(timefmt::parse_instant)
    }

    /// Where the holder of `context`'s bookmark is, created if missing.
    fn holder_mut(&mut self, def: &StreamDef, context: Context) -> Option<&mut Map<String, Value>> {
        let bookmarks = self.value.entry("bookmarks").or_insert_with(|| json!({}));
        let stream = bookmarks
            .as_object_mut()?
            .entry(def.name)
            .or_insert_with(|| json!({}))
            .as_object_mut()?;
        if !def.is_partitioned() {
            return Some(stream);
        }
        let parts = stream
            .entry("partitions")
            .or_insert_with(|| json!([]))
            .as_array_mut()?;
        let pos = parts
            .iter()
            .position(|p| p.as_object().is_some_and(|p| context_matches(p, context)));
        let pos = pos.unwrap_or_else(|| {
            let ctx: Map<String, Value> = context
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            parts.push(json!({ "context": ctx }));
            // In the stream's own order, whichever partition's walk moved
            // first: the same state prints the same, run after run.
            let rank = |p: &Value| {
                def.partitions()
                    .position(|c| p.as_object().is_some_and(|p| context_matches(p, c)))
                    .unwrap_or(usize::MAX)
            };
            parts.sort_by_key(rank);
            parts
                .iter()
                .position(|p| p.as_object().is_some_and(|p| context_matches(p, context)))
                .expect("just pushed")
        });
        parts[pos].as_object_mut()
    }

    /// Moves a partition's bookmark, sets (or, with `None`, clears) the
    /// progress of its walk above it, and records the settle window it was
    /// set with (and, given, what the window held). Returns whether the
    /// state changed.
    pub fn set_bookmark(
        &mut self,
        def: &StreamDef,
        context: Context,
        value: &str,
        progress: Option<&Progress>,
        lookback: Option<&Lookback>,
    ) -> bool {
        let rk = def.replication_key.unwrap_or("updatedAt");
        let Some(holder) = self.holder_mut(def, context) else {
            return false;
        };
        let new = json!(value);
        let progress = progress.map(Progress::to_value);
        let lookback = lookback.map(|l| l.merged_into(holder.get(LOOKBACK)));
        if holder.get("replication_key_value") == Some(&new)
            && holder.get("replication_key") == Some(&json!(rk))
            && holder.get("progress") == progress.as_ref()
            && (lookback.is_none() || holder.get(LOOKBACK) == lookback.as_ref())
        {
            return false;
        }
        holder.insert("replication_key".into(), json!(rk));
        holder.insert("replication_key_value".into(), new);
        match progress {
            Some(p) => holder.insert("progress".into(), p),
            None => holder.remove("progress"),
        };
        if let Some(l) = lookback {
            holder.insert(LOOKBACK.into(), l);
        }
        true
    }

    /// The settle window a partition's bookmark was set with, and what the
    /// last complete run saw in it. `None` for a bookmark written before
    /// the tap had a settle window (or by hand).
    pub fn lookback(&self, def: &StreamDef, context: Context) -> Option<Lookback> {
        Lookback::from_value(self.holder(def, context)?.get(LOOKBACK)?).ok()
    }

    /// The progress a previous run left above a partition's bookmark.
    pub fn progress(&self, def: &StreamDef, context: Context) -> Option<Progress> {
        Progress::from_value(self.holder(def, context)?.get("progress")?).ok()
    }

    /// When the stream's last complete reconciliation (a whole pass ended
    /// by ACTIVATE_VERSION) began: `bookmarks.<stream>.reconciled_at`.
    pub fn reconciled_at(&self, def: &StreamDef) -> Option<DateTime<Utc>> {
        self.stream(def.name)?
            .get(RECONCILED_AT)?
            .as_str()
            .and_then(timefmt::parse_instant)
    }

    /// Records a complete reconciliation that began at `at_ms`.
    pub fn set_reconciled_at(&mut self, def: &StreamDef, at_ms: i64) {
        let bookmarks = self.value.entry("bookmarks").or_insert_with(|| json!({}));
        if let Some(stream) = bookmarks.as_object_mut().and_then(|b| {
            b.entry(def.name)
                .or_insert_with(|| json!({}))
                .as_object_mut()
        }) {
            stream.insert(
                RECONCILED_AT.into(),
                json!(timefmt::format_epoch_ms(at_ms).unwrap_or_default()),
            );
        }
    }

    pub fn to_value(&self) -> Value {
        let mut v = Value::Object(self.value.clone());
        if self.value.get("bookmarks").is_none() {
            v["bookmarks"] = json!({});
        }
        v
    }
}

/// How far a walk interrupted above its bookmark got: the ranges of the
/// replication key, each `[lo, hi)`, whose records were all written, and the
/// end the walk was heading to. A run resumed from the state reads only
/// what lies between them (`pager::walk`). Small: a range per slice at most.
///
/// ```json
/// "progress": {"to": "2024-05-01T10:00:00.000Z",
///              "done": [["2024-03-01T00:00:00.000Z", "2024-03-09T12:00:00.000Z"]]}
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub to_ms: i64,
    pub done: Vec<(i64, i64)>,
}

impl Progress {
    fn to_value(&self) -> Value {
        let at = |ms: i64| json!(timefmt::format_epoch_ms(ms).unwrap_or_default());
        json!({
            "to": at(self.to_ms),
            "done": self.done.iter().map(|&(lo, hi)| json!([at(lo), at(hi)])).collect::<Vec<_>>(),
        })
    }

    fn from_value(v: &Value) -> std::result::Result<Progress, String> {
        let instant = |v: &Value, what: &str| {
            v.as_str()
                .and_then(timefmt::parse_instant)
                .map(|t| t.timestamp_millis())
                .ok_or_else(|| format!("{what} must be a date-time string, got {v}"))
        };
        let o = v
            .as_object()
            .ok_or("must be an object {\"to\": ..., \"done\": [...]}")?;
        let to_ms = instant(o.get("to").unwrap_or(&Value::Null), "\"to\"")?;
        let done = o
            .get("done")
            .and_then(Value::as_array)
            .ok_or("\"done\" must be an array of [from, to] pairs")?
            .iter()
            .enumerate()
            .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
                Some([lo, hi]) => {
                    let (lo, hi) = (
                        instant(lo, &format!("done[{i}][0]"))?,
                        instant(hi, &format!("done[{i}][1]"))?,
                    );
                    if lo <= hi && hi <= to_ms {
                        Ok((lo, hi))
                    } else {
                        Err(format!("done[{i}] must run forward and end by \"to\""))
                    }
                }
                _ => Err(format!("done[{i}] must be a [from, to] pair")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Progress { to_ms, done })
    }
}

/// The widest settle window, set or learned: a day. A list that shows
/// updates later than that is no list to sync incrementally.
pub const MAX_LOOKBACK_WINDOW_SECONDS: u32 = 86_400;

/// The key of a bookmark's [`Lookback`] in the state.
const LOOKBACK: &str = "lookback";

/// How far behind the API's clock a bookmark was set, and what the last
/// complete run delivered within that distance (`pager::settle`):
///
/// ```json
/// "lookback": {"window_seconds": 300, "learned_window_seconds": 1200,
///              "seen": {"from": "2024-05-01T09:55:00.000Z", "through": "2024-05-01T10:00:00.999Z",
///                       "versions": "base64 of a Bloom filter"}}
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lookback {
    /// The settle window the bookmark was held back by.
    pub window_s: u32,
    /// A window a run found the API needs (it listed an update about that
    /// late), wider than the configured one; `None` keeps what the state holds.
    pub learned_s: Option<u32>,
    /// Set by a walk that completed; `None` keeps what the state holds.
    pub seen: Option<SeenWindow>,
}

/// What a complete run delivered with a stamp in `[from_ms, through_ms)`:
/// `through_ms` is its signpost, the API's clock as it started.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenWindow {
    pub from_ms: i64,
    pub through_ms: i64,
    pub versions: Seen,
}

impl Lookback {
    /// This record written over the one the state holds: the window always,
    /// what was seen only when this one says.
    fn merged_into(&self, old: Option<&Value>) -> Value {
        let at = |ms: i64| json!(timefmt::format_epoch_ms(ms).unwrap_or_default());
        let seen = match &self.seen {
            Some(s) => Some(json!({
                "from": at(s.from_ms),
                "through": at(s.through_ms),
                "versions": s.versions.encode(),
            })),
            None => old.and_then(|o| o.get("seen")).cloned(),
        };
        let mut v = json!({ "window_seconds": self.window_s });
        let learned = match self.learned_s {
            Some(s) => Some(json!(s)),
            None => old.and_then(|o| o.get("learned_window_seconds")).cloned(),
        };
        if let Some(learned) = learned {
            v["learned_window_seconds"] = learned;
        }
        if let Some(seen) = seen {
            v["seen"] = seen;
        }
        v
    }

    fn from_value(v: &Value) -> std::result::Result<Lookback, String> {
        let o = v
            .as_object()
            .ok_or("must be an object {\"window_seconds\": ..., \"seen\": {...}}")?;
        let window_s = o
            .get("window_seconds")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("\"window_seconds\" must be a whole number of seconds")?;
        let learned_s = match o.get("learned_window_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n <= MAX_LOOKBACK_WINDOW_SECONDS)
                    .ok_or("\"learned_window_seconds\" must be a whole number of seconds, at most 86400")?,
            ),
        };
        let seen = match o.get("seen") {
            None | Some(Value::Null) => None,
            Some(s) => {
                let instant = |key: &str| {
                    s.get(key)
                        .and_then(Value::as_str)
                        .and_then(timefmt::parse_instant)
                        .map(|t| t.timestamp_millis())
                        .ok_or_else(|| format!("\"seen.{key}\" must be a date-time string"))
                };
                let (from_ms, through_ms) = (instant("from")?, instant("through")?);
                if from_ms > through_ms {
                    return Err("\"seen.from\" must not be after \"seen.through\"".into());
                }
                let versions = s
                    .get("versions")
                    .and_then(Value::as_str)
                    .ok_or_else(|| "\"seen.versions\" must be a string".to_string())
                    .and_then(|t| Seen::decode(t).map_err(|e| format!("\"seen.versions\" {e}")))?;
                Some(SeenWindow {
                    from_ms,
                    through_ms,
                    versions,
                })
            }
        };
        Ok(Lookback {
            window_s,
            learned_s,
            seen,
        })
    }
}

/// A bookmark's settle record, where there is one, must be readable.
fn check_lookback(at: &str, holder: &Map<String, Value>) -> std::result::Result<(), String> {
    match holder.get(LOOKBACK) {
        None => Ok(()),
        Some(l) => Lookback::from_value(l).map(|_| ()).map_err(|e| {
            format!("{at}.{LOOKBACK}: {e} (or remove it: the next run then reads one settle window again)")
        }),
    }
}

fn context_matches(p: &Map<String, Value>, context: Context) -> bool {
    let Some(ctx) = p.get("context").and_then(Value::as_object) else {
        return context.is_empty();
    };
    ctx.len() == context.len()
        && context
            .iter()
            .all(|(k, v)| ctx.get(*k).and_then(Value::as_str) == Some(*v))
}

/// A walk's progress, where there is one, must be readable.
fn check_progress(at: &str, holder: &Map<String, Value>) -> std::result::Result<(), String> {
    match holder.get("progress") {
        None => Ok(()),
        Some(p) => Progress::from_value(p).map(|_| ()).map_err(|e| {
            format!("{at}.progress: {e} (or remove it: the run then reads on from the bookmark)")
        }),
    }
}

/// Where a stream's last complete reconciliation is kept.
const RECONCILED_AT: &str = "reconciled_at";

/// A reconciliation's time must be a date, not one in the future (which
/// would put the next one off for as long).
fn check_reconciled(
    at: &str,
    holder: &Map<String, Value>,
    now: DateTime<Utc>,
) -> std::result::Result<(), String> {
    let Some(v) = holder.get(RECONCILED_AT) else {
        return Ok(());
    };
    match v.as_str().and_then(timefmt::parse_instant) {
        Some(t) if t <= now + Duration::minutes(5) => Ok(()),
        Some(_) => Err(format!(
            "{at}.{RECONCILED_AT} {v} lies in the future: fix or remove it (removed, the stream is reconciled on the next run)"
        )),
        None => Err(format!(
            "{at}.{RECONCILED_AT} must be a date-time string such as \"2024-01-15T10:30:00.000Z\", got {v} (or remove it: the stream is then reconciled on the next run)"
        )),
    }
}

/// A bookmark must be a date, and not one in the future: the tap never
/// writes one past the moment its sync started, so a future bookmark means a
/// hand-edited or foreign state that would silently skip records.
fn check_value(
    at: &str,
    holder: &Map<String, Value>,
    now: DateTime<Utc>,
) -> std::result::Result<(), String> {
    let Some(v) = holder.get("replication_key_value") else {
        return Ok(());
    };
    if v.is_null() {
        return Ok(());
    }
    let text = v
        .as_str()
        .ok_or_else(|| format!("{at}.replication_key_value must be a date-time string, got {v}"))?;
    let t = timefmt::parse_instant(text)
        .ok_or_else(|| format!("{at}.replication_key_value \"{text}\" is not a date-time (expected e.g. 2024-01-15T10:30:00.000Z)"))?;
    if t > now + Duration::minutes(5) {
        return Err(format!(
            "{at}.replication_key_value \"{text}\" lies in the future: fix or remove it, or the sync would skip records"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets() -> &'static StreamDef {
        streams::find("tickets").unwrap()
    }

    #[test]
    fn bookmarks_round_trip_per_partition_and_unknown_keys_survive() {
        let given = json!({"bookmarks": {"other_tap_stream": {"x": 1}}, "note": "kept"});
        let mut s = State::from_value(given, Utc::now()).unwrap();
        let t = tickets();
        assert!(s.set_bookmark(
            t,
            &[("archived", "true")],
            "2024-01-02T00:00:00.000Z",
            None,
            None
        ));
        assert!(
            !s.set_bookmark(
                t,
                &[("archived", "true")],
                "2024-01-02T00:00:00.000Z",
                None,
                None
            ),
            "unchanged"
        );
        assert!(s.set_bookmark(t, &[], "2024-01-03T00:00:00.000Z", None, None));
        assert_eq!(
            timefmt::format_ms(s.bookmark(t, &[("archived", "true")]).unwrap()),
            "2024-01-02T00:00:00.000Z"
        );
        assert_eq!(
            timefmt::format_ms(s.bookmark(t, &[]).unwrap()),
            "2024-01-03T00:00:00.000Z"
        );
        assert_eq!(s.bookmark(t, &[("isSpam", "true")]), None);
        let v = s.to_value();
        assert_eq!(v["note"], "kept");
        assert_eq!(v["bookmarks"]["other_tap_stream"]["x"], 1);
    }

    #[test]
    fn a_state_message_or_meltano_export_is_accepted() {
        let msg = json!({"type": "STATE", "value": {"bookmarks": {"sessions": {"replication_key_value": "2024-01-01T00:00:00.000Z"}}}});
        let s = State::from_value(msg, Utc::now()).unwrap();
        assert!(s
            .bookmark(streams::find("sessions").unwrap(), &[])
            .is_some());
        let exp = json!({"singer_state": {"bookmarks": {"sessions": {"replication_key_value": "2024-01-01T00:00:00.000Z"}}}});
        assert!(State::from_value(exp, Utc::now())
            .unwrap()
            .bookmark(streams::find("sessions").unwrap(), &[])
            .is_some());
    }

    #[test]
    fn bad_states_are_refused_with_the_path_to_the_problem() {
        let now = Utc::now();
        assert!(State::from_value(json!([1]), now)
            .unwrap_err()
            .contains("object"));
        assert!(State::from_value(json!({"bookmarks": 3}), now)
            .unwrap_err()
            .contains("bookmarks"));
        let e = State::from_value(
            json!({"bookmarks": {"sessions": {"replication_key_value": "soon"}}}),
            now,
        )
        .unwrap_err();
        assert!(
            e.contains("bookmarks.sessions.replication_key_value") && e.contains("not a date-time"),
            "{e}"
        );
        let e = State::from_value(
            json!({"bookmarks": {"sessions": {"replication_key_value": "2999-01-01T00:00:00Z"}}}),
            now,
        )
        .unwrap_err();
        assert!(e.contains("future"), "{e}");
        let e = State::from_value(
            json!({"bookmarks": {"tickets": {"partitions": [{"replication_key_value": 5}]}}}),
            now,
        )
        .unwrap_err();
        assert!(e.contains("partitions[0]"), "{e}");
    }
}
