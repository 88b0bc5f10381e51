//! A slice's handle on the walk it belongs to: how a strategy (`keyset`,
//! `window`, `offset`, `ties`) hands each page to the writer with the
//! bookmark it makes safe (see `walk.rs` for how slices are cut and run).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

use super::tracker::{Newest, Slice, Tracker, AT_SIGNPOST};
use super::{Page, Target, Walker};
use crate::client::FetchError;
use crate::state::{Context, Progress};

/// At most this often a STATE only for progress above a bookmark that did not move.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A walk in progress: its target and its slices' tracker.
pub(crate) struct Walk {
    pub target: Target,
    /// Where the walk ends, as given (`AT_SIGNPOST`, a value, or none).
    pub(super) to: Option<i64>,
    pub(super) signpost: Arc<super::Signpost>,
    pub(super) observer: Option<Arc<Observer>>,
    /// The partition whose bookmark this walk moves, if any.
    pub(super) bookmark: Option<Context>,
    pub(super) tracker: Mutex<Tracker>,
    /// Woken after every page, so the walk can hand out seats that freed.
    pub(super) progress: Notify,
    /// Read as one slice, never cut: every record the walk reads is then
    /// read in the order of its strategy (a catch-up round's proof).
    pub(super) in_order: bool,
}

/// What a slice's task is given: where it stands in the walk.
#[derive(Clone)]
pub(crate) struct SliceHandle {
    pub walk: Arc<Walk>,
    pub lo: Option<i64>,
    pub(super) end: Arc<AtomicI64>,
    pub(super) asks_to: Arc<AtomicI64>,
    /// Its first page, when a scout read it (`scout.rs`).
    first: Option<Arc<std::sync::Mutex<Option<Page>>>>,
}

impl SliceHandle {
    /// The handle of `slice`, one of `walk`'s.
    pub(super) fn of(walk: &Arc<Walk>, slice: &Slice) -> SliceHandle {
        SliceHandle {
            walk: walk.clone(),
            lo: slice.lo,
            end: slice.end.clone(),
            asks_to: slice.asks_to.clone(),
            first: None,
        }
    }

    /// The handle of `slice`, whose first page a scout read.
    pub(super) fn with_first(walk: &Arc<Walk>, slice: &Slice, page: Page) -> SliceHandle {
        SliceHandle {
            first: Some(Arc::new(std::sync::Mutex::new(Some(page)))),
            ..SliceHandle::of(walk, slice)
        }
    }

    /// The slice's first page, if a scout read it; once.
    pub(super) fn take_first(&self) -> Option<Page> {
        self.first
            .as_ref()
            .and_then(|f| f.lock().unwrap_or_else(|e| e.into_inner()).take())
    }

    /// The slice's upper bound now (exclusive; `i64::MAX`: none).
    pub fn end(&self) -> i64 {
        self.resolve(&self.end)
    }

    /// The upper bound its requests send: at least its end.
    pub fn asks_to(&self) -> i64 {
        self.resolve(&self.asks_to).max(self.end())
    }

    /// A bound's value, the signpost's once known for one still to be it.
    fn resolve(&self, bound: &AtomicI64) -> i64 {
        match bound.load(Ordering::Relaxed) {
            AT_SIGNPOST => match self.walk.signpost.try_get() {
                Some(s) => {
                    let _ = bound.compare_exchange(
                        AT_SIGNPOST,
                        s + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    bound.load(Ordering::Relaxed)
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
        if page.more == Some(true) {
            t.most_carried = t.most_carried.max(Some(page.carried));
        }
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
        if let Some(more) = page.more {
            s.more = more;
        }
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

    /// Whether this slice starts a first sync: it reads from the very
    /// beginning or from `start_date`, not from a bookmark (which, however
    /// old, may have nothing after it: a quiet stream's incremental run
    /// costs one request).
    pub fn starts_a_first_sync(&self, start_date: Option<i64>) -> bool {
        self.lo.is_none() || self.lo == start_date
    }

    /// Whether the walk still wants to know where its records end: the
    /// first slice to ask gets `true`, once, and no slice is cut until it
    /// tells ([`saw_newest`](Self::saw_newest)).
    pub async fn wants_newest(&self) -> bool {
        let mut t = self.walk.tracker.lock().await;
        let wants = t.newest == Newest::Unasked;
        if wants {
            t.newest = Newest::Asking;
        }
        wants
    }

    /// The newest `updatedAt` of the walk's range, as asked when it began.
    pub async fn saw_newest(&self, at: Option<i64>) {
        let mut t = self.walk.tracker.lock().await;
        t.newest = match at {
            Some(at) => Newest::At(at),
            None => Newest::Unknown,
        };
        drop(t);
        self.walk.progress.notify_one();
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
    /// Whether the page may have been cut, so that the slice has more to
    /// read; `None` for a report that carries no page (a cursor moved by a
    /// check), which leaves what the last page told.
    pub more: Option<bool>,
    /// The slice has read its whole range.
    pub done: bool,
    /// Records of the page at its newest stamp, which a keyset slice's
    /// next page asks for again (`Tracker::most_carried`).
    pub carried: u64,
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

/// What another task may watch of a walk while it runs.
#[derive(Default)]
pub(crate) struct Observer {
    /// Bit `i`: a record with `hidden[i].flag` true was read.
    pub flags: AtomicU8,
    /// Pages handed to the writer.
    pub pages: AtomicU64,
    pub changed: Notify,
}
