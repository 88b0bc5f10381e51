//! The slices of one walk: where each stands, the watermark below which
//! everything is written, the ranges above it a resumed run need not read,
//! and where to cut a slice in two (see `walk.rs`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::state::Progress;

/// An end that is the signpost, not known yet when the walk starts (see
/// `Signpost`): requests go without an upper bound until it is.
pub(crate) const AT_SIGNPOST: i64 = i64::MAX - 1;

/// How far ahead a slice is cut, in multiples of the stretch it read, per seat.
const REACH: i64 = 4;
/// Pages a slice cut off by time holds at least: each costs about one
/// request more than one walk would (its last, short page).
pub(super) const MIN_TIME_CHUNK_PAGES: f64 = 2.0;
/// Pages a piece cut off by records holds at least: a scout's page, which
/// ends full on the next cut, so that the walk's last pages are read at
/// once, a page each.
pub(super) const MIN_RECORD_CHUNK_PAGES: f64 = 1.0;

/// One slice of a walk.
pub(super) struct Slice {
    /// Lower bound (inclusive); `None`: from the beginning.
    pub(super) lo: Option<i64>,
    /// Upper bound (exclusive, `i64::MAX`: none). Lowered when the slice is split.
    pub(super) end: Arc<AtomicI64>,
    /// The upper bound its requests send: its end, or above it once a
    /// slice was cut off above by a scout (`scout.rs`), so that the page
    /// which crosses the end proves the slice read whole, with no request
    /// more.
    pub(super) asks_to: Arc<AtomicI64>,
    /// Every record of the slice below this is written.
    pub(super) cursor: Option<i64>,
    /// How far the slice has read, trusted or not (a keyset slice before the
    /// sort is verified): where it may be cut.
    pub(super) at: Option<i64>,
    /// Where the slice's first record was: its first page's oldest, or
    /// for a piece cut off, where it was cut.
    pub(super) first_seen: Option<i64>,
    pub(super) records: u64,
    /// Its last page may have been cut: there is more to read.
    pub(super) more: bool,
    pub(super) done: bool,
    /// Scouts are out to cut it: it is not cut again until they are back.
    pub(super) scouting: bool,
    /// Its end was placed by a scout, a few pages above its cursor, where
    /// its last page ends full (`scout.rs`): it is not cut again.
    pub(super) ends_on_a_page: bool,
}

impl Slice {
    /// Whether it may be cut: it read records and has more (a fresh one
    /// has nothing to judge its density by, and may be empty), and no
    /// scout is out on it or placed its end.
    pub(super) fn cuttable(&self) -> bool {
        !self.done
            && !self.scouting
            && !self.ends_on_a_page
            && self.more
            && self.records > 0
            && self.at.or(self.cursor).is_some()
    }

    /// A slice of `[lo, end)` with nothing read yet.
    pub(super) fn new(lo: Option<i64>, end: i64, asks_to: i64) -> Slice {
        Slice {
            lo,
            end: Arc::new(AtomicI64::new(end)),
            asks_to: Arc::new(AtomicI64::new(asks_to)),
            cursor: lo,
            at: lo,
            // Where its first record is, once read: a walk's lower bound (a
            // bookmark, `start_date`) may lie years before its records,
            // which would make them look sparse.
            first_seen: None,
            records: 0,
            more: false,
            done: false,
            scouting: false,
            ends_on_a_page: false,
        }
    }

    pub(super) fn end(&self) -> i64 {
        match self.end.load(Ordering::Relaxed) {
            // Not known yet: cut nothing above what was read.
            AT_SIGNPOST => i64::MAX,
            end => end,
        }
    }
}

/// How fast the walk can go: what a cut is weighed against.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    /// Tasks the budget keeps walking.
    pub(super) seats: usize,
    /// Requests per second the rate budget allows.
    pub(super) rate: f64,
    /// Seconds a page takes, request to last byte.
    pub(super) rtt: f64,
}

/// A cut the walk decided: slice `slice`, read up to `cursor`, into
/// `pieces` pieces of about `chunk_records` records (`chunk_ms` wide at the
/// density it read).
pub(super) struct Cut {
    pub(super) slice: usize,
    pub(super) cursor: i64,
    pub(super) pieces: usize,
    pub(super) chunk_records: f64,
    pub(super) chunk_ms: i64,
    /// The fewest new records a full page brings, as the walk's full pages
    /// tell (`None`: none read yet).
    pub(super) per_page: Option<usize>,
}

/// Where a walk's records end, as far as it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Newest {
    Unasked,
    /// A slice is asking: nothing is cut until the answer.
    Asking,
    At(i64),
    /// Asked, and the answer told nothing.
    Unknown,
}

/// The shared state of one walk's slices.
pub(crate) struct Tracker {
    pub(super) slices: Vec<Slice>,
    /// The walk's lower bound: no bookmark goes below it.
    pub(super) from: Option<i64>,
    pub(super) max_read: Option<i64>,
    pub(super) sent: Option<i64>,
    pub(super) held: Option<i64>,
    pub(super) flags: u8,
    pub(super) written: u64,
    /// Records in the whole range, as the first page of the walk's first
    /// slice counted them (`totalCount`), where the API tells.
    pub(super) total: Option<u64>,
    /// The lowest start of a slice that turned out empty: the records
    /// stopped there (a gap). No slice is cut above it again.
    pub(super) empty_from: Option<i64>,
    /// The newest `updatedAt` in the walk's range when it began (asked
    /// once, `probe::newest`): no slice is cut above it, where only the
    /// records updated since lie.
    pub(super) newest: Newest,
    /// The most records a full page held at its newest stamp (`None`: no
    /// full page yet). A keyset page asks again for the records at its
    /// cursor, so the next brings at least `limit` less this many new
    /// ones: `limit - 1` without ties, fewer where ties fall at page ends
    /// (a bulk edit). Known from the walk's first page.
    pub(super) most_carried: Option<u64>,
    /// The progress last handed to the writer, and when.
    pub(super) sent_progress: Option<Progress>,
    pub(super) progress_sent_at: Option<std::time::Instant>,
}

impl Tracker {
    /// The ranges above `from` whose records were all written: the written
    /// part of every slice, never past a tie group not read whole. `to`:
    /// where the walk ends, for a slice done up to an end still to be the
    /// signpost. `cap`: none reaches past it (the settle window's start).
    pub(super) fn written_above(&self, from: i64, to: Option<i64>, cap: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for s in &self.slices {
            let lo = s.lo.unwrap_or(i64::MIN).max(from);
            let hi = if s.done {
                match s.end.load(Ordering::Relaxed) {
                    AT_SIGNPOST | i64::MAX => match to {
                        Some(to) => to,
                        None => continue,
                    },
                    end => end,
                }
            } else {
                match s.cursor {
                    Some(c) => c,
                    None => continue,
                }
            };
            // Never past the newest `updatedAt` read: a record updated from
            // now on is stamped later than that by the API's clock, so it
            // cannot land in a range said to be written. A slice's end (the
            // signpost above all, which lies up to a second past the API's
            // "now") gives no such promise.
            let hi = hi.min(self.max_read.unwrap_or(i64::MIN)).min(cap);
            let hi = match self.held {
                Some(h) if h >= lo && h < hi => h,
                _ => hi,
            };
            if hi <= lo {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 >= lo => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    }

    /// Everything below this is written.
    pub(super) fn watermark(&self) -> Option<i64> {
        let structural = match self.slices.iter().find(|s| !s.done) {
            Some(s) => s.cursor.or(s.lo)?,
            None => self.max_read?,
        };
        let mut w = structural.min(self.max_read?);
        if let Some(h) = self.held {
            w = w.min(h);
        }
        Some(w.max(self.from.unwrap_or(i64::MIN)))
    }

    /// Cuts the slice with the most left, if it would finish after the rest
    /// of the walk, into as many equal pieces (by its density so far) as
    /// it takes for each to finish with the rest, up to `seats + 1` and at
    /// least `min_pages` pages each, the last piece keeping whatever
    /// lies above; returns the new pieces' indices. A walk whose slices are
    /// too few to keep the rate budget busy thus gets more, and as it nears
    /// its end its last pages are read by several slices at once, not one
    /// after another.
    ///
    /// Cuts are placed by density, not by halving time: where records crowd
    /// near the cursor and a long empty stretch follows (a project quiet for
    /// years, a few records updated just now), halving would only cut empty
    /// slices. Without a total to bound the guess, no cut goes further
    /// ahead than a few times the stretch already read, and none into a
    /// stretch a slice found empty. `ceiling` caps the cuts: no slice starts
    /// above the API's clock.
    pub(super) fn plan(
        &self,
        limit: usize,
        ceiling: i64,
        seats: usize,
        pace: Pace,
        min_pages: f64,
    ) -> Option<Cut> {
        let target = pace.seats;
        let mut best: Option<(usize, i64, i64, f64, f64)> = None;
        let mut left_in_all = 0.0;
        for (i, s) in self.slices.iter().enumerate() {
            let (true, Some(at)) = (s.cuttable(), s.at.or(s.cursor)) else {
                continue;
            };
            let start = s.first_seen.or(s.lo).unwrap_or(at);
            let covered = (at - start).max(1);
            let mut end = s.end().min(ceiling);
            let newest = match self.newest {
                Newest::At(at) => Some(at),
                _ => None,
            };
            if let Some(newest) = newest {
                end = end.min(newest.saturating_add(1));
            }
            if self.total.is_none() && newest.is_none() {
                let reach = covered.saturating_mul(REACH * target.max(1) as i64);
                end = end.min(at.saturating_add(reach));
            }
            if let Some(empty) = self.empty_from.filter(|&e| e > at) {
                end = end.min(empty);
            }
            let density = s.records as f64 / covered as f64;
            let left = density * (end - at).max(0) as f64;
            left_in_all += left;
            if best.is_none_or(|(.., l, _)| left > l) {
                best = Some((i, at, end, left, density));
            }
        }
        let (i, cursor, end, mut left, density) = best?;
        if let Some(total) = self.total {
            let unread = total.saturating_sub(self.written) as f64;
            left_in_all = left_in_all.min(unread);
            left = left.min(unread);
        }
        // The time the rest of the walk needs at the rate budget, and the
        // time this slice alone needs, a page per cycle (a round trip and
        // its turn at the limiter). A slice is cut only when it would hold
        // the walk up by more than a page's cycle (every piece costs about
        // a request more: its last, short page), into pieces that each
        // finish in about the rest's time. Other slices keeping the budget
        // busy meanwhile is not assumed: a free seat says they do not.
        let cycle = pace.rtt + 1.0 / pace.rate.max(1e-3);
        let pages_left = left_in_all / limit as f64;
        let rest_s = (pages_left / pace.rate).max(cycle);
        let slice_s = left / limit as f64 * cycle;
        if slice_s <= rest_s + cycle {
            return None;
        }
        let pieces = (slice_s / rest_s)
            .ceil()
            .min((left / limit as f64 / min_pages).floor())
            .min(seats as f64 + 1.0);
        if pieces < 2.0 {
            return None;
        }
        let chunk_records = left / pieces;
        // Pieces as wide as `chunk_records` at the density read so far.
        let chunk_ms = (chunk_records / density.max(f64::MIN_POSITIVE)).clamp(1.0, 1e15) as i64;
        let pieces = (pieces as usize).min(((end - cursor) / chunk_ms).max(0) as usize + 1);
        (pieces >= 2).then_some(Cut {
            slice: i,
            cursor,
            pieces,
            chunk_records,
            chunk_ms,
            per_page: self
                .most_carried
                .map(|n| (limit as u64).saturating_sub(n) as usize),
        })
    }

    /// Cuts by time, as `cut` plans: each piece `chunk_ms` wide, the last
    /// keeping whatever lies above. Returns the new pieces' indices.
    pub(super) fn cut_by_time(&mut self, cut: &Cut) -> Vec<usize> {
        let i = cut.slice;
        // Raw: an end still to be the signpost stays so.
        let old_end = self.slices[i].end.load(Ordering::Relaxed);
        let mut added = Vec::new();
        for k in 1..cut.pieces {
            let lo = cut.cursor + k as i64 * cut.chunk_ms;
            let hi = if k + 1 == cut.pieces {
                old_end
            } else {
                lo + cut.chunk_ms
            };
            if k == 1 {
                self.slices[i].end.store(lo, Ordering::Relaxed);
                self.slices[i].asks_to.store(lo, Ordering::Relaxed);
            }
            let mut piece = Slice::new(Some(lo), hi, hi);
            piece.first_seen = Some(lo);
            self.slices.insert(i + k, piece);
            added.push(i + k);
        }
        added
    }

    pub(super) fn index_of(&self, end: &Arc<AtomicI64>) -> usize {
        self.find(end).expect("a reporting slice is tracked")
    }

    /// The slice whose end is `end`, if the walk still has it (a replan
    /// replaces them all).
    pub(super) fn find(&self, end: &Arc<AtomicI64>) -> Option<usize> {
        self.slices.iter().position(|s| Arc::ptr_eq(&s.end, end))
    }
}
