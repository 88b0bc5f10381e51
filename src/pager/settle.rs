//! The settle window: Gleap's lists may show an update late, and out of
//! the order it was written.
//!
//! **Assumption** (`Assumption::ListsShowWritesAtOnce`, never made). Gleap documents that its lists
//! are served, at least in part, by a search index (OpenSearch) and a list
//! cache (Redis): `POST /sessions/warmup` "pre-warms OpenSearch shards +
//! Redis list cache". An index shows a write after a refresh or a queue,
//! shards refreshing on their own; a cache answers with an older body until
//! it expires. So an update stamped `t` may first be listed well after `t`,
//! after updates stamped later. A bookmark moved to the newest stamp read
//! would pass it for good.
//!
//! **What the tap does.** No bookmark (a stream's, a partition's, a
//! per-parent stream's, a slice's progress above it) passes the API's clock
//! at the sync's start less the window (`lookback_window_seconds`, 5
//! minutes by default): each run reads the updates of the window again,
//! duplicates by design, counted and logged. A bookmark records the window
//! it was held back by, so a run with a wider window starts that much
//! lower.
//!
//! **Measured, not guessed.** A complete walk keeps in the state which
//! versions it delivered in its window (`seen.rs`, a Bloom filter), up to
//! a moment every page of the run was read after: the run's first `Date`
//! (whole seconds, the API's clock as the first answer left) less
//! `CLOCK_MARGIN_MS` (the first pages were asked for at once, beside it).
//! The next run reads that window again; a version stamped in it that the
//! last run did not deliver was listed late: it was written before the last
//! run read its range, and the list did not show it. Its lateness is at
//! least the time from its stamp to that moment. Such updates are counted
//! per stream (a log line and a METRIC). One late by three quarters of the
//! span checked or more, and by more than the window was before its last
//! widening, says the window is about to be too short (later
//! ones fall below it, where no run reads again): the run warns, and
//! widens the window fourfold (up to a day) at once, for the rest of the
//! run and, through the state, for the runs after it. Without a `Date`
//! header there is no clock to prove anything by: the window still holds
//! bookmarks back, and nothing is measured.
//!
//! The window moves bookmarks only: no request waits for it, and the first
//! page of a run is asked for at once. (A walk's last bookmark waits for
//! the API's clock, asked as the sync starts, to record what it saw.)
//!
//! A cache answering with an older body is a lag too, covered alike; no
//! probe needs a repeated request to come back fresh (`probe.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::seen::Seen;
use crate::state::{Context, Lookback, SeenWindow, State, MAX_LOOKBACK_WINDOW_SECONDS};
use crate::streams::StreamDef;

/// A late update this close to the span the last run's record covers (as
/// a fraction of it) widens the window.
const WIDEN_AT: f64 = 0.75;
/// How much a window found short is widened.
const WIDEN_BY: i64 = 4;
/// Versions are collected from this far below the window's start as this
/// machine's clock sees it: the API's clock, known a moment later, may lag.
const COLLECT_MARGIN_MS: i64 = 60_000;

/// One stream's settle window, and what this run finds in it.
pub(crate) struct Settle {
    stream: &'static str,
    /// The window now, in ms (widened mid-run when a late update proves it short).
    window_ms: AtomicI64,
    /// Widened by evidence, in seconds: kept in the state (`Lookback::learned_s`).
    learned_s: Mutex<Option<u32>>,
    /// Per partition.
    parts: Mutex<Vec<Part>>,
    /// Versions older than this are of no interest: below every window.
    collect_from: AtomicI64,
    late: AtomicU64,
    /// The largest lateness proven, in ms.
    latest_ms: AtomicI64,
    resent: AtomicU64,
    warned: AtomicBool,
}

struct Part {
    context: Context,
    /// What the last complete run delivered in its window.
    last: Option<SeenWindow>,
    /// Versions this run delivered, by hash: their stamps.
    delivered: HashMap<u64, i64>,
    /// Versions found late (each counted once, however often read).
    late: HashSet<u64>,
}

impl Settle {
    /// The window for `def`: the configured one, or the one a run before
    /// learned, the wider.
    pub fn new(
        def: &'static StreamDef,
        state: &State,
        configured_s: u32,
        local_now: i64,
    ) -> Settle {
        let lookbacks: Vec<(Context, Option<Lookback>)> = def
            .partitions()
            .map(|c| (c, state.lookback(def, c)))
            .collect();
        let learned_s = lookbacks
            .iter()
            .filter_map(|(_, l)| l.as_ref()?.learned_s)
            .max();
        let window_s = configured_s.max(learned_s.unwrap_or(0));
        let window_ms = i64::from(window_s) * 1000;
        let parts: Vec<Part> = lookbacks
            .into_iter()
            .map(|(context, l)| Part {
                context,
                last: l.and_then(|l| l.seen),
                delivered: HashMap::new(),
                late: HashSet::new(),
            })
            .collect();
        let collect_from = parts
            .iter()
            .filter_map(|p| Some(p.last.as_ref()?.from_ms))
            .fold(local_now - window_ms - COLLECT_MARGIN_MS, i64::min);
        Settle {
            stream: def.name,
            window_ms: AtomicI64::new(window_ms),
            learned_s: Mutex::new(learned_s),
            parts: Mutex::new(parts),
            collect_from: AtomicI64::new(collect_from),
            late: AtomicU64::new(0),
            latest_ms: AtomicI64::new(0),
            resent: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms.load(Ordering::Relaxed)
    }

    /// Where no bookmark may pass, for a sync that started at `signpost`.
    pub fn cap(&self, signpost: i64) -> i64 {
        signpost.saturating_sub(self.window_ms())
    }

    /// Where a partition resumes: its bookmark, lowered by however much the
    /// window is wider than the one the bookmark was held back by (none,
    /// for a bookmark from before the tap had a window).
    pub fn resume_from(&self, state: &State, def: &StreamDef, context: Context) -> Option<i64> {
        let bookmark = state.bookmark(def, context)?.timestamp_millis();
        let held_ms = state
            .lookback(def, context)
            .map_or(0, |l| i64::from(l.window_s) * 1000);
        Some(bookmark - (self.window_ms() - held_ms).max(0))
    }

    /// Whether a version stamped `updated_ms` is of interest: cheap, for
    /// every record of a page.
    pub fn wants(&self, updated_ms: i64) -> bool {
        updated_ms >= self.collect_from.load(Ordering::Relaxed)
    }

    /// The versions a walk of `context` delivered in a page: `(hash, stamp)`.
    pub fn delivered(&self, context: Context, versions: &[(u64, i64)]) {
        if versions.is_empty() {
            return;
        }
        let window = self.window_ms();
        let mut parts = self.parts.lock().expect("settle lock");
        let part = part_of(&mut parts, context);
        let (mut late, mut resent, mut latest, mut alarm) = (0, 0, 0, false);
        for &(hash, at) in versions {
            let first_read = part.delivered.insert(hash, at).is_none();
            let Some(last) = part
                .last
                .as_ref()
                .filter(|l| at >= l.from_ms && at < l.through_ms)
            else {
                continue;
            };
            if last.versions.contains(hash) {
                resent += u64::from(first_read);
            } else if part.late.insert(hash) {
                late += 1;
                // As a share of the span the last run could prove lateness
                // in; and not within what the window was before it was
                // last widened (the run that widened it proved lateness
                // only within its old one).
                let lateness = last.through_ms - at;
                let span = (last.through_ms - last.from_ms).max(1);
                latest = latest.max(lateness);
                alarm |= lateness as f64 >= WIDEN_AT * span as f64 && lateness * WIDEN_BY >= window;
            }
        }
        drop(parts);
        self.resent.fetch_add(resent, Ordering::Relaxed);
        if late > 0 {
            self.late.fetch_add(late, Ordering::Relaxed);
            self.latest_ms.fetch_max(latest, Ordering::Relaxed);
            if alarm {
                self.widen(latest);
            }
        }
    }

    /// A version was listed `late_ms` late, close to the most the window
    /// can show: it is about to be too short.
    fn widen(&self, late_ms: i64) {
        let window = self.window_ms();
        let max_ms = i64::from(MAX_LOOKBACK_WINDOW_SECONDS) * 1000;
        let wider = (window.max(1000) * WIDEN_BY).min(max_ms);
        if wider <= window {
            return;
        }
        self.window_ms.fetch_max(wider, Ordering::Relaxed);
        *self.learned_s.lock().expect("settle lock") = Some((wider / 1000) as u32);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                stream = self.stream,
                "stream {}: the API listed an update at least {:.0} s after it was made, close to the settle window of {} s (lookback_window_seconds): widened to {} s for this run and the next ones (kept in the state); an update listed later than the old window before this run may have been missed",
                self.stream,
                late_ms as f64 / 1000.0,
                window / 1000,
                wider / 1000
            );
        }
    }

    /// The record a bookmark carries: the window it was held back by, and,
    /// for a walk that completed, the versions it delivered (see
    /// [`Completed`]).
    pub fn lookback(&self, completed: Option<Completed>) -> Lookback {
        let window_ms = self.window_ms();
        let seen = completed.map(|c| {
            let context = c.context;
            let from_ms = (c.signpost - window_ms).max(c.from.unwrap_or(i64::MIN));
            let through_ms = c.read_after.max(from_ms);
            let mut parts = self.parts.lock().expect("settle lock");
            let part = part_of(&mut parts, context);
            let in_window: Vec<u64> = part
                .delivered
                .iter()
                .filter(|&(_, &at)| at >= from_ms && at < through_ms)
                .map(|(&h, _)| h)
                .collect();
            SeenWindow {
                from_ms,
                through_ms,
                versions: Seen::of(&in_window),
            }
        });
        Lookback {
            window_s: (window_ms / 1000) as u32,
            learned_s: *self.learned_s.lock().expect("settle lock"),
            seen,
        }
    }

    /// The run's findings, once the stream is done.
    pub fn log_summary(&self) {
        let (late, resent) = (
            self.late.load(Ordering::Relaxed),
            self.resent.load(Ordering::Relaxed),
        );
        if late > 0 {
            tracing::info!(
                stream = self.stream,
                "stream {}: {late} update(s) were listed by the API after the last run had read past them (the latest at least {:.0} s after it was made): read now, within the settle window of {} s",
                self.stream,
                self.latest_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                self.window_ms() / 1000
            );
        }
        if resent > 0 {
            tracing::info!(
                stream = self.stream,
                "stream {}: {resent} record(s) the last run delivered were sent again (the settle window, read again on purpose)",
                self.stream
            );
        }
        crate::metrics::counter(self.stream, "late_updates", late);
        crate::metrics::counter(self.stream, "settle_window_resent", resent);
    }
}

/// A walk that read its whole range: what it delivered between the
/// window's start (`signpost - window`, or where the walk began if later)
/// and `read_after`, a moment before it read anything (see the top of
/// this file), is what the next run checks against.
pub(crate) struct Completed {
    pub context: Context,
    /// Where the walk began (`None`: the beginning).
    pub from: Option<i64>,
    pub signpost: i64,
    pub read_after: i64,
}

fn part_of(parts: &mut Vec<Part>, context: Context) -> &mut Part {
    match parts.iter().position(|p| p.context == context) {
        Some(i) => &mut parts[i],
        None => {
            parts.push(Part {
                context,
                last: None,
                delivered: HashMap::new(),
                late: HashSet::new(),
            });
            parts.last_mut().expect("just pushed")
        }
    }
}
