//! A walk over a range of the replication key, as slices walked at once,
//! and the bookmarks their progress allows.
//!
//! **Why slices.** Against the real API the clock is the rate budget, not
//! the CPU: 900 requests a minute is 15 a second, and a page takes a round
//! trip of a few hundred milliseconds or more. One walk, one page at a
//! time, uses a fraction of the budget. So a range `[from, to)` is split
//! into slices, each walked by its own task with the strategy of the whole
//! walk (keyset or windows), all under the one rate limiter. When a seat is
//! free, the slice with the most left is cut into pieces placed by the
//! density it read, if it would otherwise hold the walk up
//! (`tracker.rs`). How many run at once across the whole process is the
//! [`Budget`](super::Budget): about `rate × round trip`, the requests that
//! must be in flight to keep the limiter busy, and no more; how many pages
//! sit in memory meanwhile is bounded apart (`budget.rs`).
//!
//! **Bookmarks.** Every slice reports after each page how far it has read
//! (`cursor`: every record of the slice below it is written). The walk's
//! watermark is the cursor of its lowest unfinished slice: everything below
//! it is written. The bookmark is that watermark, but never above the
//! newest `updatedAt` read (a record updated from now on is stamped later
//! than that, by the API's own clock), never above a tie group that could
//! not be read whole (`hold`), and never above the signpost. It is handed
//! to the writer with the page that reaches it, under the tracker's lock,
//! so it never overtakes the records it covers.
//!
//! **Resuming.** Above the bookmark, the ranges other slices finished are
//! handed to the writer too (`Progress`, at most every 250 ms when the
//! bookmark itself stays): a run resumed after a kill starts one slice per
//! gap between them.
//!
//! **Replans.** A slice that finds an assumption failing (`FetchError::Replan`)
//! stops every slice; the walk starts again from its watermark with the
//! strategy that fits what is now known. Bookmarks sent before stay true:
//! a keyset bookmark is sent only once the sort was verified, and its
//! safety never depends on the filters.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use super::budget::Seat;
use super::tracker::{Pace, Slice, Tracker};
use super::{keyset, offset, window, Page, Target, Walker};
use crate::assumptions::Endpoint;
use crate::client::FetchError;
use crate::state::{Context, Progress};

/// An end that is the signpost, not known yet when the walk starts (see
/// `Signpost`): requests go without an upper bound until it is.
pub(crate) const AT_SIGNPOST: i64 = i64::MAX - 1;

/// At most this often a STATE only for progress above a bookmark that did not move.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What a walk read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WalkEnd {
    /// The newest `updatedAt` read.
    pub max_seen: Option<i64>,
    pub written: u64,
    /// Bit `i`: a record with `hidden[i].flag` true was read.
    pub flags: u8,
    /// The last bookmark handed to the writer.
    pub bookmark: Option<i64>,
    /// A tie group could not be read whole: no bookmark may pass this.
    pub held: Option<i64>,
}

/// How a range is walked, from what is known of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    Keyset,
    Windows,
    NewestFirst,
    Everything,
}

impl Strategy {
    pub fn choose(e: &Endpoint) -> Strategy {
        match (e.filters.fails(), e.sort.fails()) {
            (false, false) => Strategy::Keyset,
            (false, true) => Strategy::Windows,
            (true, false) => Strategy::NewestFirst,
            (true, true) => Strategy::Everything,
        }
    }
}

/// A walk in progress: its target and its slices' tracker.
pub(crate) struct Walk {
    pub target: Target,
    /// Where the walk ends, as given (`AT_SIGNPOST`, a value, or none).
    to: Option<i64>,
    signpost: Arc<super::Signpost>,
    observer: Option<Arc<Observer>>,
    /// The partition whose bookmark this walk moves, if any.
    bookmark: Option<Context>,
    tracker: Mutex<Tracker>,
    /// Woken after every page, so the walk can hand out seats that freed.
    progress: Notify,
}

/// What a slice's task is given: where it stands in the walk.
#[derive(Clone)]
pub(crate) struct SliceHandle {
    pub walk: Arc<Walk>,
    pub lo: Option<i64>,
    end: Arc<AtomicI64>,
}

impl SliceHandle {
    /// The slice's upper bound now (exclusive; `i64::MAX`: none).
    pub fn end(&self) -> i64 {
        match self.end.load(Ordering::Relaxed) {
            AT_SIGNPOST => match self.walk.signpost.try_get() {
                Some(s) => {
                    let _ = self.end.compare_exchange(
                        AT_SIGNPOST,
                        s + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    self.end.load(Ordering::Relaxed)
                }
                None => i64::MAX,
            },
            end => end,
        }
    }

    /// Hands a page to the writer, with the bookmark it makes safe.
    /// `cursor`: every record of the slice below it is now written (`None`:
    /// not known yet, e.g. before the sort was verified); `max_seen`: the
    /// newest in-range `updatedAt` of the page.
    pub async fn report(&self, w: &Walker, page: Report) -> Result<(), FetchError> {
        // The walk's last bookmark keeps what its settle window held, which
        // is measured on the API's clock: wait for it (the request asking
        // it was sent as the sync started).
        if page.done && self.walk.bookmark.is_some() {
            self.walk.signpost.get().await;
        }
        let mut t = self.walk.tracker.lock().await;
        let i = t.index_of(&self.end);
        t.max_read = t.max_read.max(page.max_seen);
        t.flags |= page.flags;
        if t.total.is_none() && t.slices.len() == 1 {
            t.total = page.total;
        }
        t.written += page.written;
        w.sh.stats
            .skipped
            .fetch_add(page.skipped, Ordering::Relaxed);
        let s = &mut t.slices[i];
        s.records += page.written;
        if s.first_seen.is_none() {
            s.first_seen = page.min_seen;
        }
        if page.cursor > s.cursor {
            s.cursor = page.cursor;
        }
        s.at = s.at.max(page.at).max(s.cursor);
        s.done |= page.done;
        s.more = page.more;
        let empty_from = if page.done && s.records == 0 {
            s.lo
        } else {
            None
        };
        if let Some(lo) = empty_from {
            t.empty_from = Some(t.empty_from.map_or(lo, |e| e.min(lo)));
        }
        // A walk that read nothing still leaves what its settle window held
        // (nothing), at the bookmark it started from.
        let all_done = t.slices.iter().all(|s| s.done);
        let at = t.watermark().or(t.from.filter(|_| all_done));
        let bookmark = match (self.walk.bookmark, at) {
            (Some(context), Some(at)) => {
                // Progress above the bookmark, for a run resumed after a
                // kill: at most every quarter second when the bookmark itself
                // stays (every page of every slice would be a STATE).
                let to = match self.walk.to {
                    Some(AT_SIGNPOST) => self.walk.signpost.try_get().map(|s| s + 1),
                    to => to.filter(|&t| t != i64::MAX),
                };
                let written = t.written_above(at, to, w.bookmark_cap());
                let finished = all_done;
                let progress = match (to, written.is_empty() || finished) {
                    (Some(to_ms), false) => Some(Progress {
                        to_ms,
                        done: written,
                    }),
                    _ => None,
                };
                let moved = Some(at) > t.sent.max(t.from);
                let due = t
                    .progress_sent_at
                    .is_none_or(|s| s.elapsed() >= PROGRESS_EVERY);
                // Clearing it (the walk is done) is never held back, nor is
                // the last one, which keeps what the settle window held.
                if moved || finished || (progress != t.sent_progress && (due || progress.is_none()))
                {
                    t.sent = t.sent.max(Some(at));
                    t.progress_sent_at = Some(std::time::Instant::now());
                    t.sent_progress = progress.clone();
                    let at = t.sent.expect("set above");
                    Some(w.bookmark(context, at, progress, finished.then_some(t.from)))
                } else {
                    None
                }
            }
            _ => None,
        };
        w.send(page.lines, page.written, bookmark).await?;
        drop(page.permit);
        drop(t);
        self.walk.progress.notify_one();
        if let Some(o) = &self.walk.observer {
            o.flags.fetch_or(page.flags, Ordering::Relaxed);
            o.pages.fetch_add(1, Ordering::Relaxed);
            o.changed.notify_waiters();
        }
        Ok(())
    }

    /// The slice has read its whole range.
    pub async fn finish(&self, w: &Walker) -> Result<(), FetchError> {
        self.report(
            w,
            Report {
                done: true,
                ..Report::default()
            },
        )
        .await
    }

    /// A group of records at `at` could not be proven complete: the
    /// bookmark stays at or before it, so the next run reads it again.
    pub async fn hold(&self, at: i64) {
        let mut t = self.walk.tracker.lock().await;
        t.held = Some(t.held.map_or(at, |h| h.min(at)));
    }
}

/// What a slice reports after a page.
#[derive(Default)]
pub(crate) struct Report {
    pub lines: Vec<u8>,
    pub written: u64,
    pub cursor: Option<i64>,
    pub max_seen: Option<i64>,
    pub min_seen: Option<i64>,
    pub flags: u8,
    /// Elements of the page that were not records (`Page::without_id`).
    pub skipped: u64,
    /// The count of matching records the body told (`totalCount`).
    pub total: Option<u64>,
    /// The page's place in the memory budget, given back once sent.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// How far the slice has read, before the sort is verified (see `Slice::at`).
    pub at: Option<i64>,
    /// The page may have been cut: the slice has more to read.
    pub more: bool,
    /// The slice has read its whole range.
    pub done: bool,
}

impl Report {
    /// A page to write, with the in-range facts of its records: newest and
    /// oldest `updatedAt` and flags of those that fall in `[lo, end)`.
    pub fn page(page: Page, lo: Option<i64>, end: i64) -> Report {
        let mut r = Report {
            written: page.written,
            skipped: page.without_id,
            total: page.total,
            permit: page.permit,
            ..Report::default()
        };
        for m in &page.metas {
            let Some(t) = m.updated_ms else { continue };
            if lo.is_some_and(|lo| t < lo) || t >= end {
                continue;
            }
            r.max_seen = r.max_seen.max(Some(t));
            r.min_seen = Some(r.min_seen.map_or(t, |x: i64| x.min(t)));
            r.flags |= m.flags;
        }
        r.lines = page.lines;
        r
    }
}

/// Walks `target` over `[from, to)` (`to` exclusive; `None`: no end, as a
/// full-table pass reads), moving `bookmark`'s partition when given.
pub(crate) async fn run(
    w: &mut Walker,
    target: &Target,
    from: Option<i64>,
    to: Option<i64>,
    bookmark: Option<Context>,
) -> Result<WalkEnd, FetchError> {
    run_observed(w, target, from, to, bookmark, None, None).await
}

/// What another task may watch of a walk while it runs.
#[derive(Default)]
pub(crate) struct Observer {
    /// Bit `i`: a record with `hidden[i].flag` true was read.
    pub flags: AtomicU8,
    /// Pages handed to the writer.
    pub pages: AtomicU64,
    pub changed: Notify,
}

/// [`run`], telling `observer` of every page.
pub(crate) async fn run_observed(
    w: &mut Walker,
    target: &Target,
    from: Option<i64>,
    to: Option<i64>,
    bookmark: Option<Context>,
    observer: Option<Arc<Observer>>,
    resume: Option<Progress>,
) -> Result<WalkEnd, FetchError> {
    let walk = Arc::new(Walk {
        target: target.clone(),
        to,
        signpost: w.sh.signpost.clone(),
        observer,
        bookmark,
        tracker: Mutex::new(Tracker {
            slices: Vec::new(),
            from,
            max_read: None,
            sent: None,
            held: None,
            flags: 0,
            written: 0,
            total: None,
            empty_from: None,
            sent_progress: None,
            progress_sent_at: None,
        }),
        progress: Notify::new(),
    });
    let mut lo = from;
    let end = to.unwrap_or(i64::MAX);
    let mut resume = resume;
    loop {
        w.check_cancelled()?;
        let known = w.client().learned().endpoint(w.def().name);
        let strategy = Strategy::choose(&known);
        {
            let mut t = walk.tracker.lock().await;
            // A run resumed after a kill reads only what its last one did
            // not finish: one slice per gap between the ranges it wrote.
            // Offset strategies read one range in one pass: all of it.
            let written = match (resume.take(), strategy) {
                (Some(p), Strategy::Keyset | Strategy::Windows) => p.done,
                _ => Vec::new(),
            };
            let mut slices = Vec::new();
            let mut at = lo;
            for &(a, b) in written.iter().filter(|(_, b)| lo.is_none_or(|lo| *b > lo)) {
                if at.is_none_or(|at| a > at) {
                    slices.push((at, a));
                }
                at = Some(at.map_or(b, |at| at.max(b)));
                t.max_read = t.max_read.max(Some(b));
            }
            slices.push((at, end));
            if written.is_empty() {
                t.max_read = None;
            } else {
                tracing::info!(
                    stream = w.def().name,
                    "{}: resuming, {} range(s) written by the last run are not read again",
                    target.path,
                    written.len()
                );
            }
            t.slices = slices
                .into_iter()
                .map(|(lo, end)| Slice {
                    lo,
                    end: Arc::new(AtomicI64::new(end)),
                    cursor: lo,
                    at: lo,
                    first_seen: lo,
                    records: 0,
                    more: false,
                    done: false,
                })
                .collect();
        }
        let result = match strategy {
            Strategy::Keyset | Strategy::Windows => slices(w, &walk, strategy).await,
            Strategy::NewestFirst | Strategy::Everything => {
                let handle = first_handle(&walk).await;
                offset::bounded(w, &handle, strategy == Strategy::NewestFirst).await
            }
        };
        match result {
            Err(FetchError::Replan) => {
                let t = walk.tracker.lock().await;
                // Where the next strategy starts: everything below is written.
                lo = t.watermark().or(t.from);
                tracing::info!(
                    stream = w.def().name,
                    "{}: reading again from {} with what is now known of the API",
                    target.path,
                    lo.map_or("the beginning".into(), super::query::fmt_ms)
                );
            }
            Err(e) => return Err(e),
            Ok(()) => break,
        }
    }
    let t = walk.tracker.lock().await;
    Ok(WalkEnd {
        max_seen: t.max_read,
        written: t.written,
        flags: t.flags,
        bookmark: t.sent,
        held: t.held,
    })
}

impl Walk {
    /// Whether any slice could be cut now.
    async fn splittable(&self) -> bool {
        let t = self.tracker.lock().await;
        t.slices
            .iter()
            .any(|s| !s.done && s.more && s.records > 0 && s.at.or(s.cursor).is_some())
    }
}

async fn first_handle(walk: &Arc<Walk>) -> SliceHandle {
    let t = walk.tracker.lock().await;
    SliceHandle {
        walk: walk.clone(),
        lo: t.slices[0].lo,
        end: t.slices[0].end.clone(),
    }
}

/// Runs the walk's slices until all are done, adding slices while the
/// budget has room.
async fn slices(w: &mut Walker, walk: &Arc<Walk>, strategy: Strategy) -> Result<(), FetchError> {
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, handle: SliceHandle, seat: Seat, w: Walker| {
        tasks.spawn(async move {
            let mut w = w;
            let r = match strategy {
                Strategy::Keyset => keyset::slice(&mut w, &handle).await,
                _ => window::slice(&mut w, &handle).await,
            };
            drop(seat);
            r
        });
    };
    // Every slice there is: one, or one per gap a resumed run left.
    let handles: Vec<SliceHandle> = {
        let t = walk.tracker.lock().await;
        t.slices
            .iter()
            .map(|s| SliceHandle {
                walk: walk.clone(),
                lo: s.lo,
                end: s.end.clone(),
            })
            .collect()
    };
    for handle in handles {
        spawn(&mut tasks, handle, w.sh.budget.join(), w.fork());
    }
    let limit = w.limit();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    tasks.abort_all();
                    return Err(e);
                }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    tasks.abort_all();
                    return Err(FetchError::Fatal(crate::error::Error::Internal(format!(
                        "a walking task failed: {e}"
                    ))));
                }
            },
            _ = walk.progress.notified() => {}
        }
        // A keyset slice may be cut before its sort is verified (the check
        // runs while the new slices start): should it fail, the walk replans
        // from its watermark, which no unverified page moved.
        if !walk.splittable().await {
            continue;
        }
        let mut seats = Vec::new();
        while let Some(seat) = w.sh.budget.try_join(w.client()) {
            seats.push(seat);
        }
        if seats.is_empty() {
            continue;
        }
        let ceiling = api_now(w);
        let pace = Pace {
            seats: w.sh.budget.target(w.client()),
            rate: w.client().rate_per_second(),
            rtt: w
                .client()
                .latency()
                .map_or(0.25, |d| d.as_secs_f64())
                .max(1e-4),
        };
        let mut t = walk.tracker.lock().await;
        let added = t.split(limit, ceiling, seats.len(), pace);
        let handles: Vec<SliceHandle> = added
            .iter()
            .map(|&i| SliceHandle {
                walk: walk.clone(),
                lo: t.slices[i].lo,
                end: t.slices[i].end.clone(),
            })
            .collect();
        drop(t);
        for (handle, seat) in handles.into_iter().zip(seats) {
            spawn(&mut tasks, handle, seat, w.fork());
        }
    }
}

/// The API's clock now, as far as this process can tell, less a margin:
/// no slice is cut above it, so none starts above a record still to come.
fn api_now(w: &Walker) -> i64 {
    let local = chrono::Utc::now().timestamp_millis();
    let now = w.client().server_date_ms().map_or(local, |d| d.min(local));
    (now - super::CLOCK_MARGIN_MS).min(w.sh.signpost.now_or_local())
}
