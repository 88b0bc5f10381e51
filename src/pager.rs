//! Walking a stream's pages so that no record is ever skipped.
//!
//! Offset pagination (`skip`) over data that changes while it is read skips
//! records: a record updated behind the reader moves to the end of
//! `updatedAt` order and shifts everything after it one place back, so the
//! next `skip` jumps over one record that never changed. Hence:
//!
//! **Keyset on the replication key** (incremental and full-table syncs of
//! tickets, sessions, messages, survey responses). Each request asks for
//! `updatedAt>=C&updatedAt<=S&sort=updatedAt&limit=L`, where `C` is the
//! largest `updatedAt` read so far and `S` the signpost (the moment the sync
//! started). Every record with `updatedAt < C` has then been written, so `C`
//! (never more than `S`) is a safe bookmark. Records at exactly `C` come back
//! again on the next page and are dropped by id. A record updated during the
//! sync moves past `S`: the next run picks it up, because no bookmark passes `S`.
//!
//! **Tie groups.** When a whole page shares one `updatedAt` (a bulk update of
//! more than a page), `>=C` cannot move on. The group is then read on its own
//! (`updatedAt>=C&updatedAt<=C&sort=_id`) by offset, in passes, until two
//! passes in a row return the same ids. Members can only leave the group
//! (an update moves them past `S`), and a departure can make a pass skip a
//! record only by removing a record that pass already read, which the next
//! pass then lacks: two identical passes therefore saw every member. Then the
//! scan resumes with `updatedAt>C`. A page counts as whole when it holds
//! `limit` records, or as many as an earlier short page that was followed by
//! more records: an endpoint may cap `limit` silently.
//!
//! **A server that ignores the filter or the sort** (records below the
//! cursor, or out of order) is detected on the page where it happens. The
//! scan then falls back to a plain offset walk of everything, de-duplicated
//! by id, and leaves the bookmark where it was, so the next run looks again.
//!
//! **Full-table passes** walk the same way without the `<=S` bound: a record
//! updated mid-walk moves to the end and is met again there, so the pass
//! holds every record (with ACTIVATE_VERSION, a target deletes what a pass
//! lacks). Records that move to another partition are caught by re-reading
//! the partitions for what changed since the pass began.
//!
//! **Offset with overlap** (teams, surveys, message templates: small lists
//! with no documented pagination). Each page after the first re-reads the
//! last record of the previous one; if it is not the same record the data
//! shifted (or `skip` is ignored), and the walk starts over, de-duplicating
//! by id. The walk ends on a page that adds no new id: a short page is not
//! trusted to be the last, because an endpoint may cap `limit` silently.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::catalog::Selected;
use crate::client::{Cancel, Client, FetchError};
use crate::conform::{self, Conformer, Meta};
use crate::metrics::StreamStats;
use crate::output::{self, Batch, Bookmark};
use crate::pool::Pool;
use crate::scan;
use crate::state::{Context, State};
use crate::streams::{self, Method, StreamDef};
use crate::timefmt;

/// Passes over a tie group before giving up on it changing under us.
const MAX_TIE_PASSES: usize = 8;
/// No API caps a page below this many records: a shorter page that is not
/// `limit` long is taken to hold everything left, which spares every walk a
/// tie-group read of the one or two records at its bookmark.
const MIN_PLAUSIBLE_CAP: usize = 10;
/// Rounds of a full-table pass that re-read records moving between partitions.
const MAX_CATCH_UP_ROUNDS: usize = 3;
/// Margin under a server `Date` (whole seconds, sent after the request began).
const CLOCK_MARGIN_MS: i64 = 2_000;
/// Restarts of an offset walk whose data keeps shifting.
const MAX_OFFSET_RESTARTS: usize = 3;

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
    /// The sync's start, epoch ms: no bookmark ever passes it.
    pub signpost_ms: i64,
    /// `version` of full-table records, when ACTIVATE_VERSION is on.
    pub version: Option<i64>,
    pub cancel: Cancel,
}

/// One page, conformed.
struct PageOut {
    lines: Vec<u8>,
    written: u64,
    /// Every record with an id, in the order the API sent them.
    metas: Vec<Meta>,
    /// Elements in the page, records without an id included.
    len: usize,
}

/// What a keyset walk learnt.
struct ScanEnd {
    max_seen: Option<i64>,
    /// Records written by the walk.
    written: u64,
    /// The server ignored the filter or the sort: do not move the bookmark.
    degraded: bool,
}

impl StreamRun {
    /// Extracts the stream: SCHEMA, then its records and bookmarks.
    pub async fn run(
        mut self,
        sel: &Selected,
        state: &State,
        start_date: Option<i64>,
    ) -> Result<(), FetchError> {
        let incremental = sel.method == Method::Incremental;
        self.send(
            output::schema_line(self.def, &sel.schema, incremental),
            0,
            None,
        )
        .await?;
        let def = self.def;
        if let Some(parent) = def.parent {
            let from = if incremental {
                later(
                    state.bookmark(def, &[]).map(|t| t.timestamp_millis()),
                    start_date,
                )
            } else {
                None
            };
            self.run_child(
                streams::find(parent.stream).expect("registry parents exist"),
                from,
                incremental,
            )
            .await?;
        } else {
            for &partition in def.partitions {
                match (def.replication_key, incremental) {
                    (Some(_), true) => {
                        let from = later(
                            state.bookmark(def, partition).map(|t| t.timestamp_millis()),
                            start_date,
                        );
                        self.keyset(def.path, partition, None, from, Some(partition), true)
                            .await?;
                    }
                    (Some(_), false) => {
                        self.keyset(def.path, partition, None, None, None, false)
                            .await?;
                    }
                    (None, _) => {
                        self.offset_walk(def, def.path, partition, None, true)
                            .await?;
                    }
                }
            }
        }
        if !incremental && def.replication_key.is_some() && def.is_partitioned() {
            self.catch_up_moves().await?;
        }
        if let (false, Some(version)) = (incremental, self.version) {
            self.send(output::activate_version_line(def, version), 0, None)
                .await?;
        }
        self.stats.log_summary();
        Ok(())
    }

    /// A record can move to another partition while a full-table pass runs
    /// (a ticket archived mid-sync) after that partition was read. The
    /// partitions are read again for what changed since the pass began, in
    /// rounds until one finds nothing, so the pass (the version) holds every
    /// record. Incremental syncs need no such round: a moved record is
    /// stamped after the signpost, and the next run finds it.
    async fn catch_up_moves(&mut self) -> Result<(), FetchError> {
        // The pass's start on both clocks, the earlier: `updatedAt` is stamped
        // by the API, whose clock may lag this machine's. The API's first
        // `Date` came after the pass began (and is whole seconds): hence the margin.
        let first = self
            .client
            .server_first_date_ms()
            .map_or(i64::MAX, |d| d - CLOCK_MARGIN_MS);
        let mut since = self.signpost_ms.min(first);
        for _ in 0..MAX_CATCH_UP_ROUNDS {
            let now = chrono::Utc::now().timestamp_millis();
            let round_start =
                self.client.server_date_ms().map_or(now, |d| d.min(now)) - CLOCK_MARGIN_MS;
            let mut found = 0;
            for &partition in self.def.partitions {
                found += self
                    .keyset(self.def.path, partition, None, Some(since), None, false)
                    .await?
                    .written;
            }
            if found == 0 {
                return Ok(());
            }
            since = round_start;
        }
        tracing::warn!(
            stream = self.def.name,
            "records kept changing partition during the full-table pass; any still moving are read by the next sync"
        );
        Ok(())
    }

    /// A child stream: its parent's ids, then one keyset walk per parent.
    /// The stream keeps one bookmark (the state stays small however many
    /// parents there are), moved only once every parent has been read.
    async fn run_child(
        &mut self,
        parent: &'static StreamDef,
        from: Option<i64>,
        incremental: bool,
    ) -> Result<(), FetchError> {
        let mut parent_ids = self
            .offset_walk(parent, parent.path, &[], None, false)
            .await?;
        // One bookmark for many walks may not pass the moment the first walk
        // began on the API's clock either (a response written to survey 1
        // while survey 5 is read carries a stamp from then): when this
        // machine's clock runs ahead of the API's, the signpost would.
        let cap = self
            .client
            .server_date_ms()
            .map_or(self.signpost_ms, |d| d.min(self.signpost_ms));
        parent_ids.sort();
        tracing::info!(
            stream = self.def.name,
            "reading responses of {} {}",
            parent_ids.len(),
            parent.name
        );
        let mut max_seen: Option<i64> = None;
        let mut degraded = false;
        for id in &parent_ids {
            let path = self.def.path.replace("{parent_id}", id);
            match self
                .keyset(&path, &[], Some(id), from, None, incremental)
                .await
            {
                Ok(end) => {
                    max_seen = max_seen.max(end.max_seen);
                    degraded |= end.degraded;
                }
                Err(FetchError::NotFound) => {
                    tracing::info!(
                        stream = self.def.name,
                        "{} {id} no longer exists (404): skipped",
                        parent.name
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if let (true, false, Some(max)) = (incremental, degraded, max_seen) {
            let value = self.bookmark_value(max.min(cap).max(from.unwrap_or(i64::MIN)));
            self.send(
                Vec::new(),
                0,
                Some(Bookmark {
                    def: self.def,
                    context: &[],
                    value,
                }),
            )
            .await?;
        }
        Ok(())
    }

    fn bookmark_value(&self, cursor_ms: i64) -> String {
        timefmt::format_epoch_ms(cursor_ms.min(self.signpost_ms)).unwrap_or_default()
    }

    /// The keyset walk described at the top of this file. `bookmarks` is the
    /// partition whose bookmark each page moves, if any.
    ///
    /// `to_signpost`: incremental walks stop at the signpost, later changes
    /// belong to the next run. Full-table walks do not stop there: a record
    /// updated mid-walk moves to the end, where the walk meets it again, so
    /// the pass (the version, with ACTIVATE_VERSION) holds every record.
    async fn keyset(
        &mut self,
        path: &str,
        partition: Context,
        parent_id: Option<&str>,
        from: Option<i64>,
        bookmarks: Option<Context>,
        to_signpost: bool,
    ) -> Result<ScanEnd, FetchError> {
        let rk = self
            .def
            .replication_key
            .expect("keyset walks need a replication key");
        let limit = self.page_size.min(self.def.max_page_size);
        let signpost = timefmt::format_epoch_ms(self.signpost_ms).unwrap_or_default();
        // `lower` is the filter sent; `cursor` the largest value read so far.
        let mut lower: Option<(i64, bool)> = from.map(|f| (f, true));
        let mut cursor = from;
        let mut seen_at_cursor: HashSet<String> = HashSet::new();
        let mut max_seen = None;
        // The page size the server really serves: an endpoint may cap
        // `limit` silently. A short page followed by more new records proves
        // a cap, and a page that long then counts as full.
        let mut full_page = limit as usize;
        let mut previous_len: Option<usize> = None;
        let mut written = 0u64;
        loop {
            if self.cancel.is_cancelled() {
                return Err(FetchError::Cancelled);
            }
            let mut params = vec![
                ("sort", "=", rk.to_string()),
                ("limit", "=", limit.to_string()),
            ];
            if let Some((v, inclusive)) = lower {
                params.push((rk, if inclusive { ">=" } else { ">" }, fmt_ms(v)));
            }
            if to_signpost {
                params.push((rk, "<=", signpost.clone()));
            }
            let query = build_query(partition, &params);
            let seen = &seen_at_cursor;
            let page = self
                .fetch(self.def, path, &query, parent_id, |m| {
                    !(m.updated_ms.is_some() && m.updated_ms == cursor && seen.contains(&m.id))
                })
                .await?;
            let times: Vec<i64> = page.metas.iter().filter_map(|m| m.updated_ms).collect();
            let unsorted = times.windows(2).any(|w| w[1] < w[0]);
            let below = lower.is_some_and(|(v, inclusive)| {
                times
                    .iter()
                    .any(|&t| if inclusive { t < v } else { t <= v })
            });
            written += page.written;
            if unsorted || below {
                self.send(page.lines, page.written, None).await?;
                let what = if unsorted {
                    format!("sort={rk}")
                } else {
                    format!("the {rk} filter")
                };
                tracing::warn!(
                    stream = self.def.name,
                    "the API ignored {what} on {path}: reading everything by offset instead, and leaving the bookmark where it was"
                );
                written += self
                    .offset_walk(self.def, path, partition, parent_id, true)
                    .await?
                    .len() as u64;
                return Ok(ScanEnd {
                    max_seen: None,
                    written,
                    degraded: true,
                });
            }
            if let Some(prev) = previous_len.filter(|&p| p > 0 && p < full_page) {
                if page.written > 0 {
                    full_page = prev;
                }
            }
            previous_len = Some(page.len);
            let page_max = times.last().copied();
            max_seen = max_seen.max(page_max);
            let advanced = page_max.is_some() && page_max > cursor;
            let seen_before = seen_at_cursor.len();
            if advanced {
                let c = page_max.expect("advanced implies a value");
                seen_at_cursor = page
                    .metas
                    .iter()
                    .filter(|m| m.updated_ms == Some(c))
                    .map(|m| m.id.clone())
                    .collect();
                cursor = Some(c);
                lower = Some((c, true));
            } else if let Some(c) = cursor {
                seen_at_cursor.extend(
                    page.metas
                        .iter()
                        .filter(|m| m.updated_ms == Some(c))
                        .map(|m| m.id.clone()),
                );
            }
            let bookmark = match (bookmarks, cursor) {
                (Some(context), Some(c)) => Some(Bookmark {
                    def: self.def,
                    context,
                    value: self.bookmark_value(c),
                }),
                _ => None,
            };
            self.send(page.lines, page.written, bookmark).await?;
            if page.len == 0 || advanced {
                if page.len == 0 {
                    break;
                }
                continue;
            }
            // No progress: every record of the page is at `cursor`. The group
            // there may be larger than a page when the page is full, when it
            // brought records not seen before, or when it repeats exactly the
            // records already seen (a silent cap the size of what we saw).
            // Otherwise the page held all that remains: the walk is done.
            let could_be_capped =
                page.len >= MIN_PLAUSIBLE_CAP && (page.written > 0 || page.len >= seen_before);
            let maybe_more = page.len >= full_page || could_be_capped;
            match cursor {
                Some(c) if maybe_more => {
                    written += self
                        .tie_group(path, partition, parent_id, c, &mut seen_at_cursor)
                        .await?;
                    lower = Some((c, false));
                    seen_at_cursor.clear();
                }
                _ => break,
            }
        }
        Ok(ScanEnd {
            max_seen,
            written,
            degraded: false,
        })
    }

    /// Reads every record whose replication key is exactly `at`, in passes
    /// until two passes agree (see the top of this file).
    async fn tie_group(
        &mut self,
        path: &str,
        partition: Context,
        parent_id: Option<&str>,
        at: i64,
        seen: &mut HashSet<String>,
    ) -> Result<u64, FetchError> {
        let rk = self
            .def
            .replication_key
            .expect("tie groups exist on replication keys");
        let limit = self.page_size.min(self.def.max_page_size);
        tracing::info!(
            stream = self.def.name,
            "more than a page of records share {rk} {}: reading them by id",
            fmt_ms(at)
        );
        let mut previous: Option<HashSet<String>> = None;
        let mut warned_order = false;
        let mut written = 0;
        for _ in 0..MAX_TIE_PASSES {
            let mut pass: HashSet<String> = HashSet::new();
            let mut skip = 0usize;
            loop {
                let params = [
                    (rk, ">=", fmt_ms(at)),
                    (rk, "<=", fmt_ms(at)),
                    ("sort", "=", "_id".to_string()),
                    ("limit", "=", limit.to_string()),
                    ("skip", "=", skip.to_string()),
                ];
                let query = build_query(partition, &params);
                let already = &*seen;
                let page = self
                    .fetch(self.def, path, &query, parent_id, |m| {
                        m.updated_ms == Some(at) && !already.contains(&m.id)
                    })
                    .await?;
                let ids: Vec<&String> = page
                    .metas
                    .iter()
                    .filter(|m| m.updated_ms == Some(at))
                    .map(|m| &m.id)
                    .collect();
                if !warned_order && ids.windows(2).any(|w| w[1] < w[0]) {
                    warned_order = true;
                    tracing::warn!(
                        stream = self.def.name,
                        "the API ignored sort=_id: the tie group at {} is read in repeated passes",
                        fmt_ms(at)
                    );
                }
                let at_count = ids.len();
                for id in ids {
                    seen.insert(id.clone());
                    pass.insert(id.clone());
                }
                let len = page.len;
                written += page.written;
                self.send(page.lines, page.written, None).await?;
                if len == 0 || at_count == 0 {
                    break;
                }
                skip += len;
            }
            if previous.as_ref() == Some(&pass) {
                return Ok(written);
            }
            previous = Some(pass);
        }
        tracing::warn!(
            stream = self.def.name,
            "the tie group at {} kept changing over {MAX_TIE_PASSES} passes; records of it updated meanwhile are picked up by the next run",
            fmt_ms(at)
        );
        Ok(written)
    }

    /// Offset walk with a one-record overlap (see the top of this file).
    /// Returns the ids read. With `emit` false it only collects ids (the
    /// parents of a child stream).
    async fn offset_walk(
        &mut self,
        def: &'static StreamDef,
        path: &str,
        partition: Context,
        parent_id: Option<&str>,
        emit: bool,
    ) -> Result<Vec<String>, FetchError> {
        // At least 2: each page after the first re-reads one record (the
        // overlap), so a page of 1 would only ever re-read it and the walk
        // would stop after the first record (`page_size` 1 is valid).
        let limit = (self.page_size.min(def.max_page_size) as usize).max(2);
        let mut seen: HashSet<String> = HashSet::new();
        let mut order: Vec<String> = Vec::new();
        let mut skip = 0usize;
        let mut last_id: Option<String> = None;
        let mut restarts = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(FetchError::Cancelled);
            }
            let overlap = usize::from(skip > 0);
            let params = [
                ("limit", "=", limit.to_string()),
                ("skip", "=", (skip - overlap).to_string()),
            ];
            let query = build_query(partition, &params);
            let already = &seen;
            let page = self
                .fetch(def, path, &query, parent_id, |m| {
                    emit && !already.contains(&m.id)
                })
                .await?;
            let shifted = overlap == 1 && page.metas.first().map(|m| &m.id) != last_id.as_ref();
            let mut new = 0;
            for m in &page.metas {
                if seen.insert(m.id.clone()) {
                    order.push(m.id.clone());
                    new += 1;
                }
            }
            let len = page.len;
            last_id = page.metas.last().map(|m| m.id.clone());
            self.send(page.lines, page.written, None).await?;
            if shifted && restarts < MAX_OFFSET_RESTARTS && len > 0 {
                // The list moved under us (or the server ignores `skip`):
                // read it again from the start; ids already written are skipped.
                restarts += 1;
                skip = 0;
                last_id = None;
                continue;
            }
            if len == 0 || new == 0 || len > limit {
                break;
            }
            skip = skip - overlap + len;
        }
        Ok(order)
    }

    /// Fetches and conforms one page; `keep` says which records to write.
    async fn fetch(
        &mut self,
        def: &'static StreamDef,
        path: &str,
        query: &str,
        parent_id: Option<&str>,
        keep: impl Fn(&Meta) -> bool,
    ) -> Result<PageOut, FetchError> {
        let StreamRun {
            client,
            stats,
            conformer,
            version,
            line_buffers,
            ..
        } = self;
        let version = *version;
        let page = client
            .get(stats, path, query, |body| {
                let tail = conform::record_tail(&timefmt::format_ms(chrono::Utc::now()), version);
                let mut out = PageOut {
                    lines: {
                        let mut lines = line_buffers.take();
                        // RECORD lines are about the size of the body
                        // (fields dropped, envelopes added). Exact: a
                        // reused buffer must not double past that.
                        lines.reserve_exact(body.len());
                        lines
                    },
                    written: 0,
                    metas: Vec::new(),
                    len: 0,
                };
                let mut without_id = 0;
                // Each record is conformed as soon as it is read. Should
                // the body turn out broken further on, the whole page
                // (`out`) is dropped and fetched again.
                let page = scan::each_record(body, def, |record| {
                    match record.and_then(|r| Some((r, conformer.meta(r)?))) {
                        Some((record, meta)) => {
                            if keep(&meta) {
                                conformer.write_record(record, parent_id, &tail, &mut out.lines);
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
                conformer.skip_without_id(stats, without_id);
                if let Some(total) = page.total {
                    stats
                        .total
                        .store(total, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(out)
            })
            .await?;
        Ok(page)
    }

    async fn send(
        &self,
        lines: Vec<u8>,
        records: u64,
        bookmark: Option<Bookmark>,
    ) -> Result<(), FetchError> {
        if lines.is_empty() && bookmark.is_none() {
            return Ok(());
        }
        // Counted when handed over, so the stream's summary (logged before
        // the writer has caught up) is complete.
        self.stats
            .records
            .fetch_add(records, std::sync::atomic::Ordering::Relaxed);
        let batch = Batch { lines, bookmark };
        // The writer only goes away when stdout is closed: stop quietly.
        self.tx.send(batch).await.map_err(|_| FetchError::Cancelled)
    }
}

fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.max(b)
}

fn fmt_ms(ms: i64) -> String {
    timefmt::format_epoch_ms(ms).unwrap_or_default()
}

/// The query string. A comparison is written into the pair itself, as the
/// API documents it (`updatedAt>=VALUE`, `updatedAt<VALUE`); `<` and `>` are
/// percent-encoded, so the server decodes exactly that text.
fn build_query(partition: Context, params: &[(&str, &str, String)]) -> String {
    let mut q = String::new();
    let exact = partition.iter().map(|(k, v)| (*k, "=", *v));
    for (field, op, value) in exact.chain(params.iter().map(|(k, op, v)| (*k, *op, v.as_str()))) {
        if !q.is_empty() {
            q.push('&');
        }
        encode_into(&mut q, field);
        q.push_str(match op {
            ">=" => "%3E=",
            ">" => "%3E",
            "<=" => "%3C=",
            "<" => "%3C",
            _ => "=",
        });
        encode_into(&mut q, value);
    }
    q
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_part_of_the_key_and_values_are_encoded() {
        let t = "2024-01-01T00:00:00.000Z".to_string();
        let q = build_query(
            &[("archived", "true")],
            &[
                ("updatedAt", ">=", t.clone()),
                ("updatedAt", ">", t.clone()),
                ("updatedAt", "<=", t),
                ("x", "=", "a b+c".into()),
            ],
        );
        assert_eq!(
            q,
            "archived=true&updatedAt%3E=2024-01-01T00:00:00.000Z&updatedAt%3E2024-01-01T00:00:00.000Z\
             &updatedAt%3C=2024-01-01T00:00:00.000Z&x=a%20b%2Bc"
        );
    }
}
