//! The window walk: the range filters work, the sort does not.
//!
//! Without an order, a page of `updatedAt>=C` says nothing about what it
//! left out. But a page that was not cut (`Endpoint::maybe_cut`) holds
//! every record of its window, whatever their order. So the slice is read
//! as consecutive windows `[c, b)`, each asked for in one request:
//! - a window that comes back whole is written, and the next one is sized
//!   from its density to fill about 60% of a page;
//! - a window that comes back cut is not written: the page is a sample of
//!   it, and the next try ends where 60% of that sample lies (if the sample
//!   was the window's first records, that window comes back whole; if it
//!   was a random sample, each try shrinks the window by 40%);
//! - a window of one millisecond that comes back cut is a tie group, read
//!   by `ties`.
//!
//! The cursor is the start of the next window: everything below it is
//! written. No sort parameter is sent (the server ignores or refuses it).

use super::query::{Op, Query};
use super::slice::{Report, SliceHandle};
use super::{probe, ties, Walker};
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;

/// Share of a page a window is sized to fill.
const FILL: f64 = 0.6;
/// A window never grows more than this from one to the next.
const MAX_GROWTH: i64 = 8;

pub(crate) async fn slice(w: &mut Walker, h: &SliceHandle) -> Result<(), FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    let target = &h.walk.target;
    let limit = w.limit();
    let mut c = h.lo;
    // The next window's end, when a cut page chose it; else its width.
    let mut next_end: Option<i64> = None;
    let mut width: Option<i64> = None;
    loop {
        w.check_cancelled()?;
        let end = h.end();
        if c.is_some_and(|c| c >= end) {
            return h.finish(w).await;
        }
        let b = match (next_end.take(), c, width) {
            (Some(b), _, _) => b.min(end),
            (None, Some(c), Some(wd)) => c.saturating_add(wd).min(end),
            _ => end,
        };
        let mut q = Query::new(target.partition).limit(limit);
        if let Some(c) = c {
            q = q.at(rk, Op::Ge, c);
        }
        if b != i64::MAX {
            q = q.at(rk, Op::Lt, b);
        }
        let mut page = w
            .fetch(def, target, &q, |m| {
                m.updated_ms.is_none_or(|t| t < b.min(h.end()))
            })
            .await?;
        let mut times: Vec<i64> = page.times().collect();
        if times.iter().any(|&t| c.is_some_and(|c| t < c) || t >= b) {
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, Assumption::RangeFilters, Fact::Ignored);
            return Err(FetchError::Replan);
        }
        if page.len == 0 && (c.is_some() || b != i64::MAX) {
            // No page is held while probing: a held page keeps its place in
            // the memory budget, which the probe may wait for.
            let empty = std::mem::take(&mut page);
            w.discard(empty);
            if probe::filters_misread(w, target).await? {
                return Err(FetchError::Replan);
            }
        }
        let learned = w.client().learned();
        learned.page_served(def.name, page.len);
        let known = learned.endpoint(def.name);
        let end_now = h.end();
        let b_now = b.min(end_now);
        if !known.maybe_cut(page.len, limit) {
            let span = match (c, times.iter().min()) {
                (Some(c), _) => Some(b_now - c),
                (None, Some(&first)) => Some(b_now - first),
                (None, None) => None,
            };
            let len = page.len;
            let cap = if known.longest_page > 0 {
                known.longest_page.min(limit)
            } else {
                limit
            };
            let mut report = Report::page(page, c, b_now);
            report.cursor = Some(b_now);
            // A whole window says nothing of what is left: a slice that
            // read one full of records is worth cutting.
            report.more = Some(len * 2 >= cap);
            report.done = b_now >= end_now;
            h.report(w, report).await?;
            if b_now >= end_now {
                return Ok(());
            }
            // Size the next window from this one's density.
            width = span.filter(|&s| s > 0).map(|s| {
                let grown = if len == 0 {
                    s.saturating_mul(MAX_GROWTH)
                } else {
                    (s as f64 * FILL * cap as f64 / len as f64) as i64
                };
                grown.clamp(1, s.saturating_mul(MAX_GROWTH))
            });
            c = Some(b_now);
            continue;
        }
        w.discard(page);
        times.sort_unstable();
        let lowest = times.first().copied();
        match (c, lowest) {
            // A one-millisecond window that is cut: a tie group.
            (Some(at), _) if b_now - at <= 1 => {
                ties::read(w, h, at, &Default::default()).await?;
                h.report(
                    w,
                    Report {
                        cursor: Some(at + 1),
                        ..Report::default()
                    },
                )
                .await?;
                c = Some(at + 1);
            }
            (_, None) => {
                // A cut page without a single dated record: nothing to size
                // from, halve the window.
                let from = c.unwrap_or(i64::MIN / 2);
                next_end = Some(from + (b_now.min(i64::MAX / 2) - from) / 2);
            }
            (_, Some(lowest)) => {
                let pick = times[((times.len() as f64 * FILL) as usize).min(times.len() - 1)];
                let floor = c.map_or(lowest, |c| c + 1);
                next_end = Some(pick.max(floor).min(b_now));
                if let (true, Some(at)) = (next_end == Some(b_now), c) {
                    // The sample does not shrink the window: halve it.
                    next_end = Some(at + ((b_now - at) / 2).max(1));
                }
            }
        }
    }
}
