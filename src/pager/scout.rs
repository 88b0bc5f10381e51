//! Cuts placed by records, not by time (see `walk.rs` for when a walk
//! cuts, `tracker.rs` for how much).
//!
//! A slice cut by time at `t` ends on a short page: its last request reads
//! what lies between its cursor and `t`, half a page on average, and a cut
//! that falls into a gap in the data reads nothing at all. Within a few
//! pages of a slice's cursor `C`, a cut can be placed by records instead. A
//! scout asks `updatedAt>C&updatedAt<E&sort=updatedAt&skip=P&limit=L`: the
//! records from the `P`-th on. Its first record's `updatedAt`, `x`, is
//! where the slice below now ends (it reads through `x`, ties included).
//! The new piece starts just above `x`, with the scout's page as its first
//! page, already read: a scout is never a request more. The slice below
//! keeps asking up to its old end, so that the page which crosses `x`
//! proves it read whole. Pieces `m` pages apart (`m(L-1) - 1` records: a
//! keyset page asks again for the record at its cursor; fewer where ties
//! fall at page ends, see `depths`) then spend no request on a short page.
//!
//! Nothing is trusted beyond what a keyset page already is: the list's
//! order. Records that move while scouts are out only move where a piece's
//! last page falls.
//!
//! Assumptions, each checked on the scouts' answers:
//! - `skip` is honoured beside the filters and the sort (documented).
//!   A server that ignores it answers every scout with the same page: the
//!   scouts place nothing, `Assumption::Skip` is noted as failing, and the
//!   walks cut by time from then on.
//! - `skip` pages as deep as a scout asks (`Assumption::DeepSkip`). A
//!   search index refuses past its result window (OpenSearch: 10,000) with
//!   a 400: the depth is learned, no scout asks as deep again, and deeper
//!   cuts are made by time. No scout asks deeper than `MAX_DEPTH`.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::task::JoinSet;

use super::budget::Seat;
use super::slice::SliceHandle;
use super::tracker::{Cut, Slice, MIN_RECORD_CHUNK_PAGES};
use super::{keyset, Page, Walker};
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;

/// The deepest `skip` a scout asks: OpenSearch's default result window is
/// 10,000 records, `skip + limit`.
const MAX_DEPTH: usize = 9_000;
/// Pieces hold at most this many pages: a piece is not cut again (its
/// pieces could not all end on a full page), so a long one would hold the
/// walk's end up; the one above, which keeps the rest, is cut again.
const MAX_PIECE_PAGES: usize = 3;

/// The `skip` of each scout for `cut`, or `None` where scouts cannot place
/// it: pieces deeper than the endpoint pages, or a server that ignores
/// `skip`.
pub(super) fn depths(w: &Walker, cut: &Cut, limit: usize) -> Option<Vec<usize>> {
    let known = w.client().learned().endpoint(w.def().name);
    if known.skip.fails() || limit < 2 {
        return None;
    }
    // A keyset page from `C` on asks again for the records at `C`: each
    // brings at least `per_page` new ones, `L - 1` without ties, fewer
    // where ties fall at page ends (a bulk edit). Pieces spaced by that
    // fewest end on a full page, the last crossing the next cut by at most
    // the ties it did not meet. Where ties fill more than a tenth of a
    // page, or until a full page tells, cut by time: a piece cut at a
    // stamp starts with a page that asks for no tie again, while a
    // scout's pieces ask for as many as one walk would (tickets in groups
    // of 50, pages of 200: 110-117 requests by time, 126-133 by scouts).
    let per_page = match cut.per_page {
        Some(n) if n >= limit - limit / 10 => n.min(limit - 1),
        _ => return None,
    };
    let deepest = known.skip_refused_from.map_or(MAX_DEPTH, |refused| {
        refused.saturating_sub(1).min(MAX_DEPTH)
    });
    // The slice being cut, asking from `C`, ends its `m`-th page at least
    // `m * per_page - 1` places above `C`; a piece, whose first page is
    // its scout's, `m * per_page` places above its cut. Each crosses the
    // next cut with its `m`-th page: past the cut's ties too, as far as
    // the most a page carried tells, or it would ask once more.
    // Pieces of at most `MAX_PIECE_PAGES` pages, the last keeping whatever
    // lies above: it is cut again as the walk gets there. A slice much
    // longer than the scouts reach is cut by time: its slices, each cut by
    // records from then on, keep the budget busy meanwhile.
    let pages = ((cut.chunk_records / per_page as f64).round() as usize)
        .clamp(MIN_RECORD_CHUNK_PAGES as usize, MAX_PIECE_PAGES);
    let reach = (deepest + 2) / per_page;
    let left = cut.chunk_records * cut.pieces as f64 / per_page as f64;
    let scouts = (cut.pieces - 1).min(reach / pages);
    if scouts == 0 || (scouts < cut.pieces - 1 && left > (2 * reach) as f64) {
        return None;
    }
    // The slice being cut has a page on its way as the scouts go out: a
    // scout within it comes back after it, too late to place its cut, and
    // its page is dropped. So the slice keeps two pages at least. Small
    // pages with many ties leave no room for a scout below the first
    // piece's end: cut by time.
    let first = (pages.max(2) * per_page)
        .checked_sub(1 + limit - per_page)
        .filter(|&first| first > 0)?;
    let spacing = pages * per_page - 1;
    // A scout past the records reads nothing: none asks deeper than a page
    // short of what the slice's density says is left (pieces of a page
    // each, near the walk's end, sit that close to it).
    let left_records = cut.chunk_records * cut.pieces as f64;
    let within = (left_records - per_page as f64 - first as f64) / spacing as f64;
    let scouts = scouts.min((within.floor() + 1.0).max(0.0) as usize);
    if scouts == 0 {
        return None;
    }
    Some((0..scouts).map(|k| first + k * spacing).collect())
}

/// What a scout found: the records from its depth on.
struct Found {
    /// The first record's `updatedAt`: the slice below ends through it.
    x: i64,
    /// The first record's id: a deeper scout that finds it again was
    /// answered as if `skip` were not there.
    first_id: String,
    /// The records above `x`, conformed: the new piece's first page.
    page: Page,
}

/// Sends a scout to each of `depths` below `a`'s cursor `base`, then cuts
/// `a` where they found records. Returns the new pieces, each with its
/// first page, and the seats the scouts held, for the pieces to run in.
pub(super) async fn cut(
    w: Walker,
    a: SliceHandle,
    base: i64,
    depths: Vec<usize>,
    seats: Vec<Seat>,
) -> Result<(Vec<SliceHandle>, Vec<Seat>), FetchError> {
    let found = scout(&w, &a, base, &depths).await;
    let walk = a.walk.clone();
    let mut t = walk.tracker.lock().await;
    let i = t.find(&a.end);
    if let Some(i) = i {
        t.slices[i].scouting = false;
    }
    let found = found?;
    // The slice may have finished meanwhile, or read past the first cuts:
    // it reads those pieces' ranges itself.
    let (read, done) = match i {
        Some(i) => (t.slices[i].at.or(t.slices[i].cursor), t.slices[i].done),
        None => (None, true),
    };
    let (late, found): (Vec<Found>, Vec<Found>) = found
        .into_iter()
        .partition(|f| done || read.is_some_and(|r| f.x <= r));
    for f in late {
        w.discard(f.page);
    }
    let Some(i) = i.filter(|_| !found.is_empty()) else {
        return Ok((Vec::new(), seats));
    };
    // Raw: an end still to be the signpost stays so.
    let old_end = t.slices[i].end.load(Ordering::Relaxed);
    let asks_to = t.slices[i].asks_to.load(Ordering::Relaxed);
    t.slices[i].end.store(found[0].x + 1, Ordering::Relaxed);
    t.slices[i].ends_on_a_page = true;
    let last = found.len() - 1;
    let ends: Vec<i64> = found
        .iter()
        .skip(1)
        .map(|f| f.x + 1)
        .chain(std::iter::once(old_end))
        .collect();
    let mut pieces = Vec::new();
    for (k, (f, end)) in found.into_iter().zip(ends).enumerate() {
        let mut piece = Slice::new(Some(f.x + 1), end, asks_to);
        piece.ends_on_a_page = k < last;
        pieces.push(SliceHandle::with_first(&walk, &piece, f.page));
        t.slices.insert(i + 1 + k, piece);
    }
    tracing::debug!(
        stream = w.def().name,
        "{}: cut by records into {} pieces, above {}",
        walk.target.path,
        pieces.len() + 1,
        super::query::fmt_ms(base)
    );
    Ok((pieces, seats))
}

/// The scouts' pages, in depth order, up to the first that places nothing.
async fn scout(
    w: &Walker,
    a: &SliceHandle,
    base: i64,
    depths: &[usize],
) -> Result<Vec<Found>, FetchError> {
    let def = w.def();
    let limit = w.limit();
    let to = a.asks_to();
    let mut tasks = JoinSet::new();
    for (k, &depth) in depths.iter().enumerate() {
        let mut w = w.fork();
        let target = a.walk.target.clone();
        let q = keyset::query(&w, &target, limit, Some((base, false)), to).skip(depth);
        tasks.spawn(async move {
            let first = AtomicI64::new(i64::MIN);
            let page = w
                .fetch_once(def, &target, &q, &|m| match m.updated_ms {
                    // The first record's stamp is where the cut falls: it
                    // and its ties belong to the slice below.
                    Some(t) => {
                        let x = match first.compare_exchange(
                            i64::MIN,
                            t,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => t,
                            Err(x) => x,
                        };
                        t > x && t < to
                    }
                    None => false,
                })
                .await;
            (
                k,
                page.map(|mut p| {
                    // Held until every scout is back: not a page the memory
                    // budget counts (that could wait on the scouts' own pages).
                    p.permit = None;
                    p
                }),
            )
        });
    }
    let mut answers: Vec<Option<Result<Page, FetchError>>> = depths.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (k, page) = joined.map_err(|e| {
            FetchError::Fatal(crate::error::Error::Internal(format!(
                "a scout's task failed: {e}"
            )))
        })?;
        answers[k] = Some(page);
    }
    let learned = w.client().learned();
    let mut found: Vec<Found> = Vec::new();
    let mut rest = answers.into_iter().zip(depths).map(|(a, &d)| (a, d));
    for (answer, depth) in rest.by_ref() {
        let page = match answer.expect("every scout answered") {
            Ok(page) => page,
            Err(FetchError::BadRequest(why)) => {
                tracing::info!(
                    stream = def.name,
                    "GET {} refuses skip={depth} ({why}): slices are cut by time below that depth",
                    a.walk.target.path
                );
                learned.update(def.name, |e| {
                    e.skip_refused_from = Some(e.skip_refused_from.map_or(depth, |r| r.min(depth)));
                });
                learned.note(def.name, Assumption::DeepSkip, Fact::Refused);
                break;
            }
            Err(e) => return Err(e),
        };
        let times: Vec<i64> = page.times().collect();
        let x = times.first().copied();
        let first_id = page.metas.first().map(|m| m.id.clone()).unwrap_or_default();
        let prev = found.last().map(|f| (f.x, f.first_id.as_str()));
        let places = match x {
            // Past the records: the piece below keeps the rest.
            None => false,
            // A tie group fills the page: where it ends is unknown.
            Some(x) if times.iter().all(|&t| t == x) => false,
            // Out of order, or out of the range asked: the slice's own
            // pages will tell the walk.
            _ if times.windows(2).any(|p| p[1] < p[0]) => false,
            _ if times.iter().any(|&t| t <= base || t >= to) => false,
            Some(x) if prev.is_some_and(|(p, _)| x <= p) => {
                // Deeper, yet the same record first: `skip` is ignored.
                if prev.is_some_and(|(_, id)| id == first_id) {
                    learned.note(def.name, Assumption::Skip, Fact::Ignored);
                }
                false
            }
            Some(_) => true,
        };
        if !places {
            w.discard(page);
            break;
        }
        let x = x.expect("placed on a record");
        let mut page = page;
        page.metas.retain(|m| m.updated_ms.is_some_and(|t| t > x));
        found.push(Found { x, first_id, page });
    }
    for (answer, _) in rest {
        if let Some(Ok(page)) = answer {
            w.discard(page);
        }
    }
    Ok(found)
}
