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
    mapper: Option<crate::maps::Mapper>,
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
    while let Some(batch) = rx.blocking_recv() {
        if result.is_err() || map_failure.is_some() {
            continue; // drain, so that senders never block on a dead writer
        }
        let lines: &[u8] = match &mapper {
            None => &batch.lines,
            Some(m) => {
                mapped.clear();
                if let Err(e) = m.map_lines(&batch.lines, &mut mapped) {
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
