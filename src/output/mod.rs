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
//!
//! With `batch_config`, the records go to files instead (`batch_files`),
//! each named by a BATCH line once complete; every other line still goes
//! to stdout, after the files holding the records before it. The state
//! changes of a batch wait until the files holding what they cover are
//! announced (`held`). Records that carry a table version stay RECORD
//! lines: a batch file holds raw records, which cannot carry it, and the
//! Meltano SDK's targets load a file's rows without a version, which the
//! ACTIVATE_VERSION that follows would then mark deleted.

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
use batch_files::{Announced, BatchFiles};
use held::{Change, Held};

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
    /// With `batch_config`: where the records go instead of stdout.
    pub files: Option<BatchFiles>,
}

/// Why the writer stopped writing.
enum Stop {
    /// stdout failed (or was closed).
    Io(io::Error),
    /// A record a map could not map (`md5(None)`...), a batch file that
    /// could not be written: the sync stops, what was delivered before it
    /// stays, with a final STATE that covers it.
    Failed(Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// A batch file could not be written.
fn file_failed(e: io::Error) -> Stop {
    Stop::Failed(Error::Output(format!(
        "cannot write a batch file: {e}; the last STATE covers every record of the files announced before"
    )))
}

/// How long a batch file stays open at most. A stream that sends a few
/// records a minute (per-parent streams, an incremental run that finds
/// little) would otherwise hold its bookmarks until `batch_size` records
/// came, or the run ended: a kill would then lose the whole run's progress
/// to a re-read, and a target would see no STATE for as long. Half a minute
/// bounds both, at the cost of a small file (one load for the target) per
/// slow stream and half minute.
const MAX_FILE_AGE: Duration = Duration::from_secs(30);

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
    files: Option<BatchFiles>,
    /// State changes waiting for their records' files (none without files).
    held: Held,
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
            files,
        } = self;
        let mut o = Out {
            out: io::BufWriter::with_capacity(64 << 10, stdout),
            last_state: LastState::default(),
            evolved: SchemaFilter::default(),
            mapper,
            mapped: Vec::new(),
            announced: Vec::new(),
            files,
            held: Held::default(),
        };
        let mut last_progress = Instant::now();
        let mut stopped: Option<Stop> = None;
        loop {
            let next = if o.files.is_some() {
                // Woken now and then without a batch, to close old files.
                match receive_within(&mut rx, PROGRESS_EVERY) {
                    Received::Batch(b) => Some(b),
                    Received::Nothing => None,
                    Received::End => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(b) => Some(b),
                    None => break,
                }
            };
            if let Some(mut batch) = next {
                if stopped.is_none() {
                    if let Err(e) = o.batch(&mut batch, &mut state, &schemas) {
                        stopped = Some(e);
                        let _ = cancel.send(true);
                    }
                }
                // Drained after a stop, so that senders never block on a dead writer.
                line_buffers.give(batch.lines);
            }
            if stopped.is_none() {
                if let Err(e) = o.close_files(Some(MAX_FILE_AGE), &mut state) {
                    stopped = Some(e);
                    let _ = cancel.send(true);
                }
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                for s in stats.iter().filter(|s| s.get(&s.records) > 0) {
                    s.log_progress();
                }
            }
        }
        let (finish, failure) = match stopped {
            Some(Stop::Io(e)) => (Err(e), None),
            Some(Stop::Failed(e)) => (o.finish(&mut state).map(|_| ()), Some(e)),
            None => match o.finish(&mut state) {
                Ok(None) => (Ok(()), None),
                Ok(Some(e)) => (Ok(()), Some(e)),
                Err(e) => (Err(e), None),
            },
        };
        match finish {
            Ok(()) => failure.map_or(Ok(Finish::Done), Err),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Finish::BrokenPipe),
            Err(e) => Err(Error::Output(format!("cannot write to stdout: {e}"))),
        }
    }
}

enum Received {
    Batch(Batch),
    /// Nothing within the wait.
    Nothing,
    /// Every sender is gone.
    End,
}

/// The next batch, waiting at most `wait`. The writer runs on a blocking
/// thread of the runtime, which may wait on a future of its own.
fn receive_within(rx: &mut mpsc::Receiver<Batch>, wait: Duration) -> Received {
    let handle = tokio::runtime::Handle::current();
    match handle.block_on(tokio::time::timeout(wait, rx.recv())) {
        Ok(Some(b)) => Received::Batch(b),
        Ok(None) => Received::End,
        Err(_) => Received::Nothing,
    }
}

impl Out {
    /// Completes the batch files, applies what they held back, and ends the
    /// output with the final STATE. A batch file that cannot be completed
    /// is returned as the run's error, the rest written.
    fn finish(&mut self, state: &mut State) -> io::Result<Option<Error>> {
        let failed = match self.close_files(None, state) {
            Ok(()) => None,
            Err(Stop::Io(e)) => return Err(e),
            Err(Stop::Failed(e)) => Some(e),
        };
        if self.held.len() > 0 {
            tracing::warn!(
                "{} bookmark(s) not saved: their records are in no announced batch file; the next run reads them again",
                self.held.len()
            );
        }
        self.final_state(state)?;
        Ok(failed)
    }

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
    /// the STATE its bookmark allows, once its records are delivered.
    fn batch(
        &mut self,
        batch: &mut Batch,
        state: &mut State,
        schemas: &[(&'static str, Vec<u8>)],
    ) -> Result<(), Stop> {
        let name = batch.stream.name;
        if !self.announced.contains(&name) {
            self.announced.push(name);
            if let Some((_, line)) = schemas.iter().find(|(n, _)| *n == name) {
                self.lines(name, line)?;
            }
        }
        self.lines(name, &batch.lines)?;
        let waits = match &self.files {
            Some(files) => files.holding(name),
            None => Vec::new(),
        };
        self.held.hold(
            Change {
                stream: batch.stream,
                bookmark: batch.bookmark.take(),
                reconciled: batch.reconciled,
            },
            waits,
        );
        self.apply_released(state)?;
        Ok(())
    }

    /// Applies the state changes no file holds back, each followed by its STATE.
    fn apply_released(&mut self, state: &mut State) -> io::Result<()> {
        for change in self.held.release() {
            if let Some(b) = &change.bookmark {
                state.set_bookmark(
                    b.def,
                    b.context,
                    &b.value,
                    b.progress.as_ref(),
                    b.lookback.as_ref(),
                );
                emit_state(&mut self.out, state, &mut self.last_state)?;
            }
            if let Some(at_ms) = change.reconciled {
                state.set_reconciled_at(change.stream, at_ms);
                emit_state(&mut self.out, state, &mut self.last_state)?;
            }
        }
        Ok(())
    }

    /// Completes the batch files open for `age` or more (`None`: all),
    /// announces them, and applies what they held back.
    fn close_files(&mut self, age: Option<Duration>, state: &mut State) -> Result<(), Stop> {
        let Some(files) = &mut self.files else {
            return Ok(());
        };
        let (done, error) = files.close_older(age);
        let mut stdout = Stdout {
            out: &mut self.out,
            last_state: &mut self.last_state,
            held: &mut self.held,
        };
        for a in done {
            stdout.announce(Some(a))?;
        }
        self.apply_released(state)?;
        error.map_or(Ok(()), |e| Err(file_failed(e)))
    }

    /// Writes lines as they go out: SCHEMA versions filtered, then mapped
    /// when stream maps are configured; then to stdout, or their records
    /// to batch files. `source`: the tap's stream the lines are of.
    fn lines(&mut self, source: &'static str, lines: &[u8]) -> Result<(), Stop> {
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
                    .map_err(|e| Stop::Failed(Error::Config(e)))?;
                &self.mapped
            }
        };
        match &mut self.files {
            None => {
                self.out.write_all(lines)?;
                self.last_state.followed_by_other_lines |= !lines.is_empty();
                Ok(())
            }
            Some(files) => {
                let mut stdout = Stdout {
                    out: &mut self.out,
                    last_state: &mut self.last_state,
                    held: &mut self.held,
                };
                to_files(files, &mut stdout, source, lines)
            }
        }
    }
}

/// What a line or a BATCH goes out through, with batch files.
struct Stdout<'a> {
    out: &'a mut io::BufWriter<Box<dyn Write + Send>>,
    last_state: &'a mut LastState,
    held: &'a mut Held,
}

impl Stdout<'_> {
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.last_state.followed_by_other_lines = true;
        Ok(())
    }

    /// Writes a complete file's BATCH line, and lets go of what it held.
    fn announce(&mut self, file: Option<Announced>) -> io::Result<()> {
        if let Some(file) = file {
            self.line(&file.line)?;
            self.held.announced(file.serial);
        }
        Ok(())
    }
}

/// Records without a table version to their stream's file; every other
/// line to stdout, after the file holding its stream's records before it
/// (an ACTIVATE_VERSION after every file of its version, a new field's
/// SCHEMA before the file of the records that carry it).
fn to_files(
    files: &mut BatchFiles,
    stdout: &mut Stdout<'_>,
    source: &'static str,
    lines: &[u8],
) -> Result<(), Stop> {
    let mut rest = lines;
    while !rest.is_empty() {
        // memchr, not `split_inclusive`: a closure's byte-by-byte scan of
        // every page measured an eighth of the tap's CPU.
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        let stream = if record_line::is_record(line) {
            let r = record_line::cut(line).ok_or_else(|| {
                Stop::Failed(Error::Internal(format!(
                    "a RECORD line of stream {source} the writer cannot take apart"
                )))
            })?;
            if r.version.is_none() {
                let full = files
                    .append(&r.stream, source, r.record)
                    .map_err(file_failed)?;
                stdout.announce(full)?;
                continue;
            }
            Some(r.stream)
        } else {
            stream_of(line).map(std::borrow::Cow::Owned)
        };
        if let Some(stream) = stream {
            stdout.announce(files.close(&stream).map_err(file_failed)?)?;
        }
        stdout.line(line)?;
    }
    Ok(())
}

/// The stream a SCHEMA or ACTIVATE_VERSION line is of. These lines are few
/// (a stream's start, a new field), so they are parsed.
fn stream_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        stream: Option<String>,
    }
    serde_json::from_slice::<Head>(line).ok()?.stream
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

pub mod batch_config;
pub mod batch_files;
mod held;
mod lines;
mod record_line;

pub use lines::{activate_version_line, note_marked, schema_line, SchemaFilter, MARK};
