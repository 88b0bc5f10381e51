//! The keyset walk: `sort=updatedAt` and the range filters both work.
//!
//! Each request asks for `updatedAt>=C&updatedAt<E&sort=updatedAt&limit=L`,
//! where `C` is the largest `updatedAt` read so far and `E` the slice's
//! end. Every record with `updatedAt < C` has then been written, so `C` is
//! the slice's cursor. Records at exactly `C` come back again on the next
//! page and are dropped by id. A record updated during the sync is stamped
//! later than any value read (the API's clock only moves on), so it is
//! either still ahead of the cursor or past the signpost, for the next run.
//!
//! The order is trusted only once verified (`probe::verify_sort`): until
//! then no cursor is reported, so no bookmark can move on a wrong order.
//! A record outside the bounds asked for, or a page out of order, ends the
//! walk's strategy (`FetchError::Replan`) before the page is written.
//!
//! When a whole page shares one `updatedAt` and may have been cut (a bulk
//! update of more than a page), `>=C` cannot move on: the group is read by
//! `ties`, then the walk goes on with `updatedAt>C`.

use std::collections::HashSet;

use super::query::{Op, Query};
use super::slice::{Report, SliceHandle};
use super::{probe, ties, Target, Walker};
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;

pub(crate) async fn slice(w: &mut Walker, h: &SliceHandle) -> Result<(), FetchError> {
    let def = w.def();
    let target = &h.walk.target;
    let limit = w.limit();
    // `lower` is the filter sent (value, inclusive); `cursor` the largest
    // value read so far; `seen` the ids at `cursor` already written.
    let mut lower: Option<(i64, bool)> = h.lo.map(|v| (v, true));
    let mut cursor = h.lo;
    let mut seen: HashSet<String> = HashSet::new();
    // A page shorter than `limit` that may have been cut: if the next one
    // brings new records, the endpoint caps pages at its length.
    let mut short_cut: Option<usize> = None;
    // Whether this slice has read a page that moved its cursor.
    let mut advanced_before = false;
    // A first sync asks where its records end beside its first page, not
    // after it: its slices start a round trip earlier.
    let mut newest_beside = None;
    if h.starts_a_first_sync(w.sh.start_date) && h.wants_newest().await {
        let (mut pw, target, q) = (
            w.fork(),
            target.clone(),
            query(w, target, limit, lower, h.end()),
        );
        newest_beside = Some(tokio::spawn(async move {
            probe::newest(&mut pw, &target, &q).await
        }));
    }
    loop {
        w.check_cancelled()?;
        let end = h.end();
        if lower.is_some_and(|(v, inclusive)| v >= end || (!inclusive && v + 1 >= end)) {
            return h.finish(w).await;
        }
        // Up to its end, or past it where a scout cut it off (`scout.rs`).
        let asks_to = h.asks_to();
        let q = query(w, target, limit, lower, asks_to);
        let page = match h.take_first() {
            // Its first page, read by the scout that placed it.
            Some(page) => page,
            None => {
                let at_cursor = &seen;
                w.fetch(def, target, &q, |m| match m.updated_ms {
                    // A cut may lower the end while the page is read: what
                    // is above it now belongs to the new slice.
                    Some(t) => t < h.end() && !(Some(t) == cursor && at_cursor.contains(&m.id)),
                    None => true,
                })
                .await?
            }
        };
        let times: Vec<i64> = page.times().collect();
        let below = lower.is_some_and(|(v, inclusive)| {
            times
                .iter()
                .any(|&t| if inclusive { t < v } else { t <= v })
        });
        let above = asks_to != i64::MAX && times.iter().any(|&t| t >= asks_to);
        if below || above {
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, Assumption::RangeFilters, Fact::Ignored);
            return Err(FetchError::Replan);
        }
        if times.windows(2).any(|p| p[1] < p[0]) {
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, Assumption::SortByUpdatedAt, Fact::Ignored);
            return Err(FetchError::Replan);
        }
        if page.len == 0 {
            w.discard(page);
            if (lower.is_some() || end != i64::MAX) && probe::filters_misread(w, target).await? {
                return Err(FetchError::Replan);
            }
            return h.finish(w).await;
        }
        let learned = w.client().learned();
        learned.page_served(def.name, page.len);
        if advanced_before && lower.is_some() {
            // Records below `lower` exist (this slice read them) and none
            // came back: the filter works.
            learned.note(def.name, Assumption::RangeFilters, Fact::Holds);
        }
        // The sort is verified after this page is handed over, so that the
        // walk can start its other slices meanwhile; until then no cursor
        // (no bookmark) comes from this slice.
        let verify = (!learned.endpoint(def.name).sort.holds() && times.first() != times.last())
            .then(|| (page.metas.first().map(|m| m.id.clone()), times.clone()));
        let known = learned.endpoint(def.name);
        let end_now = h.end();
        let from = lower.map(|l| l.0);
        let page_max = times.iter().copied().filter(|&t| t < end_now).max();
        let advanced = page_max.is_some() && page_max > cursor;
        if advanced {
            advanced_before = true;
            let c = page_max.expect("advanced implies a value");
            seen = page
                .metas
                .iter()
                .filter(|m| m.updated_ms == Some(c))
                .map(|m| m.id.clone())
                .collect();
            cursor = Some(c);
            lower = Some((c, true));
        } else if let Some(c) = cursor {
            seen.extend(
                page.metas
                    .iter()
                    .filter(|m| m.updated_ms == Some(c))
                    .map(|m| m.id.clone()),
            );
        }
        if let (Some(len), true) = (short_cut.take(), advanced) {
            w.client().learned().update(def.name, |e| {
                e.cap = Some(e.cap.map_or(len, |c| c.min(len)));
            });
        }
        let cut = known.maybe_cut(page.len, limit);
        if cut && page.len < limit {
            short_cut = Some(page.len);
        }
        let surely = w
            .client()
            .learned()
            .endpoint(def.name)
            .surely_cut(page.len, limit);
        // Records at or past the end came back: everything below it did, if
        // the order is to be trusted. A page that was not cut holds all
        // there is, whatever the order.
        let reached_end = times.iter().any(|&t| t >= end_now) && known.sort.holds();
        let done = reached_end || !cut;
        // More than a page to read: where the records end places the
        // walk's slices. Asked once a walk, before it is cut (free where
        // the sort's check below asks it anyway).
        let ask_newest = surely && !done && h.wants_newest().await;
        let mut report = Report::page(page, from, end_now);
        report.cursor = if known.sort.holds() { cursor } else { None };
        report.at = cursor;
        report.more = Some(surely);
        report.done = done;
        report.carried = seen.len() as u64;
        h.report(w, report).await?;
        let mut asked = None;
        if let Some(beside) = newest_beside.take() {
            asked = beside.await.map_err(|e| {
                FetchError::Fatal(crate::error::Error::Internal(format!(
                    "a probe's task failed: {e}"
                )))
            })??;
            h.saw_newest(asked.as_ref().map(|n| n.1)).await;
        } else if ask_newest && verify.is_none() {
            let newest = probe::newest(w, target, &q).await?;
            h.saw_newest(newest.map(|n| n.1)).await;
        }
        if let Some((first, times)) = verify {
            let newest = probe::verify_sort(w, target, &q, first.as_deref(), &times, asked).await?;
            if ask_newest {
                h.saw_newest(newest).await;
            }
            let reached_end = times.iter().any(|&t| t >= end_now);
            h.report(
                w,
                Report {
                    cursor,
                    done: reached_end,
                    ..Report::default()
                },
            )
            .await?;
            if reached_end {
                return Ok(());
            }
        }
        if done || advanced {
            if done {
                return Ok(());
            }
            continue;
        }
        // No progress on a page that may have been cut: every record of it
        // is at `cursor`, and there may be more of them than a page.
        let Some(c) = cursor else {
            return Ok(());
        };
        if ties::read(w, h, c, &seen).await? && known.sort.holds() {
            // The whole group is written: the cursor may pass it.
            h.report(
                w,
                Report {
                    cursor: Some(c + 1),
                    ..Report::default()
                },
            )
            .await?;
        }
        lower = Some((c, false));
        seen.clear();
    }
}

/// The page request of a keyset slice: from `lower` to `end`, in order,
/// `limit` records (the slice's, fixed when it starts).
pub(super) fn query(
    w: &Walker,
    target: &Target,
    limit: usize,
    lower: Option<(i64, bool)>,
    end: i64,
) -> Query {
    let rk = w.replication_key();
    let mut q = Query::new(target.partition).sort(rk, false).limit(limit);
    if let Some((v, inclusive)) = lower {
        q = q.at(rk, if inclusive { Op::Ge } else { Op::Gt }, v);
    }
    if end != i64::MAX {
        q = q.at(rk, Op::Lt, end);
    }
    q
}
