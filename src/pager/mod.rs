//! Walking a stream's pages so that no record is ever skipped, whatever the
//! server does with the parameters Gleap does not document.
//!
//! Offset pagination (`skip`) over data that changes while it is read skips
//! records: a record updated behind the reader moves to the end of
//! `updatedAt` order and shifts everything after it one place back, so the
//! next `skip` jumps over one record that never changed. So incremental
//! streams are walked by the replication key, `updatedAt`, over a range
//! `[from, signpost]` (the signpost: the moment the sync started, on the
//! API's clock; a record updated later moves past it and belongs to the
//! next run).
//!
//! How a range is walked depends on what the server honours, which the
//! walks find out as they go (`assumptions.rs` holds what was learned):
//! - [`keyset`]: `sort=updatedAt` and the range filters work: each page
//!   asks for `updatedAt>=C`, C the largest value read. The fastest.
//! - [`window`]: the filters work but the sort does not: windows of
//!   `updatedAt`, each small enough to come back whole in one page, which
//!   makes the order irrelevant.
//! - [`offset::bounded`], newest first: the sort works but the filters do
//!   not: `sort=-updatedAt` by offset, down to the bookmark.
//! - [`offset::bounded`], everything: neither: every record by offset,
//!   keeping those in range.
//!
//! A group of more than a page of records sharing one `updatedAt` (a bulk
//! update) is read by [`ties`], splitting it by `createdAt` and `_id`
//! filters. Tickets hide archived and spam records from a plain listing in
//! a way the API does not document: [`partitions`] decides from what the
//! plain listing shows what else to read. Child streams are listed once per
//! parent ([`children`]): survey responses and help center articles for
//! every survey or collection; ticket activity logs and contacts'
//! activities and events only for the parents updated since their bookmark,
//! found by walking the parent as above for its ids alone. [`walk`] runs a range as
//! slices walked concurrently under the one rate budget ([`tracker`] keeps
//! where each stands and weighs where to cut; [`scout`] cuts by records; [`slice`] is a strategy's handle on its walk, which
//! turns each page into the bookmark it makes safe); [`settle`] holds every
//! bookmark back by the settle window, for lists that show updates late;
//! [`probe`] holds the cheap requests that test an assumption.
//!
//! Small lists without a replication key (teams, surveys, templates, team
//! members, the help center's collections, news, the engagement lists...)
//! are read by [`offset::offset_walk`], which detects a list shifting under
//! it; so is each parent's list of a per-parent stream
//! ([`offset::listing`]).

mod budget;
mod children;
mod keyset;
mod offset;
mod partitions;
pub(crate) mod probe;
pub(crate) mod query;
mod scout;
mod settle;
mod slice;
mod ties;
mod tracker;
mod walk;
mod window;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::assumptions::{Assumption, Fact};
use crate::catalog::Selected;
use crate::client::{Cancel, Client, FetchError};
use crate::conform::{self, Conformer, Meta};
use crate::metrics::StreamStats;
use crate::output::{self, Batch, Bookmark};
use crate::pool::Pool;
use crate::scan;
use crate::state::{Context, State};
use crate::streams::{Method, StreamDef};
use crate::timefmt;

pub use budget::Budget;

/// Rounds of a whole pass that re-read the records changed during it, and
/// the least time from one round's start to the next: a burst of changes
/// (a bulk edit, an import) passes, and rounds that must settle get the
/// chance to, instead of all falling within it.
const MAX_CATCH_UP_ROUNDS: usize = 8;
const CATCH_UP_SPACING: std::time::Duration = std::time::Duration::from_secs(1);
/// Margin under a server `Date` (whole seconds, sent after the request began).
pub(crate) const CLOCK_MARGIN_MS: i64 = 2_000;

/// Everything one stream's extraction needs.
pub struct StreamRun {
    pub def: &'static StreamDef,
    pub client: Arc<Client>,
    pub tx: mpsc::Sender<Batch>,
    /// Where the writer gives back the buffers of the batches it wrote.
    pub line_buffers: Arc<Pool>,
    pub stats: Arc<StreamStats>,
    pub conformer: Conformer,
    pub page_size: u32,
    /// The sync's start on the API's clock: no bookmark ever passes it.
    pub signpost: Arc<Signpost>,
    /// `version` of full-table records, when ACTIVATE_VERSION is on.
    pub version: Option<i64>,
    pub cancel: Cancel,
    /// How many walks may run at once, all streams together.
    pub budget: Arc<Budget>,
    /// `lookback_window_seconds`: how late the API may list an update.
    pub lookback_window_s: u32,
}

/// The sync's start on the API's clock (epoch ms), which bounds incremental
/// walks: a record updated later belongs to the next run. It is learnt from
/// the `Date` of the first answer to the walks' first requests
/// (`sync::api_clock`), which need no upper bound: a first page holds the
/// oldest records, and when it holds all of them, the newest are as good
/// to write now as next time. Until it is
/// known, this machine's clock at the start stands in where a value is
/// needed at once.
pub struct Signpost {
    value: std::sync::atomic::AtomicI64,
    local_start: i64,
    known: tokio::sync::Notify,
}

impl Signpost {
    pub fn new(local_start: i64) -> Arc<Signpost> {
        Arc::new(Signpost {
            value: std::sync::atomic::AtomicI64::new(i64::MIN),
            local_start,
            known: tokio::sync::Notify::new(),
        })
    }

    /// Sets it, once; later calls change nothing.
    pub fn set(&self, ms: i64) {
        let _ = self
            .value
            .compare_exchange(i64::MIN, ms, Ordering::Relaxed, Ordering::Relaxed);
        self.known.notify_waiters();
    }

    pub fn try_get(&self) -> Option<i64> {
        Some(self.value.load(Ordering::Relaxed)).filter(|&v| v != i64::MIN)
    }

    /// The value, or this machine's clock at the start while it is unknown.
    pub fn now_or_local(&self) -> i64 {
        self.try_get().unwrap_or(self.local_start)
    }

    pub async fn get(&self) -> i64 {
        loop {
            let known = self.known.notified();
            if let Some(v) = self.try_get() {
                return v;
            }
            known.await;
        }
    }
}

/// What every task of one stream shares.
pub(crate) struct Shared {
    pub def: &'static StreamDef,
    pub client: Arc<Client>,
    tx: mpsc::Sender<Batch>,
    line_buffers: Arc<Pool>,
    pub stats: Arc<StreamStats>,
    page_size: u32,
    pub signpost: Arc<Signpost>,
    version: Option<i64>,
    pub cancel: Cancel,
    pub budget: Arc<Budget>,
    /// An incremental stream's settle window (`settle.rs`).
    settle: Option<Arc<settle::Settle>>,
    /// `start_date`: a walk from there has no bookmark to start from.
    pub start_date: Option<i64>,
    /// A walk of a parent stream for its ids (`children`): each kept
    /// record becomes its id and a line break in the page's lines, no
    /// RECORD; `tx` goes to the child stream's walks, not to the writer.
    ids_only: bool,
    /// Where a catch-up round notes the records it read (`catch_up_moves`).
    seen: Option<Seen>,
    /// Set when a whole pass could not read some records for sure (an
    /// offset walk over a list that kept shifting, a tie group not read
    /// whole): its version is not sent to be activated.
    incomplete: Arc<std::sync::atomic::AtomicBool>,
}

/// The records (id, `updatedAt`) a walk read.
type Seen = Arc<std::sync::Mutex<HashSet<(String, Option<i64>)>>>;

/// One task's handle on its stream: the shared parts, and its own conformer.
pub(crate) struct Walker {
    pub sh: Arc<Shared>,
    conformer: Conformer,
}

/// Where a walk reads.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub path: String,
    /// The partition's exact filters (tickets: `ignoreArchived=true&archived=true`).
    pub partition: Context,
    /// For a child stream: the parent's id, written into every record.
    pub parent_id: Option<String>,
}

/// One page, conformed (`Page::default()`: one with nothing in it).
#[derive(Default)]
pub(crate) struct Page {
    pub lines: Vec<u8>,
    pub written: u64,
    /// Every record with an id, in the order the API sent them.
    pub metas: Vec<Meta>,
    /// Elements in the page, records without an id included.
    pub len: usize,
    /// The body's total count of matching records, where it tells one.
    pub total: Option<u64>,
    /// Elements that are not records with an id: counted as skipped when
    /// the page is written.
    pub without_id: u64,
    /// The page's place in the memory budget (`Budget::pages`), given back
    /// once its lines are handed to the writer.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The recent versions written, `(hash, updatedAt)`, for the settle window.
    versions: Vec<(u64, i64)>,
}

impl Page {
    /// The replication key values of the page, in the order sent.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        self.metas.iter().filter_map(|m| m.updated_ms)
    }
}

impl StreamRun {
    /// Extracts the stream: its records and bookmarks (the writer puts its
    /// SCHEMA before the first of them).
    pub async fn run(
        self,
        sel: &Selected,
        state: &State,
        start_date: Option<i64>,
    ) -> Result<(), FetchError> {
        let incremental = sel.method == Method::Incremental;
        let def = self.def;
        let settle = incremental.then(|| {
            Arc::new(settle::Settle::new(
                def,
                state,
                self.lookback_window_s,
                self.signpost.now_or_local(),
            ))
        });
        let resume_from = |context: Context| {
            let settle = settle.as_ref()?;
            later(settle.resume_from(state, def, context), start_date)
        };
        let mut w = Walker {
            sh: Arc::new(Shared {
                def,
                client: self.client,
                tx: self.tx,
                line_buffers: self.line_buffers,
                stats: self.stats,
                page_size: self.page_size,
                signpost: self.signpost,
                version: self.version,
                cancel: self.cancel,
                budget: self.budget,
                settle: settle.clone(),
                start_date,
                ids_only: false,
                seen: None,
                incomplete: Arc::default(),
            }),
            conformer: self.conformer,
        };
        // An incremental stream given a version is reconciled: read whole
        // (`reconcile.rs`), its bookmarks moved as it goes.
        let reconcile = incremental && w.sh.version.is_some();
        let from_bookmarks = incremental && !reconcile;
        if def.parent.is_some() {
            let from = if from_bookmarks {
                resume_from(&[])
            } else {
                None
            };
            children::run(&mut w, from, from_bookmarks).await?;
        } else if def.replication_key.is_some() {
            let from_of = |context: Context| {
                if from_bookmarks {
                    resume_from(context)
                } else {
                    None
                }
            };
            let progress_of = |context: Context| {
                if from_bookmarks {
                    state.progress(def, context)
                } else {
                    None
                }
            };
            let walked =
                partitions::run(&mut w, &from_of, &progress_of, from_bookmarks, incremental)
                    .await?;
            if !from_bookmarks {
                catch_up_moves(&mut w, &walked.hiding).await?;
            }
        } else {
            let target = Target {
                path: def.path.to_string(),
                partition: &[],
                parent_id: None,
            };
            offset::offset_walk(&mut w, def, &target, true).await?;
        }
        if let Some(version) = w.sh.version {
            if w.sh.incomplete.load(Ordering::Relaxed) {
                tracing::warn!(
                    stream = def.name,
                    "no ACTIVATE_VERSION: the pass may lack records (see above), and a target would take them for deleted{}",
                    if reconcile { "; the next run reads the stream whole again" } else { "" }
                );
            } else {
                w.send_activate_version(version, reconcile).await?;
            }
        }
        // Read whole: the writer sends its SCHEMA now if no batch did
        // before (a list that exists and is empty is an empty table).
        w.announce().await?;
        if let Some(settle) = &settle {
            settle.log_summary();
        }
        w.sh.stats.log_summary();
        Ok(())
    }
}

/// A whole pass (full table, or a reconciliation) must hold every record
/// that lives through it, or a target honouring ACTIVATE_VERSION deletes
/// it. Two ways a record escapes the walks: it changes partition (a ticket
/// archived mid-pass) after its new partition was read; or it is updated
/// mid-pass, moving to the end of `updatedAt` order, whose slice may have
/// finished by then (a walk's slices run at once). So the partitions are
/// read again for what changed since the pass began, each round as one
/// slice in order (`walk::run_in_order`). Incremental syncs need no such
/// round: a moved record is stamped after the signpost, and the next run
/// finds it.
///
/// A round read in ascending `updatedAt` to the end of one list (keyset or
/// windows) is the proof: a record it has not reached yet can only move
/// ahead of it, to the end, where the round still reads; one it has passed
/// was read. Read another way (newest first, or every record by offset:
/// the API ignores the range filters), an update moves a record to where
/// the round has been; across partitions, into one the round has read: so
/// rounds go on, a second apart at least, until one finds nothing the
/// round before had not. A project busy enough that no round settles
/// within eight leaves the pass unproven: no ACTIVATE_VERSION, and the
/// next run reads the stream whole again.
async fn catch_up_moves(w: &mut Walker, partitions: &[Context]) -> Result<(), FetchError> {
    // The pass's start on both clocks, the earlier: `updatedAt` is stamped by
    // the API, whose clock may lag this machine's. The API's first `Date`
    // came after the pass began (and is whole seconds): hence the margin.
    let client = w.sh.client.clone();
    let first = client
        .server_first_date_ms()
        .map_or(i64::MAX, |d| d - CLOCK_MARGIN_MS);
    let mut since = w.sh.signpost.get().await.min(first);
    let mut before: Option<HashSet<(String, Option<i64>)>> = None;
    let mut last_round: Option<std::time::Instant> = None;
    for _ in 0..MAX_CATCH_UP_ROUNDS {
        if let Some(at) = last_round {
            let wait = CATCH_UP_SPACING.saturating_sub(at.elapsed());
            if !w.sh.cancel.sleep(wait).await {
                return Err(FetchError::Cancelled);
            }
        }
        last_round = Some(std::time::Instant::now());
        let now = chrono::Utc::now().timestamp_millis();
        let round_start = client.server_date_ms().map_or(now, |d| d.min(now)) - CLOCK_MARGIN_MS;
        let seen: Seen = Arc::default();
        let mut round = w.noting(seen.clone());
        let mut written = 0;
        // With more than one partition (tickets' archived and spam), a
        // record may move into one the round has finished: no proof.
        let mut ascending = partitions.len() == 1;
        for &partition in partitions {
            let target = Target {
                path: w.sh.def.path.to_string(),
                partition,
                parent_id: None,
            };
            let (end, strategy) = walk::run_in_order(&mut round, &target, Some(since)).await?;
            written += end.written;
            ascending &= matches!(strategy, walk::Strategy::Keyset | walk::Strategy::Windows);
        }
        let found = std::mem::take(&mut *seen.lock().expect("not poisoned"));
        if ascending || written == 0 || before.as_ref().is_some_and(|b| found.is_subset(b)) {
            return Ok(());
        }
        before = Some(found);
        since = round_start;
    }
    w.mark_incomplete(
        "records kept changing during the whole pass, and the API's order cannot prove that none moved past where the pass had read",
    );
    Ok(())
}

impl Walker {
    /// A handle on `parent` (a child stream's parent) that walks it for its
    /// ids: nothing is written for it; its pages come to `tx` as ids, one a
    /// line, with the requests counted for this stream.
    pub fn parent_ids(&self, parent: &'static StreamDef, tx: mpsc::Sender<Batch>) -> Walker {
        let sh = &self.sh;
        Walker {
            sh: Arc::new(Shared {
                def: parent,
                client: sh.client.clone(),
                tx,
                line_buffers: sh.line_buffers.clone(),
                stats: sh.stats.clone(),
                page_size: sh.page_size,
                signpost: sh.signpost.clone(),
                version: None,
                cancel: sh.cancel.clone(),
                budget: sh.budget.clone(),
                settle: sh.settle.clone(),
                start_date: sh.start_date,
                ids_only: true,
                seen: None,
                incomplete: sh.incomplete.clone(),
            }),
            conformer: Conformer::new(parent, &[]),
        }
    }

    /// A handle on the same stream that notes in `seen` every record its
    /// walks read (a catch-up round's).
    fn noting(&self, seen: Seen) -> Walker {
        let sh = &self.sh;
        Walker {
            sh: Arc::new(Shared {
                def: sh.def,
                client: sh.client.clone(),
                tx: sh.tx.clone(),
                line_buffers: sh.line_buffers.clone(),
                stats: sh.stats.clone(),
                page_size: sh.page_size,
                signpost: sh.signpost.clone(),
                version: sh.version,
                cancel: sh.cancel.clone(),
                budget: sh.budget.clone(),
                settle: sh.settle.clone(),
                start_date: sh.start_date,
                ids_only: sh.ids_only,
                seen: Some(seen),
                incomplete: sh.incomplete.clone(),
            }),
            conformer: self.conformer.clone(),
        }
    }

    /// Another handle on the same stream, for a task of its own.
    pub fn fork(&self) -> Walker {
        Walker {
            sh: self.sh.clone(),
            conformer: self.conformer.clone(),
        }
    }

    pub fn def(&self) -> &'static StreamDef {
        self.sh.def
    }

    /// The replication key of a stream walked by range (keyset, windows,
    /// tie groups, newest first, the probes of those walks).
    pub fn replication_key(&self) -> &'static str {
        self.sh
            .def
            .replication_key
            .expect("range walks are of streams with a replication key")
    }

    pub fn client(&self) -> &Client {
        &self.sh.client
    }

    /// Records per request: `page_size`, capped by the endpoint's documented
    /// maximum and by what the server was seen to accept.
    pub fn limit(&self) -> usize {
        let e = self.client().learned().endpoint(self.sh.def.name);
        let limit = self
            .sh
            .page_size
            .min(self.sh.def.max_page_size)
            .min(e.limit_max.unwrap_or(u32::MAX));
        limit.max(1) as usize
    }

    pub fn check_cancelled(&self) -> Result<(), FetchError> {
        if self.sh.cancel.is_cancelled() {
            Err(FetchError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Fetches and conforms one page; `keep` says which records to write.
    /// A refused parameter (400) is found out and dropped here, once per
    /// endpoint (`probe::refused`): the page then comes from the query
    /// without it, and the walk sees that fact when it next chooses.
    pub async fn fetch(
        &mut self,
        def: &'static StreamDef,
        target: &Target,
        query: &query::Query,
        keep: impl Fn(&Meta) -> bool + Sync,
    ) -> Result<Page, FetchError> {
        match self.fetch_once(def, target, query, &keep).await {
            Err(FetchError::BadRequest(why)) => {
                probe::refused(self, def, target, query, why).await?;
                Err(FetchError::Replan)
            }
            other => other,
        }
    }

    /// One request, as asked: a 400 comes back as such.
    pub async fn fetch_once(
        &mut self,
        def: &'static StreamDef,
        target: &Target,
        query: &query::Query,
        keep: &(dyn Fn(&Meta) -> bool + Sync),
    ) -> Result<Page, FetchError> {
        let Walker { sh, conformer } = self;
        let version = sh.version;
        let ids_only = sh.ids_only;
        let parent_id = target.parent_id.as_deref();
        // A hidden kind's own walk (archived tickets) writes no record that
        // says it is not of that kind: a server that does not honour the
        // kind's query lists every ticket there, and every ticket that is
        // neither archived nor spam is the plain listing's under each
        // meaning of the parameters (`partitions.rs`). A record without
        // the flag at all is written: nothing tells whose it is.
        let own_kind = def
            .hidden
            .iter()
            .position(|h| h.query == target.partition)
            .map_or(0u8, |i| 1 << i);
        let mut foreign = false;
        // The versions a walk that moves a bookmark writes, for the settle
        // window; not a parent's ids, not one parent's children.
        let settle = sh
            .settle
            .as_deref()
            .filter(|_| !ids_only && parent_id.is_none());
        let line_buffers = &sh.line_buffers;
        let stats = &sh.stats;
        let (mut page, permit) = sh
            .client
            .get_held(
                stats,
                &target.path,
                &query.encode(),
                Some(&sh.budget.pages),
                |body| {
                    let tail =
                        conform::record_tail(&timefmt::format_ms(chrono::Utc::now()), version);
                    let mut out = Page {
                        lines: {
                            let mut lines = line_buffers.take();
                            // RECORD lines are about the size of the body
                            // (fields dropped, envelopes added). Exact: a
                            // reused buffer must not double past that.
                            lines.reserve_exact(body.len());
                            lines
                        },
                        ..Page::default()
                    };
                    let mut without_id = 0;
                    conformer.begin_page();
                    // Each record is conformed as soon as it is read. Should
                    // the body turn out broken further on, the whole page
                    // (`out`) is dropped and fetched again.
                    let page = scan::each_record(body, def, |record| {
                        match record.and_then(|r| Some((r, conformer.meta(r)?))) {
                            Some((record, meta)) => {
                                let of_another_kind = meta.cleared & own_kind != 0;
                                foreign |= of_another_kind;
                                if keep(&meta) && !of_another_kind {
                                    if let (Some(s), Some(at)) = (settle, meta.updated_ms) {
                                        if s.wants(at) {
                                            out.versions.push((
                                                crate::seen::version_hash(&meta.id, at),
                                                at,
                                            ));
                                        }
                                    }
                                    if ids_only {
                                        out.lines.extend_from_slice(meta.id.as_bytes());
                                        out.lines.push(b'\n');
                                    } else {
                                        conformer.write_record(
                                            record,
                                            parent_id,
                                            &tail,
                                            &mut out.lines,
                                        );
                                    }
                                    out.written += 1;
                                }
                                out.metas.push(meta);
                            }
                            None => without_id += 1,
                        }
                    })?;
                    // A page of nothing but id-less elements (`[{"error": ...}]`)
                    // is an error body, not an empty last page: retried like one.
                    if page.len > 0 && out.metas.is_empty() {
                        return Err("no element of the page is a record with an id".into());
                    }
                    out.len = page.len;
                    out.total = page.total;
                    out.without_id = without_id;
                    conformer.skip_without_id(without_id);
                    Ok(out)
                },
            )
            .await?;
        if let Some(why) = conformer.violation() {
            // `schema_evolution` is `freeze`: the stream fails.
            return Err(FetchError::Fatal(crate::error::Error::Api(why.to_string())));
        }
        page.permit = permit;
        if let Some(settle) = settle {
            settle.delivered(target.partition, &page.versions);
        }
        if let Some(seen) = &sh.seen {
            let mut seen = seen.lock().expect("not poisoned");
            for m in page.metas.iter().filter(|m| keep(m)) {
                seen.insert((m.id.clone(), m.updated_ms));
            }
        }
        if foreign {
            sh.client
                .learned()
                .update(def.name, |e| e.unfiltered_flags |= own_kind);
        }
        if let Some(newest) = page.times().max() {
            sh.client.learned().saw(newest);
        }
        if def.total_field.is_some() {
            let fact = match page.total {
                Some(total) => {
                    // Progress shows the total of the plain listing's first
                    // page: the records in the range the sync reads.
                    if target.partition.is_empty() {
                        let _ = stats.total.compare_exchange(
                            0,
                            total,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    Fact::Holds
                }
                None => Fact::Ignored,
            };
            sh.client
                .learned()
                .note(def.name, Assumption::TotalCount, fact);
        }
        Ok(page)
    }

    /// Counts a written page's elements that were not records.
    pub fn count_skipped(&self, page: &Page) {
        self.sh
            .stats
            .skipped
            .fetch_add(page.without_id, Ordering::Relaxed);
    }

    /// Drops a page that will not be written, keeping its buffer.
    pub fn discard(&self, page: Page) {
        self.sh.line_buffers.give(page.lines);
    }

    /// Hands lines (and the bookmark they complete) to the writer.
    pub async fn send(
        &self,
        lines: Vec<u8>,
        records: u64,
        bookmark: Option<Bookmark>,
    ) -> Result<(), FetchError> {
        if lines.is_empty() && bookmark.is_none() {
            self.sh.line_buffers.give(lines);
            return Ok(());
        }
        // Counted when handed over, so the stream's summary (logged before
        // the writer has caught up) is complete. A parent's ids are no records.
        if !self.sh.ids_only {
            self.sh.stats.records.fetch_add(records, Ordering::Relaxed);
        }
        self.to_writer(Batch {
            stream: self.sh.def,
            lines,
            bookmark,
            reconciled: None,
        })
        .await
    }

    /// Tells the writer the stream was read, with nothing to write.
    async fn announce(&self) -> Result<(), FetchError> {
        self.to_writer(Batch {
            stream: self.sh.def,
            lines: Vec::new(),
            bookmark: None,
            reconciled: None,
        })
        .await
    }

    async fn to_writer(&self, batch: Batch) -> Result<(), FetchError> {
        // The writer only goes away when stdout is closed: stop quietly.
        self.sh
            .tx
            .send(batch)
            .await
            .map_err(|_| FetchError::Cancelled)
    }

    /// Where no bookmark may pass: the signpost, less the settle window.
    pub fn bookmark_cap(&self) -> i64 {
        let signpost = self.sh.signpost.now_or_local();
        match &self.sh.settle {
            Some(settle) => settle.cap(signpost),
            None => signpost,
        }
    }

    /// The bookmark of `context` at `cursor_ms`, never past the cap. For a
    /// walk that completed, `completed` is where it began (`Some(from)`):
    /// the bookmark then keeps what it saw in its settle window.
    pub fn bookmark(
        &self,
        context: Context,
        cursor_ms: i64,
        progress: Option<crate::state::Progress>,
        completed: Option<Option<i64>>,
    ) -> Bookmark {
        // What the window held is kept only against the API's own clock
        // (`settle.rs`): its `Date`, less the margin for pages asked beside it.
        let completed = match (completed, self.sh.signpost.try_get()) {
            (Some(from), Some(signpost)) => {
                self.client()
                    .server_first_date_ms()
                    .map(|first| settle::Completed {
                        context,
                        from,
                        signpost,
                        read_after: first - CLOCK_MARGIN_MS,
                    })
            }
            _ => None,
        };
        Bookmark {
            def: self.sh.def,
            context,
            value: timefmt::format_epoch_ms(cursor_ms.min(self.bookmark_cap())).unwrap_or_default(),
            progress,
            lookback: self.sh.settle.as_ref().map(|s| s.lookback(completed)),
        }
    }

    /// A whole pass may lack records (`why`): no ACTIVATE_VERSION for it.
    pub fn mark_incomplete(&self, why: &str) {
        let first = !self.sh.incomplete.swap(true, Ordering::Relaxed);
        if first && self.sh.version.is_some() {
            tracing::warn!(
                stream = self.sh.def.name,
                "{why}: this pass may lack records"
            );
        }
    }

    /// The ACTIVATE_VERSION that ends a complete pass; for a reconciliation
    /// (`reconciled`), the state then records when the pass began.
    pub async fn send_activate_version(
        &self,
        version: i64,
        reconciled: bool,
    ) -> Result<(), FetchError> {
        self.to_writer(Batch {
            stream: self.sh.def,
            lines: output::activate_version_line(self.sh.def, version),
            bookmark: None,
            reconciled: reconciled.then_some(version),
        })
        .await
    }
}

fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.max(b)
}
