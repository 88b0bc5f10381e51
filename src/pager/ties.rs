//! A tie group: more than a page of records sharing one `updatedAt` (a bulk
//! update, a contact import).
//!
//! `updatedAt>=T&updatedAt<=T` returns the group, but a page of it says
//! nothing about the rest: sorting by `_id` is not documented (a server
//! may refuse or ignore it), and ties come back in whatever order. So the
//! group is split with filters alone, never with a sort:
//!
//! 1. by `createdAt` ranges, then, for members sharing `createdAt` too, by
//!    `_id` ranges. A region whose page was not cut holds all its members
//!    (a cut is detected as in every walk, `Endpoint::maybe_cut`) and is
//!    written. A cut page is a sample of its region: the region is split
//!    at the sample's median, and both halves are read in turn. Each half
//!    holds at least one member of the sample, so each is smaller than
//!    the region, and the splitting ends. No member can be skipped: the
//!    halves together are exactly the region, and every region is read
//!    until it comes back whole. A record that changes meanwhile leaves
//!    the group (its `updatedAt` moves past the signpost) and belongs to
//!    the next run.
//! 2. When the server does not honour a filter (a 400, or records outside
//!    it), the region is read the next way: `createdAt` falls to `_id`,
//!    `_id` falls to passes.
//! 3. Passes: the region read by offset, again and again, until two passes
//!    in a row return the same ids. Members can only leave the group, and
//!    a departure can make a pass skip a record only by removing a record
//!    that pass already read, which the next pass then lacks: two identical
//!    passes saw every member, as long as the server's order is stable.
//!    When passes never agree (an order that changes with every request),
//!    the group cannot be proven complete: everything read is written, and
//!    the bookmark is held at the group (`SliceHandle::hold`), so the next
//!    run reads it again. The walk itself goes on.

use std::collections::HashSet;

use super::query::{Op, Query};
use super::slice::{Report, SliceHandle};
use super::Walker;
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;
use crate::conform::Meta;

/// Passes over a region before giving up on proving it complete.
const MAX_PASSES: usize = 8;

/// How a region is narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Created,
    Id,
    Passes,
}

/// A part of the group: `[lo, hi)` bounds on `createdAt` and on `_id`.
#[derive(Clone, Debug)]
struct Region {
    created: (Option<i64>, Option<i64>),
    id: (Option<String>, Option<String>),
    by: By,
}

impl Region {
    fn contains(&self, m: &Meta) -> bool {
        let created_ok = match (self.created, m.created_ms) {
            ((None, None), _) => true,
            ((lo, hi), Some(c)) => lo.is_none_or(|lo| c >= lo) && hi.is_none_or(|hi| c < hi),
            (_, None) => false,
        };
        let id_ok = self.id.0.as_ref().is_none_or(|lo| m.id >= *lo)
            && self.id.1.as_ref().is_none_or(|hi| m.id < *hi);
        created_ok && id_ok
    }

    fn query(&self, base: Query) -> Query {
        let mut q = base;
        if let Some(lo) = self.created.0 {
            q = q.at("createdAt", Op::Ge, lo);
        }
        if let Some(hi) = self.created.1 {
            q = q.at("createdAt", Op::Lt, hi);
        }
        if let Some(lo) = &self.id.0 {
            q = q.with("_id", Op::Ge, lo.clone());
        }
        if let Some(hi) = &self.id.1 {
            q = q.with("_id", Op::Lt, hi.clone());
        }
        q
    }

    /// Two regions that together are this one, cut where the sample (a
    /// cut page of it) says.
    fn split(&self, sample: &[Meta]) -> Vec<Region> {
        if self.by == By::Created {
            let mut created: Vec<i64> = sample.iter().filter_map(|m| m.created_ms).collect();
            if created.len() < sample.len() {
                // A member without `createdAt` fits no `createdAt` range.
                return vec![Region {
                    by: By::Id,
                    ..self.clone()
                }];
            }
            created.sort_unstable();
            let (lowest, highest) = (created[0], created[created.len() - 1]);
            if lowest == highest {
                // The sample shares `createdAt` too: that value by `_id`,
                // what lies on either side by `createdAt`.
                let mut parts = vec![
                    Region {
                        created: (self.created.0, Some(lowest)),
                        ..self.clone()
                    },
                    Region {
                        created: (Some(lowest), Some(lowest + 1)),
                        by: By::Id,
                        ..self.clone()
                    },
                ];
                if self.created.1.is_none_or(|hi| hi > lowest + 1) {
                    parts.push(Region {
                        created: (Some(lowest + 1), self.created.1),
                        ..self.clone()
                    });
                }
                return parts;
            }
            let mut mid = created[created.len() / 2];
            if mid == lowest {
                mid = *created.iter().find(|&&c| c > lowest).expect("two values");
            }
            return vec![
                Region {
                    created: (self.created.0, Some(mid)),
                    ..self.clone()
                },
                Region {
                    created: (Some(mid), self.created.1),
                    ..self.clone()
                },
            ];
        }
        let mut ids: Vec<&str> = sample.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            return vec![Region {
                by: By::Passes,
                ..self.clone()
            }];
        }
        let mid = ids[ids.len() / 2].to_string();
        vec![
            Region {
                id: (self.id.0.clone(), Some(mid.clone())),
                ..self.clone()
            },
            Region {
                id: (Some(mid), self.id.1.clone()),
                ..self.clone()
            },
        ]
    }
}

/// Reads every record whose `updatedAt` is `at` (those in `written` were
/// written already). Returns whether the group was read whole; when not,
/// the bookmark is held at `at`.
pub(crate) async fn read(
    w: &mut Walker,
    h: &SliceHandle,
    at: i64,
    written: &HashSet<String>,
) -> Result<bool, FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    tracing::info!(
        stream = def.name,
        "more than a page of records share {rk} {}: reading them in parts",
        super::query::fmt_ms(at)
    );
    w.conformer.wants_created = true;
    let read = split_and_read(w, h, at, written).await;
    w.conformer.wants_created = false;
    let complete = read?;
    if !complete {
        tracing::warn!(
            stream = def.name,
            "the records sharing {rk} {} could not be proven read whole (the API's order changes from request to request): what was read is written, and the bookmark stays before them so the next run reads them again",
            super::query::fmt_ms(at)
        );
        h.hold(at).await;
        w.mark_incomplete("records sharing one updatedAt could not be proven read whole");
    }
    Ok(complete)
}

/// The regions of the group, read until each comes back whole.
async fn split_and_read(
    w: &mut Walker,
    h: &SliceHandle,
    at: i64,
    written: &HashSet<String>,
) -> Result<bool, FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    let target = &h.walk.target;
    let base = || {
        Query::new(target.partition)
            .at(rk, Op::Ge, at)
            .at(rk, Op::Le, at)
    };
    let mut regions = vec![Region {
        created: (None, None),
        id: (None, None),
        by: By::Created,
    }];
    let mut complete = true;
    while let Some(mut region) = regions.pop() {
        w.check_cancelled()?;
        let known = w.client().learned().endpoint(def.name);
        if region.by == By::Created && known.created_filters.fails() {
            region.by = By::Id;
        }
        if region.by == By::Id && known.id_filters.fails() {
            region.by = By::Passes;
        }
        if region.by == By::Passes {
            complete &= passes(w, h, at, &region, written).await?;
            continue;
        }
        let limit = w.limit();
        let q = region.query(base()).limit(limit);
        let page = match w
            .fetch(def, target, &q, |m| {
                m.updated_ms == Some(at) && region.contains(m) && !written.contains(&m.id)
            })
            .await
        {
            // A refused filter was noted: the region is read the next way.
            Err(FetchError::Replan) => {
                regions.push(region);
                continue;
            }
            other => other?,
        };
        if page.metas.iter().any(|m| m.updated_ms != Some(at)) {
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, Assumption::RangeFilters, Fact::Ignored);
            return Err(FetchError::Replan);
        }
        if page.metas.iter().any(|m| !region.contains(m)) {
            let assumption = if region.by == By::Created {
                Assumption::CreatedAtFilters
            } else {
                Assumption::IdFilters
            };
            w.discard(page);
            w.client()
                .learned()
                .note(def.name, assumption, Fact::Ignored);
            regions.push(region);
            continue;
        }
        let learned = w.client().learned();
        learned.page_served(def.name, page.len);
        if !learned.endpoint(def.name).maybe_cut(page.len, limit) {
            let report = Report::page(page, Some(at), at + 1);
            h.report(w, report).await?;
            continue;
        }
        // Read right after left: the order does not matter, the depth does
        // not grow with the group.
        regions.extend(region.split(&page.metas).into_iter().rev());
        w.discard(page);
    }
    Ok(complete)
}

/// Reads a region by offset in passes until two agree (see the top).
async fn passes(
    w: &mut Walker,
    h: &SliceHandle,
    at: i64,
    region: &Region,
    written: &HashSet<String>,
) -> Result<bool, FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    let target = &h.walk.target;
    let mut emitted: HashSet<String> = HashSet::new();
    let mut previous: Option<HashSet<String>> = None;
    for pass_no in 0..MAX_PASSES {
        let mut pass: HashSet<String> = HashSet::new();
        let mut skip = 0usize;
        loop {
            w.check_cancelled()?;
            // Each pass pages with a limit of its own: a list cache would
            // answer a pass identical to the last with the same bodies,
            // two passes that agree because they are one (`ListCache`).
            let limit = w.limit().saturating_sub(pass_no).max(1);
            // Only the bounds the server honours narrow the query.
            let narrowing = Region {
                created: if w
                    .client()
                    .learned()
                    .endpoint(def.name)
                    .created_filters
                    .fails()
                {
                    (None, None)
                } else {
                    region.created
                },
                id: (None, None),
                by: By::Passes,
            };
            let q = narrowing
                .query(
                    Query::new(target.partition)
                        .at(rk, Op::Ge, at)
                        .at(rk, Op::Le, at),
                )
                .limit(limit)
                .skip(skip);
            let already = &emitted;
            let page = match w
                .fetch(def, target, &q, |m| {
                    m.updated_ms == Some(at)
                        && region.contains(m)
                        && !written.contains(&m.id)
                        && !already.contains(&m.id)
                })
                .await
            {
                Err(FetchError::Replan) => continue,
                other => other?,
            };
            let members: Vec<String> = page
                .metas
                .iter()
                .filter(|m| m.updated_ms == Some(at) && region.contains(m))
                .map(|m| m.id.clone())
                .collect();
            let len = page.len;
            let in_group = page.metas.iter().any(|m| m.updated_ms == Some(at));
            let report = Report::page(page, Some(at), at + 1);
            h.report(w, report).await?;
            for id in members {
                emitted.insert(id.clone());
                pass.insert(id);
            }
            if len == 0 || !in_group {
                break;
            }
            skip += len;
        }
        if previous.as_ref() == Some(&pass) {
            return Ok(true);
        }
        previous = Some(pass);
    }
    Ok(false)
}
