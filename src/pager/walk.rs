//! A walk over a range of the replication key, as slices walked at once,
//! and the bookmarks their progress allows.
//!
//! **Why slices.** Against the real API the clock is the rate budget, not
//! the CPU: 900 requests a minute is 15 a second, and a page takes a round
//! trip of a few hundred milliseconds or more. One walk, one page at a
//! time, uses a fraction of the budget. So a range `[from, to)` is split
//! into slices, each walked by its own task with the strategy of the whole
//! walk (keyset or windows), all under the one rate limiter. When a seat is
//! free, the slice with the most left is cut, if it would otherwise hold
//! the walk up (`tracker.rs` weighs it): within a few pages of its cursor,
//! by records, where scouts find them (`scout.rs`), so that no piece ends
//! on a short page; further, by time, at the density it read, into at most
//! half the seats, each piece then cut by records. How many run at once across the whole process is the
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

use std::sync::Arc;

use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use super::budget::Seat;
pub(crate) use super::slice::Observer;
use super::slice::{SliceHandle, Walk};
pub(crate) use super::tracker::AT_SIGNPOST;
use super::tracker::{Newest, Pace, Slice, Tracker, MIN_RECORD_CHUNK_PAGES, MIN_TIME_CHUNK_PAGES};
use super::{keyset, offset, scout, window, Target, Walker};
use crate::assumptions::Endpoint;
use crate::client::FetchError;
use crate::state::{Context, Progress};

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

/// [`run`] from `from` to the end of the list as one slice, never cut, so
/// that its records are read in the order of its strategy; with the
/// strategy it ended with.
pub(crate) async fn run_in_order(
    w: &mut Walker,
    target: &Target,
    from: Option<i64>,
) -> Result<(WalkEnd, Strategy), FetchError> {
    let end = run_walk(w, target, from, None, None, None, None, true).await?;
    let known = w.client().learned().endpoint(w.def().name);
    Ok((end, Strategy::choose(&known)))
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
    run_walk(w, target, from, to, bookmark, observer, resume, false).await
}

#[allow(clippy::too_many_arguments)]
async fn run_walk(
    w: &mut Walker,
    target: &Target,
    from: Option<i64>,
    to: Option<i64>,
    bookmark: Option<Context>,
    observer: Option<Arc<Observer>>,
    resume: Option<Progress>,
    in_order: bool,
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
            newest: Newest::Unasked,
            most_carried: None,
            sent_progress: None,
            progress_sent_at: None,
        }),
        progress: Notify::new(),
        in_order,
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
            // A question about where the records end that a replan cut
            // short would keep the new slices from ever being cut.
            if t.newest == Newest::Asking {
                t.newest = Newest::Unknown;
            }
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
                .map(|(lo, end)| Slice::new(lo, end, end))
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
        if self.in_order {
            return false;
        }
        let t = self.tracker.lock().await;
        t.newest != Newest::Asking && t.slices.iter().any(Slice::cuttable)
    }
}

async fn first_handle(walk: &Arc<Walk>) -> SliceHandle {
    let t = walk.tracker.lock().await;
    SliceHandle::of(walk, &t.slices[0])
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
        t.slices.iter().map(|s| SliceHandle::of(walk, s)).collect()
    };
    for handle in handles {
        spawn(&mut tasks, handle, w.sh.budget.join(), w.fork());
    }
    // Scouts out to cut a slice by records (`scout.rs`): each comes back
    // with the pieces it placed, and the seats they run in.
    let mut scouts = JoinSet::new();
    let limit = w.limit();
    loop {
        // A slice cut by scouts may finish before its pieces start: the
        // walk is over only once both are.
        if tasks.is_empty() && scouts.is_empty() {
            return Ok(());
        }
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(task_failed(e)),
            },
            Some(joined) = scouts.join_next(), if !scouts.is_empty() => match joined {
                Ok(Ok((pieces, seats))) => {
                    let mut seats: Vec<Seat> = seats;
                    for handle in pieces {
                        let seat = seats.pop().unwrap_or_else(|| w.sh.budget.join());
                        spawn(&mut tasks, handle, seat, w.fork());
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(task_failed(e)),
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
        let mut handles = Vec::new();
        while !seats.is_empty() {
            let Some(cut) = t.plan(limit, ceiling, seats.len(), pace, MIN_RECORD_CHUNK_PAGES)
            else {
                break;
            };
            // By records where scouts reach the cuts; by time otherwise,
            // into at most half the seats: each piece cut by time ends on
            // a short page, and the other half goes to its slices' cuts by
            // records. Scouts go out before the sort and the filters are
            // verified, as time cuts do: a scout's page out of order or
            // out of range places nothing, and the pieces' own pages check
            // both, a failure replanning from a watermark that no
            // unverified page moved.
            let depths = (strategy == Strategy::Keyset)
                .then(|| scout::depths(w, &cut, limit))
                .flatten();
            if let Some(depths) = depths {
                t.slices[cut.slice].scouting = true;
                let a = SliceHandle::of(walk, &t.slices[cut.slice]);
                let held = seats.split_off(seats.len().saturating_sub(depths.len()));
                scouts.spawn(scout::cut(w.fork(), a, cut.cursor, depths, held));
                continue;
            }
            let Some(mut cut) = t.plan(limit, ceiling, seats.len(), pace, MIN_TIME_CHUNK_PAGES)
            else {
                break;
            };
            cut.pieces = cut.pieces.min(pace.seats.div_ceil(2).max(2));
            for i in t.cut_by_time(&cut) {
                handles.push((SliceHandle::of(walk, &t.slices[i]), seats.pop()));
            }
        }
        drop(t);
        for (handle, seat) in handles {
            let seat = seat.unwrap_or_else(|| w.sh.budget.join());
            spawn(&mut tasks, handle, seat, w.fork());
        }
    }
}

fn task_failed(e: tokio::task::JoinError) -> FetchError {
    FetchError::Fatal(crate::error::Error::Internal(format!(
        "a walking task failed: {e}"
    )))
}

/// The API's clock now, as far as this process can tell, less a margin:
/// no slice is cut above it, so none starts above a record still to come.
fn api_now(w: &Walker) -> i64 {
    let local = chrono::Utc::now().timestamp_millis();
    let now = w.client().server_date_ms().map_or(local, |d| d.min(local));
    (now - super::CLOCK_MARGIN_MS).min(w.sh.signpost.now_or_local())
}
