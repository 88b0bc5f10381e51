//! What the tap assumes about the Gleap API beyond its documentation, and
//! what it has learned about this server during this run.
//!
//! Every behaviour the tap relies on that Gleap does not document is an
//! [`Assumption`]: it is written down here once, with how the tap notices
//! that it does not hold and what it does then. The README's table and
//! `--test=api` are made from the same text. No assumption is ever
//! required: each has a way to read every record without it, at a cost in
//! requests. The code that detects each one calls [`Learned::note`], which
//! logs the change once and is what every walk consults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// One undocumented behaviour the tap would like to rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assumption {
    /// `sort=updatedAt` (and `sort=-updatedAt`) orders a list endpoint's answer.
    SortByUpdatedAt,
    /// `updatedAt>=`, `updatedAt<` ... filter the answer, in the
    /// percent-encoded form every HTTP client sends.
    RangeFilters,
    /// `createdAt>=` / `createdAt<` filter the answer.
    CreatedAtFilters,
    /// `_id>=` / `_id<` filter the answer.
    IdFilters,
    /// `sort=_id` orders the answer (never needed: listed because the tap
    /// once relied on it).
    SortById,
    /// An endpoint serves `min(limit, cap)` records per page, with a cap that
    /// does not change during a run.
    PageSize,
    /// The `limit` the tap asks for is accepted (not refused with a 400).
    LimitAccepted,
    /// What a plain `GET /tickets` leaves out (archived, spam), and that
    /// `ignoreArchived=true&archived=true` / `ignoreArchived=true&isSpam=true`
    /// list what it leaves out.
    HiddenRecords,
    /// `skip` pages through a list in a stable order.
    Skip,
    /// Responses carry a `Date` header (the API's clock, which stamps `updatedAt`).
    DateHeader,
    /// Responses carry `X-RateLimit-Remaining`.
    RateLimitHeaders,
    /// A 429 carries `Retry-After`.
    RetryAfter,
    /// Tickets' body carries `totalCount`.
    TotalCount,
    /// Lists are a bare array, or an object wrapping one array.
    ResponseShape,
    /// An optional endpoint (help center, news, the engagement lists...)
    /// answers: the project's plan has the feature.
    Feature,
    /// A new or changed activity log entry, activity or event updates its
    /// ticket's or contact's `updatedAt` (what per-parent streams read).
    ChildTouchesParent,
    /// A list shows every write at once, in the order written (Gleap's lists
    /// are served by a search index: `pager/settle.rs`).
    ListsShowWritesAtOnce,
    /// A request asked again is answered afresh, not from a list cache.
    NoListCache,
    /// `skip` reaches any depth (a search index refuses past `skip + limit`
    /// of 10,000 by default).
    DeepSkip,
    /// A complete listing (every partition of tickets) holds every record
    /// that exists: one it leaves out was deleted (what a reconciliation,
    /// `reconcile.rs`, tells the target).
    ListsShowEveryRecord,
}

impl Assumption {
    pub const ALL: [Assumption; 20] = [
        Assumption::SortByUpdatedAt,
        Assumption::RangeFilters,
        Assumption::CreatedAtFilters,
        Assumption::IdFilters,
        Assumption::SortById,
        Assumption::PageSize,
        Assumption::LimitAccepted,
        Assumption::HiddenRecords,
        Assumption::Skip,
        Assumption::DateHeader,
        Assumption::RateLimitHeaders,
        Assumption::RetryAfter,
        Assumption::TotalCount,
        Assumption::ResponseShape,
        Assumption::Feature,
        Assumption::ChildTouchesParent,
        Assumption::ListsShowWritesAtOnce,
        Assumption::NoListCache,
        Assumption::DeepSkip,
        Assumption::ListsShowEveryRecord,
    ];

    /// What is assumed, in a few words.
    pub fn what(self) -> &'static str {
        match self {
            Assumption::SortByUpdatedAt => "`sort=updatedAt` orders the list",
            Assumption::RangeFilters => "`updatedAt>=` / `updatedAt<` filter the list (sent percent-encoded: `updatedAt%3E=`)",
            Assumption::CreatedAtFilters => "`createdAt>=` / `createdAt<` filter the list",
            Assumption::IdFilters => "`_id>=` / `_id<` filter the list",
            Assumption::SortById => "`sort=_id` orders the list",
            Assumption::PageSize => "a page holds `min(limit, cap)` records, the cap fixed per endpoint",
            Assumption::LimitAccepted => "`limit` up to the documented maximum is accepted",
            Assumption::HiddenRecords => "what a plain `GET /tickets` hides (archived, spam) is listed by `ignoreArchived=true&archived=true` and `ignoreArchived=true&isSpam=true`",
            Assumption::Skip => "`skip` pages through a list in a stable order",
            Assumption::DateHeader => "responses carry a `Date` header",
            Assumption::RateLimitHeaders => "responses carry `X-RateLimit-Remaining`",
            Assumption::RetryAfter => "a 429 carries `Retry-After`",
            Assumption::TotalCount => "the tickets body carries `totalCount`",
            Assumption::ResponseShape => "a list is a bare array, or an object wrapping one array",
            Assumption::Feature => "an optional endpoint (help center, news, engagement lists, surveys, custom components, activity logs) answers: the project's plan has the feature",
            Assumption::ChildTouchesParent => "a new or changed activity log entry, activity or event updates its ticket's or contact's `updatedAt`",
            Assumption::ListsShowWritesAtOnce => "a list shows every update at once, in the order written",
            Assumption::NoListCache => "a request asked again is answered afresh, not from a cache",
            Assumption::DeepSkip => "`skip` pages to any depth",
            Assumption::ListsShowEveryRecord => "a whole listing (tickets: plain, archived and spam) shows every record that exists: one it leaves out was deleted",
        }
    }

    /// How the tap notices that it does not hold.
    pub fn detection(self) -> &'static str {
        match self {
            Assumption::SortByUpdatedAt => "before the first bookmark of an endpoint: the first record of `sort=-updatedAt&limit=1` must be the newest, not the first record of the ascending page; every page is checked for order; a 400",
            Assumption::RangeFilters => "a record outside the bounds asked for (ignored); a 400 (refused); an empty answer where `updatedAt>=T&updatedAt<=T`, T taken from an unfiltered record, finds nothing (not understood)",
            Assumption::CreatedAtFilters | Assumption::IdFilters => "a record outside the bounds asked for; a 400",
            Assumption::SortById => "not needed: never sent by a sync (`--test=api` reports it)",
            Assumption::PageSize => "the longest page an endpoint served is a lower bound of its cap; a page that long may have been cut",
            Assumption::LimitAccepted => "a 400 that goes away with `limit=100`",
            Assumption::HiddenRecords => "the `archived` and `isSpam` values of the records the plain listing returns",
            Assumption::Skip => "each page re-reads the last record of the one before; a deeper scout must not bring the same first record",
            Assumption::DateHeader => "its absence",
            Assumption::RateLimitHeaders => "its absence",
            Assumption::RetryAfter => "its absence on a 429",
            Assumption::TotalCount => "its absence",
            Assumption::ResponseShape => "any other body is an error, retried",
            Assumption::Feature => "a 403 or 404 on the stream's listing",
            Assumption::ChildTouchesParent => "not from the lists: the records of a parent not updated since the bookmark are not read",
            Assumption::ListsShowWritesAtOnce => "never assumed (Gleap serves lists from a search index): each run reads its settle window again, and counts the versions in it that the last run did not deliver though they were stamped before it began (listed late)",
            Assumption::NoListCache => "never assumed: no check needs a repeated request to come back fresh (each try asks for a page of another size); a cached page is a late one, which the settle window covers",
            Assumption::DeepSkip => "a 400 at a deep `skip` that the same request without `skip` does not get; `--test=api` asks `skip=10000`",
            Assumption::ListsShowEveryRecord => "not from the lists: nothing tells a record they hide (were the API to hide, say, blocked contacts) from a deleted one",
        }
    }

    /// What the tap does when it does not hold, and what that costs.
    pub fn fallback(self) -> &'static str {
        match self {
            Assumption::SortByUpdatedAt => "reads `updatedAt` windows instead, each small enough to come back whole in one page, which needs no order (about 1.3x the requests); without filters either, reads everything by offset",
            Assumption::RangeFilters => "reads newest first (`sort=-updatedAt`) by offset down to the bookmark, bounds applied by the tap; without a sort either, reads everything by offset and keeps only what is new (every run costs a full read)",
            Assumption::CreatedAtFilters => "a group of more than a page of records sharing one `updatedAt` is split by `_id` instead",
            Assumption::IdFilters => "such a group (sharing `createdAt` too) is read by offset in repeated passes until two agree; if they never do, the bookmark stays before the group and the next run reads it again",
            Assumption::SortById => "nothing: groups sharing one `updatedAt` are split by filters, in any order",
            Assumption::PageSize => "a page as long as the longest seen is never taken for the last one: the walk asks again (one request)",
            Assumption::LimitAccepted => "asks with `limit=100` (then 10) for the rest of the run: more requests",
            Assumption::HiddenRecords => "reads the hidden kinds the plain listing did not show, each with its own bookmark; a kind it showed is not read again",
            Assumption::Skip => "restarts the offset walk, skipping ids already written (up to 3 times); keyset walks cut their slices by time only",
            Assumption::DateHeader => "a child stream's bookmark is capped by the newest `updatedAt` read before its walks began instead of the API's clock",
            Assumption::RateLimitHeaders => "paces requests at `requests_per_minute` alone; 429s pause every stream",
            Assumption::RetryAfter => "waits with exponential backoff, at least 2 s",
            Assumption::TotalCount => "progress without percent done",
            Assumption::ResponseShape => "none needed: both shapes are read",
            Assumption::Feature => "skips the stream with one warning naming it and the status; the other streams complete, and the run exits 0 (on tickets, sessions, messages, teams, templates or team members, a 403 or 404 means wrong credentials or `api_url`: the sync stops)",
            Assumption::ChildTouchesParent => "none by itself: a per-parent stream synced FULL_TABLE (in the catalog) now and then reads every parent's list",
            Assumption::ListsShowWritesAtOnce => "no bookmark passes the API's clock at the sync's start less `lookback_window_seconds` (300): the updates of those minutes are sent again each run (duplicates, counted in the log); an update found late by 3/4 of the window widens it fourfold (up to a day, kept in the state) with a warning",
            Assumption::NoListCache => "nothing more: a cache that answers longer than the settle window is a lag longer than it, found and widened as above",
            Assumption::DeepSkip => "keyset walks place their cuts with `skip` no deeper than 9,000 and, once refused, no deeper than that: further cuts are made by time; where only offsets work, the stream stops with one error naming the depth, and the other streams go on",
            Assumption::ListsShowEveryRecord => "a reconciliation (`reconcile_every`) would have the target mark such records deleted; turn it off for that stream (`reconcile_streams`); a marked record that shows again is written again, unmarked, by the next run that reads it",
        }
    }
}

/// What one run has seen of one assumption on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fact {
    /// Not tested yet.
    #[default]
    Unknown,
    Holds,
    /// The parameter had no effect.
    Ignored,
    /// The server answered 400/422 to it.
    Refused,
    /// The server took it for something else: a filter that matches nothing.
    Misread,
    /// The endpoint answered 403 or 404: not in the project's plan.
    Unavailable,
}

impl Fact {
    pub fn holds(self) -> bool {
        self == Fact::Holds
    }

    /// Known not to hold.
    pub fn fails(self) -> bool {
        matches!(
            self,
            Fact::Ignored | Fact::Refused | Fact::Misread | Fact::Unavailable
        )
    }

    fn word(self) -> &'static str {
        match self {
            Fact::Unknown => "not tested",
            Fact::Holds => "holds",
            Fact::Ignored => "does not hold: ignored",
            Fact::Refused => "does not hold: refused (400)",
            Fact::Misread => "does not hold: answers nothing",
            Fact::Unavailable => "does not hold: answers 403/404",
        }
    }
}

/// What has been learned of one endpoint (a stream's; the children of a
/// stream share one).
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    pub sort: Fact,
    pub filters: Fact,
    pub created_filters: Fact,
    pub id_filters: Fact,
    /// The longest page served: the endpoint's cap is at least this.
    pub longest_page: usize,
    /// A cap below `limit` proven by a short page that was followed by more.
    pub cap: Option<usize>,
    /// The largest `limit` accepted, once a larger one was refused.
    pub limit_max: Option<u32>,
    /// Whether an offset walk of this endpoint had to restart.
    pub skip: Fact,
    /// Bit `i`: the plain listing showed a record with `hidden[i].flag` true.
    pub shown_flags: u8,
    /// Bit `i`: the hidden kind `i` had to be read on its own.
    pub read_flags: u8,
    /// Bit `i`: the hidden kind `i`'s own query listed records with
    /// `hidden[i].flag` false: the server does not honour it.
    pub unfiltered_flags: u8,
    pub total_count: Fact,
    pub deep_skip: Fact,
    /// The shallowest `skip` refused (a search index's result window):
    /// no scout asks as deep again (`pager/scout.rs`).
    pub skip_refused_from: Option<usize>,
}

/// No API caps a page below this many records: a page shorter than this is
/// taken to hold everything left, which spares every walk one request.
pub const MIN_PLAUSIBLE_CAP: usize = 10;

impl Endpoint {
    /// Whether a page of `len` records, asked with `limit`, may have been
    /// cut short by a cap, so that more records may match.
    pub fn maybe_cut(&self, len: usize, limit: usize) -> bool {
        len >= limit || (len >= MIN_PLAUSIBLE_CAP && len >= self.longest_page)
    }

    /// Whether a page of `len` records surely has more after it: as long
    /// as `limit`, or as a cap proven before.
    pub fn surely_cut(&self, len: usize, limit: usize) -> bool {
        len >= limit || self.cap.is_some_and(|cap| len >= cap)
    }
}

/// A process-wide header fact: unknown, seen, or seen missing.
struct Seen(AtomicU8);

impl Seen {
    const fn new() -> Seen {
        Seen(AtomicU8::new(0))
    }
    fn note(&self, present: bool) {
        // Present once is enough: a header missing from one error page says little.
        let v = if present { 1 } else { 2 };
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| match old {
                1 => None,
                _ => Some(v),
            });
    }
    fn fact(&self) -> Fact {
        match self.0.load(Ordering::Relaxed) {
            1 => Fact::Holds,
            2 => Fact::Ignored,
            _ => Fact::Unknown,
        }
    }
}

/// Everything this run has learned about the server. One per process,
/// held by the client.
pub struct Learned {
    endpoints: Mutex<BTreeMap<&'static str, Endpoint>>,
    /// One probe of an endpoint at a time (see `probe_turn`).
    probes: Mutex<BTreeMap<&'static str, Arc<tokio::sync::Mutex<()>>>>,
    date_header: Seen,
    rate_limit_headers: Seen,
    retry_after: Seen,
    /// The newest `updatedAt` read from any endpoint: the API's clock had
    /// passed it when it was read.
    newest_seen: AtomicI64,
}

impl Default for Learned {
    fn default() -> Self {
        Learned::new()
    }
}

impl Learned {
    pub fn new() -> Learned {
        Learned {
            endpoints: Mutex::new(BTreeMap::new()),
            probes: Mutex::new(BTreeMap::new()),
            date_header: Seen::new(),
            rate_limit_headers: Seen::new(),
            retry_after: Seen::new(),
            newest_seen: AtomicI64::new(i64::MIN),
        }
    }

    /// A page held records stamped up to `newest`.
    pub fn saw(&self, newest: i64) {
        self.newest_seen.fetch_max(newest, Ordering::Relaxed);
    }

    pub fn newest_seen(&self) -> Option<i64> {
        Some(self.newest_seen.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// A copy of what is known of `stream`'s endpoint.
    pub fn endpoint(&self, stream: &'static str) -> Endpoint {
        self.lock().get(stream).cloned().unwrap_or_default()
    }

    /// The turn to probe `stream`'s endpoint: walks of one endpoint
    /// (parents, slices) that meet the same question at once ask it once;
    /// the others wait, then read the answer from `endpoint`.
    pub async fn probe_turn(&self, stream: &'static str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(stream)
            .or_default()
            .clone();
        turn.lock_owned().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Endpoint>> {
        // A panic elsewhere cannot leave an Endpoint half-written: plain data.
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what was seen of `assumption` on `stream`'s endpoint. The
    /// first time it is found not to hold, says so once, with what the tap
    /// does instead. A fact known not to hold is never set back to holding.
    pub fn note(&self, stream: &'static str, assumption: Assumption, fact: Fact) {
        let changed = {
            let mut map = self.lock();
            let e = map.entry(stream).or_default();
            let slot = match assumption {
                Assumption::SortByUpdatedAt => &mut e.sort,
                Assumption::RangeFilters => &mut e.filters,
                Assumption::CreatedAtFilters => &mut e.created_filters,
                Assumption::IdFilters => &mut e.id_filters,
                Assumption::Skip => &mut e.skip,
                Assumption::TotalCount => &mut e.total_count,
                Assumption::DeepSkip => &mut e.deep_skip,
                _ => return,
            };
            let keep = slot.fails() || *slot == fact;
            if !keep {
                *slot = fact;
            }
            !keep
        };
        if changed && fact.fails() {
            tracing::warn!(
                stream,
                "the API: {} {}; the tap {}",
                assumption.what(),
                fact.word(),
                assumption.fallback()
            );
        }
    }

    /// Updates `stream`'s endpoint facts in place.
    pub fn update<T>(&self, stream: &'static str, f: impl FnOnce(&mut Endpoint) -> T) -> T {
        f(self.lock().entry(stream).or_default())
    }

    /// A page of `len` records came back from `stream`'s endpoint.
    pub fn page_served(&self, stream: &'static str, len: usize) {
        self.update(stream, |e| e.longest_page = e.longest_page.max(len));
    }

    pub fn note_headers(&self, date: bool, rate_limit: bool) {
        self.date_header.note(date);
        self.rate_limit_headers.note(rate_limit);
    }

    pub fn note_retry_after(&self, present: bool) {
        self.retry_after.note(present);
    }

    /// Facts that are not per endpoint.
    pub fn global(&self, assumption: Assumption) -> Fact {
        match assumption {
            Assumption::DateHeader => self.date_header.fact(),
            Assumption::RateLimitHeaders => self.rate_limit_headers.fact(),
            Assumption::RetryAfter => self.retry_after.fact(),
            _ => Fact::Unknown,
        }
    }

    /// One line per fact learned, for the end-of-run log and `--test=api`.
    pub fn summary(&self) -> Vec<(String, Assumption, Fact)> {
        let mut out = Vec::new();
        for (name, e) in self.lock().iter() {
            for (a, f) in [
                (Assumption::SortByUpdatedAt, e.sort),
                (Assumption::RangeFilters, e.filters),
                (Assumption::CreatedAtFilters, e.created_filters),
                (Assumption::IdFilters, e.id_filters),
                (Assumption::Skip, e.skip),
                (Assumption::TotalCount, e.total_count),
                (Assumption::DeepSkip, e.deep_skip),
            ] {
                if f != Fact::Unknown {
                    out.push((name.to_string(), a, f));
                }
            }
        }
        for a in [
            Assumption::DateHeader,
            Assumption::RateLimitHeaders,
            Assumption::RetryAfter,
        ] {
            let f = self.global(a);
            if f != Fact::Unknown {
                out.push(("*".to_string(), a, f));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_found_failing_is_never_set_back() {
        let l = Learned::new();
        l.note("tickets", Assumption::SortByUpdatedAt, Fact::Holds);
        assert!(l.endpoint("tickets").sort.holds());
        l.note("tickets", Assumption::SortByUpdatedAt, Fact::Ignored);
        l.note("tickets", Assumption::SortByUpdatedAt, Fact::Holds);
        assert_eq!(l.endpoint("tickets").sort, Fact::Ignored);
        assert_eq!(l.endpoint("sessions").sort, Fact::Unknown);
    }

    #[test]
    fn a_page_as_long_as_the_longest_may_have_been_cut() {
        let mut e = Endpoint::default();
        assert!(!e.maybe_cut(9, 1000), "shorter than any plausible cap");
        assert!(e.maybe_cut(100, 1000), "nothing longer seen yet");
        e.longest_page = 1000;
        assert!(!e.maybe_cut(100, 1000));
        assert!(e.maybe_cut(1000, 1000));
    }

    #[test]
    fn the_readme_lists_every_assumption() {
        let readme = include_str!("../README.md");
        for a in Assumption::ALL {
            assert!(
                readme.contains(a.what()),
                "README's assumptions table lacks {a:?}: {}",
                a.what()
            );
        }
    }

    /// The README's table; `cargo test --lib readme_table -- --ignored
    /// --nocapture` prints it after a change here.
    #[test]
    #[ignore]
    fn readme_table() {
        println!("| Assumed | Detected by | When it does not hold |");
        println!("|:--|:--|:--|");
        for a in Assumption::ALL {
            println!("| {} | {} | {} |", a.what(), a.detection(), a.fallback());
        }
    }

    #[test]
    fn headers_present_once_stay_present() {
        let l = Learned::new();
        l.note_headers(false, true);
        l.note_headers(true, false);
        l.note_headers(false, false);
        assert_eq!(l.global(Assumption::DateHeader), Fact::Holds);
        assert_eq!(l.global(Assumption::RateLimitHeaders), Fact::Holds);
    }
}
