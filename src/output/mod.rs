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

/// A batch for the writer: one stream's lines (RECORDs, ACTIVATE_VERSION,
/// SCHEMA lines of new fields) and the bookmark they complete. Empty, it
/// tells that the stream was read (its list answered), which is enough
/// for its SCHEMA to go out.
pub struct Batch {
    pub stream: &'static StreamDef,
    pub lines: Vec<u8>,
    pub bookmark: Option<Bookmark>,
    /// A reconciliation these lines complete (its ACTIVATE_VERSION): when
    /// its pass began, kept in the state once written.
    pub reconciled: Option<i64>,
}

pub enum Finish {
    /// Every batch written; the final STATE printed.
    Done,
    /// stdout was closed by the reader (the target exited).
    BrokenPipe,
}

/// The writer and what it needs besides its channel.
pub struct Writer {
    pub state: State,
    pub stdout: Box<dyn Write + Send>,
    /// Set when the writer cannot go on (stdout closed, a map failed).
    pub cancel: Arc<watch::Sender<bool>>,
    pub stats: Vec<Arc<StreamStats>>,
    /// Where each batch's buffer goes back, for the next page's lines.
    pub line_buffers: Arc<Pool>,
    pub mapper: Option<crate::maps::Mapper>,
    /// Each selected stream's SCHEMA line. It goes out just before the
    /// stream's first batch, so a stream the API never served (a 404, a
    /// plan without the feature, a run that failed first) leaves nothing
    /// that a target would make a table of.
    pub schemas: Vec<(&'static str, Vec<u8>)>,
}

/// Why the writer stopped writing.
enum Stop {
    Io(io::Error),
    /// A record a map could not map (`md5(None)`...): the sync stops, what
    /// was written before it stays, with a final STATE that covers it.
    Map(Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// The writer's own state while it runs.
struct Out {
    // Small on purpose: a page's lines (hundreds of KB) are larger, so they
    // go to stdout in one write without a copy; STATE lines are buffered.
    out: io::BufWriter<Box<dyn Write + Send>>,
    last_state: LastState,
    /// SCHEMA lines of new fields: each version once, in order (`evolve.rs`).
    evolved: SchemaFilter,
    mapper: Option<crate::maps::Mapper>,
    mapped: Vec<u8>,
    /// The streams whose SCHEMA went out.
    announced: Vec<&'static str>,
}

impl Writer {
    /// Runs on a blocking thread until every sender is dropped.
    pub fn run(self, mut rx: mpsc::Receiver<Batch>) -> Result<Finish, Error> {
        let Writer {
            mut state,
            stdout,
            cancel,
            stats,
            line_buffers,
            mapper,
            schemas,
        } = self;
        let mut o = Out {
            out: io::BufWriter::with_capacity(64 << 10, stdout),
            last_state: LastState::default(),
            evolved: SchemaFilter::default(),
            mapper,
            mapped: Vec::new(),
            announced: Vec::new(),
        };
        let mut last_progress = Instant::now();
        let mut stopped: Option<Stop> = None;
        while let Some(batch) = rx.blocking_recv() {
            if stopped.is_none() {
                if let Err(e) = o.batch(&batch, &mut state, &schemas) {
                    stopped = Some(e);
                    let _ = cancel.send(true);
                }
            }
            // Drained after a stop, so that senders never block on a dead writer.
            line_buffers.give(batch.lines);
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                for s in stats.iter().filter(|s| s.get(&s.records) > 0) {
                    s.log_progress();
                }
            }
        }
        let (finish, map_failure) = match stopped {
            Some(Stop::Io(e)) => (Err(e), None),
            Some(Stop::Map(e)) => (o.final_state(&state), Some(e)),
            None => (o.final_state(&state), None),
        };
        match finish {
            Ok(()) => map_failure.map_or(Ok(Finish::Done), Err),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Finish::BrokenPipe),
            Err(e) => Err(Error::Output(format!("cannot write to stdout: {e}"))),
        }
    }
}

impl Out {
    /// The output ends with the full state, even when the run found
    /// nothing new: orchestrators (and `tail -n 1` in a cron job) keep the
    /// last STATE, and a run without one would lose the state it was
    /// given. Unless no stream was read at all: a STATE then would tell a
    /// target that a sync took place.
    fn final_state(&mut self, state: &State) -> io::Result<()> {
        if self.announced.is_empty() {
            return Ok(());
        }
        if self.last_state.followed_by_other_lines {
            self.last_state.value = None;
        }
        emit_state(&mut self.out, state, &mut self.last_state)?;
        self.out.flush()
    }

    /// Writes a batch, its stream's SCHEMA first if it is the first, then
    /// the STATE its bookmark allows.
    fn batch(
        &mut self,
        batch: &Batch,
        state: &mut State,
        schemas: &[(&'static str, Vec<u8>)],
    ) -> Result<(), Stop> {
        let name = batch.stream.name;
        if !self.announced.contains(&name) {
            self.announced.push(name);
            if let Some((_, line)) = schemas.iter().find(|(n, _)| *n == name) {
                self.lines(line)?;
            }
        }
        self.lines(&batch.lines)?;
        if let Some(b) = &batch.bookmark {
            state.set_bookmark(
                b.def,
                b.context,
                &b.value,
                b.progress.as_ref(),
                b.lookback.as_ref(),
            );
            emit_state(&mut self.out, state, &mut self.last_state)?;
        }
        if let Some(at_ms) = batch.reconciled {
            state.set_reconciled_at(batch.stream, at_ms);
            emit_state(&mut self.out, state, &mut self.last_state)?;
        }
        Ok(())
    }

    /// Writes lines as they go to stdout: SCHEMA versions filtered, then
    /// mapped when stream maps are configured.
    fn lines(&mut self, lines: &[u8]) -> Result<(), Stop> {
        if lines.is_empty() {
            return Ok(());
        }
        let filtered = self.evolved.apply(lines);
        let lines: &[u8] = filtered.as_deref().unwrap_or(lines);
        let lines: &[u8] = match &mut self.mapper {
            None => lines,
            Some(m) => {
                self.mapped.clear();
                m.map_lines(lines, &mut self.mapped)
                    .map_err(|e| Stop::Map(Error::Config(e)))?;
                &self.mapped
            }
        };
        self.out.write_all(lines)?;
        self.last_state.followed_by_other_lines |= !lines.is_empty();
        Ok(())
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

mod lines;

pub use lines::{activate_version_line, note_marked, schema_line, SchemaFilter, MARK};
