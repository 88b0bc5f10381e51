//! The one writer of stdout. Stream tasks send it ready RECORD lines together
//! with the bookmark those lines reach; it writes the lines, and only then
//! moves the bookmark and prints a STATE, after flushing. So a STATE never
//! claims a record the output does not hold, and a target that saves the
//! last STATE it saw can always resume from it.
//!
//! With stream maps or flattening configured, each batch goes through the
//! `Mapper` first (RECORD, SCHEMA and ACTIVATE_VERSION lines; STATE lines
//! are the writer's own and stay keyed by the tap's stream names). Without,
//! the lines are written exactly as the streams made them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::error::Error;
use crate::metrics::StreamStats;
use crate::pool::Pool;
use crate::state::{Context, State};
use crate::streams::StreamDef;

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub struct Bookmark {
    pub def: &'static StreamDef,
    pub context: Context,
    pub value: String,
    /// What the walk wrote above `value`, for a resumed run; `None` clears it.
    pub progress: Option<crate::state::Progress>,
    /// The settle window `value` was held back by, and what a complete walk
    /// saw in it (`pager::settle`).
    pub lookback: Option<crate::state::Lookback>,
}

/// A batch for the writer: lines (SCHEMA, RECORDs, ACTIVATE_VERSION) and
/// the bookmark they complete.
pub struct Batch {
    pub lines: Vec<u8>,
    pub bookmark: Option<Bookmark>,
    /// A reconciliation these lines complete (its ACTIVATE_VERSION): the
    /// stream and when its pass began, kept in the state once written.
    pub reconciled: Option<(&'static StreamDef, i64)>,
}

pub enum Finish {
    /// Every batch written; the final STATE printed.
    Done,
    /// stdout was closed by the reader (the target exited).
    BrokenPipe,
}

/// Runs on a blocking thread until every sender is dropped.
pub fn run_writer(
    mut rx: mpsc::Receiver<Batch>,
    mut state: State,
    stdout: Box<dyn Write + Send>,
    cancel: Arc<watch::Sender<bool>>,
    all_stats: Vec<Arc<StreamStats>>,
    line_buffers: &Pool,
    mut mapper: Option<crate::maps::Mapper>,
) -> Result<Finish, Error> {
    // Small on purpose: a page's lines (hundreds of KB) are larger, so they
    // go to stdout in one write without a copy; STATE lines are buffered.
    let mut out = io::BufWriter::with_capacity(64 << 10, stdout);
    let mut last_state = LastState::default();
    let mut last_progress = Instant::now();
    let mut result: io::Result<()> = Ok(());
    // A record a map could not map (`md5(None)`...): the sync stops, what
    // was written before it stays, with a final STATE that covers it.
    let mut map_failure: Option<Error> = None;
    let mut mapped: Vec<u8> = Vec::new();
    // SCHEMA lines of new fields: each version once, in order (`evolve.rs`).
    let mut schemas = SchemaFilter::default();
    while let Some(batch) = rx.blocking_recv() {
        if result.is_err() || map_failure.is_some() {
            continue; // drain, so that senders never block on a dead writer
        }
        let filtered = schemas.apply(&batch.lines);
        let batch_lines: &[u8] = filtered.as_deref().unwrap_or(&batch.lines);
        let lines: &[u8] = match &mut mapper {
            None => batch_lines,
            Some(m) => {
                mapped.clear();
                if let Err(e) = m.map_lines(batch_lines, &mut mapped) {
                    map_failure = Some(Error::Config(e));
                    let _ = cancel.send(true);
                    continue;
                }
                &mapped
            }
        };
        result = (|| {
            out.write_all(lines)?;
            last_state.followed_by_other_lines |= !lines.is_empty();
            if let Some(b) = batch.bookmark {
                state.set_bookmark(
                    b.def,
                    b.context,
                    &b.value,
                    b.progress.as_ref(),
                    b.lookback.as_ref(),
                );
                emit_state(&mut out, &state, &mut last_state)?;
            }
            if let Some((def, at_ms)) = batch.reconciled {
                state.set_reconciled_at(def, at_ms);
                emit_state(&mut out, &state, &mut last_state)?;
            }
            Ok(())
        })();
        line_buffers.give(batch.lines);
        if result.is_err() {
            let _ = cancel.send(true);
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            for s in all_stats.iter().filter(|s| s.get(&s.records) > 0) {
                s.log_progress();
            }
        }
    }
    // The output always ends with the full state, even when the run found
    // nothing new: orchestrators (and `tail -n 1` in a cron job) keep the last
    // STATE, and a run without one would lose the state it was given.
    let finish = result.and_then(|_| {
        if last_state.followed_by_other_lines {
            last_state.value = None;
        }
        emit_state(&mut out, &state, &mut last_state)?;
        out.flush()
    });
    match finish {
        Ok(()) if map_failure.is_some() => Err(map_failure.expect("checked")),
        Ok(()) => Ok(Finish::Done),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Finish::BrokenPipe),
        Err(e) => Err(Error::Output(format!("cannot write to stdout: {e}"))),
    }
}

/// The last STATE printed, and whether other lines came after it.
#[derive(Default)]
struct LastState {
    value: Option<Value>,
    followed_by_other_lines: bool,
}

/// Flushes the records before the STATE that covers them, and prints the
/// STATE only when it differs from the last one printed.
fn emit_state(out: &mut impl Write, state: &State, last: &mut LastState) -> io::Result<()> {
    let value = state.to_value();
    if last.value.as_ref() == Some(&value) {
        return Ok(());
    }
    out.flush()?;
    serde_json::to_writer(&mut *out, &json!({"type": "STATE", "value": value}))?;
    out.write_all(b"\n")?;
    out.flush()?;
    *last = LastState {
        value: Some(value),
        followed_by_other_lines: false,
    };
    Ok(())
}

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
