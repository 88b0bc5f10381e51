//! Walks by offset (`skip`): for small lists without a replication key,
//! and for a range when the server does not honour the range filters.
//!
//! **Offset with overlap** ([`offset_walk`]: teams, surveys, message
//! templates, the parents of a child stream; and [`bounded`] when neither
//! the filters nor the sort work). Each page after the first re-reads the
//! last record of the previous one; if it is not the same record the data
//! shifted (or `skip` is ignored), and the walk starts over, skipping ids
//! already written. The walk ends on a page that adds no new id, or on a
//! page too short to have been cut (`Endpoint::maybe_cut`: shorter than
//! `limit`, and than any plausible cap or the longest page the endpoint
//! served; an endpoint may cap `limit` silently): a list of a handful of
//! records costs one request, not two. It keeps every id it read, so its
//! memory grows with the list:
//! fine for the small lists it is meant for; for a whole stream it is the
//! last resort of a server that honours neither filters nor sort.
//!
//! **Newest first** ([`bounded`] with the sort: filters not honoured):
//! `sort=-updatedAt` by offset, from the newest record down to the lower
//! bound, keeping the records in range. An update during the walk moves a
//! record to the front, which only shifts what is left one place further:
//! a record read twice, never one skipped. A deletion shifts it back:
//! detected because the page no longer starts with a record of the page
//! before, and the walk steps back a page. The bookmark moves only when the
//! walk reaches the lower bound, and never past the API's clock when the
//! walk began: the new version of a record updated meanwhile is at the
//! front, already passed (see [`bounded`]).

use std::collections::HashSet;

use super::query::Query;
use super::slice::{Report, SliceHandle};
use super::{probe, Target, Walker};
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;
use crate::streams::StreamDef;

/// Restarts of an offset walk whose data keeps shifting.
const MAX_OFFSET_RESTARTS: usize = 3;

/// Offset walk with a one-record overlap (see the top of this file).
/// Returns the ids read. With `emit` false it only collects ids (the
/// parents of a child stream).
pub(crate) async fn offset_walk(
    w: &mut Walker,
    def: &'static StreamDef,
    target: &Target,
    emit: bool,
) -> Result<Vec<String>, FetchError> {
    let emit = if emit { Emit::Plain } else { Emit::No };
    walk_all(w, def, target, emit).await
}

/// One parent's whole list of a per-parent child stream (a ticket's
/// activity logs), written.
pub(crate) async fn listing(w: &mut Walker, target: &Target) -> Result<(), FetchError> {
    let def = w.def();
    walk_all(w, def, target, Emit::Plain).await.map(drop)
}

/// Where an offset walk's records go.
#[derive(Clone, Copy)]
enum Emit<'a> {
    No,
    Plain,
    /// Those in the slice's range, reported to its walk.
    Slice(&'a SliceHandle),
}

async fn walk_all(
    w: &mut Walker,
    def: &'static StreamDef,
    target: &Target,
    emit: Emit<'_>,
) -> Result<Vec<String>, FetchError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut order: Vec<String> = Vec::new();
    let mut skip = 0usize;
    let mut last_id: Option<String> = None;
    let mut restarts = 0;
    loop {
        w.check_cancelled()?;
        // At least 2: each page after the first re-reads one record (the
        // overlap), so a page of 1 would only ever re-read it and the walk
        // would stop after the first record (`page_size` 1 is valid).
        let limit = w.limit().min(def.max_page_size as usize).max(2);
        let overlap = usize::from(skip > 0);
        let query = Query::new(target.partition)
            .limit(limit)
            .skip(skip - overlap);
        let already = &seen;
        let in_range = |m: &crate::conform::Meta| match emit {
            Emit::No => false,
            Emit::Plain => true,
            Emit::Slice(h) => m
                .updated_ms
                .is_none_or(|t| h.lo.is_none_or(|lo| t >= lo) && t < h.end()),
        };
        let page = match w
            .fetch(def, target, &query, |m| {
                in_range(m) && !already.contains(&m.id)
            })
            .await
        {
            // A refused `limit` was noted: ask again with one it accepts.
            Err(FetchError::Replan) => continue,
            other => other?,
        };
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
        match emit {
            Emit::Slice(h) => {
                let report = Report::page(page, h.lo, h.end());
                h.report(w, report).await?;
            }
            _ => {
                w.count_skipped(&page);
                w.send(page.lines, page.written, None).await?
            }
        }
        if shifted && restarts == MAX_OFFSET_RESTARTS {
            // Still moving: the rest is read as it comes, and may miss a
            // record that moved ahead; a range's bookmark stays where it
            // was (at the epoch when the range has no lower bound), so the
            // next run reads the range again.
            if let Emit::Slice(h) = emit {
                h.hold(h.lo.unwrap_or(0)).await;
            }
            w.mark_incomplete(&format!(
                "{}: the list kept shifting while read",
                target.path
            ));
        }
        if shifted && restarts < MAX_OFFSET_RESTARTS && len > 0 {
            // The list moved under us (or the server ignores `skip`):
            // read it again from the start; ids already written are skipped.
            w.client()
                .learned()
                .note(def.name, Assumption::Skip, Fact::Ignored);
            restarts += 1;
            skip = 0;
            last_id = None;
            continue;
        }
        if len == 0 || new == 0 || len > limit {
            break;
        }
        let learned = w.client().learned();
        let cut = learned.endpoint(def.name).maybe_cut(len, limit);
        learned.page_served(def.name, len);
        if !cut {
            break;
        }
        skip = skip - overlap + len;
    }
    Ok(order)
}

/// A range read by offset: newest first when the sort works, else every
/// record (see the top of this file). The bookmark moves at the end.
pub(crate) async fn bounded(
    w: &mut Walker,
    h: &SliceHandle,
    newest_first: bool,
) -> Result<(), FetchError> {
    // Neither walk follows `updatedAt` upwards: a record updated while it
    // runs lands where it has already read (the front, or its place by
    // id), stamped below the signpost if within its second. It is stamped
    // at or after the API's clock now (the latest `Date`, or without one
    // the newest `updatedAt` read), so the bookmark stays there and the
    // next run reads it.
    let client = w.client();
    if let Some(now) = client
        .server_date_ms()
        .or_else(|| client.learned().newest_seen())
    {
        h.hold(now).await;
    }
    // The same record, missed by a whole pass, would be taken for deleted:
    // a stream's own pass reads again what changed since it began
    // (`catch_up_moves`), one parent's list of a per-parent stream does not.
    if h.walk.target.parent_id.is_some() {
        w.mark_incomplete(
            "a per-parent list read by offset (the API ignores its range filters here) may miss a record updated while it is read",
        );
    }
    let def = w.def();
    if newest_first {
        self::newest_first(w, h).await?;
    } else {
        walk_all(w, def, &h.walk.target, Emit::Slice(h)).await?;
    }
    h.finish(w).await
}

async fn newest_first(w: &mut Walker, h: &SliceHandle) -> Result<(), FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    let target = &h.walk.target;
    // Ids of the page before: the overlap anchor, and duplicates to skip.
    let mut recent: HashSet<String> = HashSet::new();
    let mut offset = 0usize;
    loop {
        w.check_cancelled()?;
        let limit = w.limit().max(2);
        let q = Query::new(target.partition)
            .sort(rk, true)
            .limit(limit)
            .skip(offset);
        let end = h.end();
        let already = &recent;
        let mut page = w
            .fetch(def, target, &q, |m| {
                m.updated_ms
                    .is_some_and(|t| h.lo.is_none_or(|lo| t >= lo) && t < end)
                    && !already.contains(&m.id)
            })
            .await?;
        let times: Vec<i64> = page.times().collect();
        if times.windows(2).any(|p| p[1] > p[0]) {
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, Assumption::SortByUpdatedAt, Fact::Ignored);
            return Err(FetchError::Replan);
        }
        if !w.client().learned().endpoint(def.name).sort.holds() && times.first() != times.last() {
            let first = page.metas.first().map(|m| m.id.clone());
            // No permit is held while probing: the probe may wait for one.
            page.permit = None;
            if let Err(e) = probe::verify_sort(w, target, &q, first.as_deref(), &times, None).await
            {
                w.discard(page);
                return Err(e);
            }
        }
        if offset > 0 && !recent.is_empty() {
            // The page must start inside the one before: where its last
            // record of that page is, is where the new records begin.
            let anchor = page.metas.iter().rposition(|m| recent.contains(&m.id));
            if anchor.is_none() && page.len > 0 {
                // Shifted back (a deletion ahead of us): step back a page.
                w.discard(page);
                w.client()
                    .learned()
                    .note(def.name, Assumption::Skip, Fact::Ignored);
                offset = offset.saturating_sub(limit);
                if offset == 0 {
                    recent.clear();
                }
                continue;
            }
        }
        w.client().learned().page_served(def.name, page.len);
        let cut = w
            .client()
            .learned()
            .endpoint(def.name)
            .maybe_cut(page.len, limit);
        let reached_bottom = h.lo.is_some_and(|lo| times.iter().any(|&t| t < lo));
        let len = page.len;
        recent = page.metas.iter().map(|m| m.id.clone()).collect();
        let report = Report::page(page, h.lo, end);
        h.report(w, report).await?;
        if len == 0 || reached_bottom || !cut {
            return Ok(());
        }
        // The next page starts on this one's last record.
        offset += len - 1;
    }
}
