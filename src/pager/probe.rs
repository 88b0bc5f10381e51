//! Cheap requests that test an assumption (`assumptions.rs`), each made at
//! most once per endpoint and run, counted in the rate budget like any other.

use super::query::{Op, Query};
use super::{Target, Walker};
use crate::assumptions::{Assumption, Fact};
use crate::client::FetchError;
use crate::error::Error;
use crate::streams::StreamDef;

/// Limits tried, in turn, when a `limit` is refused.
const SMALLER_LIMITS: [usize; 2] = [100, 10];

/// Checks that the sort of `page` (the answer to `q`, with at least two
/// distinct `updatedAt` values) is real: the same request sorted the other
/// way, one record, must start at the other end. A server that ignores
/// `sort` gives the same first record both ways; one with an unstable order
/// is caught by the page order checks of every walk. A miss may also be a
/// record updated between the two requests (the oldest of a short list,
/// moved to its top): both ends are then asked afresh, up to `PROBE_TRIES`
/// times, and the sort holds if they are two records (or one restamped) in
/// the order asked. Returns the stamp at the other end: for an ascending
/// page, the newest record of the range (`Tracker::newest`).
/// `asked`: the other end, where it was asked already (`newest`).
pub(crate) async fn verify_sort(
    w: &mut Walker,
    target: &Target,
    q: &Query,
    first: Option<&str>,
    times: &[i64],
    asked: Option<(String, i64)>,
) -> Result<Option<i64>, FetchError> {
    let def = w.def();
    let rk = w.replication_key();
    let descending = times.first() > times.last();
    let unsorted = q.without(|k, _| matches!(k, "sort" | "limit" | "skip"));
    let reversed = unsorted.clone().sort(rk, !descending).limit(1);
    let probe = match asked.filter(|_| !descending) {
        Some(newest) => Some(newest),
        None => first_record(w, target, &reversed).await?,
    };
    let mut other_end = probe.as_ref().map(|r| r.1);
    let mut holds = probe.as_ref().is_some_and(|(id, at)| {
        let at_the_other_end = if descending {
            Some(*at) <= times.iter().copied().min()
        } else {
            Some(*at) >= times.iter().copied().max()
        };
        at_the_other_end && Some(id.as_str()) != first
    });
    for tries in 1..=PROBE_TRIES {
        if holds {
            break;
        }
        // Asked afresh: a list cache would answer the very same request
        // with the same body, so each try asks for a page of its own size.
        let forward = unsorted.clone().sort(rk, descending).limit(1 + tries);
        let forward = first_record(w, target, &forward).await?;
        let backward = first_record(w, target, &reversed.relimit(1 + tries)).await?;
        let (Some(f), Some(b)) = (forward, backward) else {
            break;
        };
        if f == b {
            break;
        }
        holds = if descending { b.1 <= f.1 } else { b.1 >= f.1 };
        other_end = Some(b.1);
    }
    let fact = if holds { Fact::Holds } else { Fact::Ignored };
    w.client()
        .learned()
        .note(def.name, Assumption::SortByUpdatedAt, fact);
    if holds {
        Ok(other_end)
    } else {
        Err(FetchError::Replan)
    }
}

/// The newest record in the range `q` asks for (its filters, sorted the
/// other way, one record): where a walk's records end, so that its slices
/// are cut among them, not across years with none (`Tracker::split`).
pub(crate) async fn newest(
    w: &mut Walker,
    target: &Target,
    q: &Query,
) -> Result<Option<(String, i64)>, FetchError> {
    let rk = w.replication_key();
    let top = q
        .without(|k, _| matches!(k, "sort" | "limit" | "skip"))
        .sort(rk, true)
        .limit(1);
    first_record(w, target, &top).await
}

/// After a filtered request came back empty: are the range filters
/// understood at all? A server that takes `updatedAt%3E=` for an unknown
/// field matches nothing, which looks like an empty range. One unfiltered
/// record, then a filter on exactly its `updatedAt`, which must find it.
/// A miss counts only if that record is still there, stamped the same: one
/// updated or deleted between the two requests proves nothing, and the
/// probe starts over (up to `PROBE_TRIES` times; then nothing is learned,
/// the empty answer stands, and the next empty answer probes again).
/// Returns whether the filters were found misread (the walk must change).
pub(crate) async fn filters_misread(w: &mut Walker, target: &Target) -> Result<bool, FetchError> {
    let def = w.def();
    let _turn = w.client().learned().probe_turn(def.name).await;
    match w.client().learned().endpoint(def.name).filters {
        Fact::Holds => return Ok(false),
        // Found out meanwhile by another walk of the endpoint (another
        // parent, another slice): this empty answer means nothing either.
        f if f.fails() => return Ok(true),
        _ => {}
    }
    let rk = w.replication_key();
    let unfiltered = Query::new(target.partition).limit(1);
    let mut anchor = first_record(w, target, &unfiltered).await?;
    for tries in 1..=PROBE_TRIES {
        let Some((_, at)) = anchor else {
            // Nothing there: nothing to learn, and nothing lost either.
            return Ok(false);
        };
        let exact = Query::new(target.partition)
            .at(rk, Op::Ge, at)
            .at(rk, Op::Lt, at + 1)
            .limit(1);
        let hit = w.fetch(def, target, &exact, |_| false).await?;
        let found = hit.len > 0;
        w.discard(hit);
        // Asked afresh (a page of another size): a list cache would answer
        // the same request with the anchor it gave before.
        let again = if found {
            None
        } else {
            first_record(w, target, &unfiltered.relimit(1 + tries)).await?
        };
        if found || again == anchor {
            let fact = if found { Fact::Holds } else { Fact::Misread };
            w.client()
                .learned()
                .note(def.name, Assumption::RangeFilters, fact);
            return Ok(!found);
        }
        anchor = again;
    }
    Ok(false)
}

/// Tries of a probe while the records it probes with keep changing.
const PROBE_TRIES: usize = 3;

/// The id and `updatedAt` of the first record `q` (one record) answers.
async fn first_record(
    w: &mut Walker,
    target: &Target,
    q: &Query,
) -> Result<Option<(String, i64)>, FetchError> {
    let def = w.def();
    let any = w.fetch(def, target, q, |_| false).await?;
    let first = any
        .metas
        .first()
        .and_then(|m| Some((m.id.clone(), m.updated_ms?)));
    w.discard(any);
    Ok(first)
}

/// A request was refused (400/422): finds which parameter, by asking
/// without each suspect in turn, and notes it, so the walk asks without it
/// from now on. `limit` first (a cap below the documented one), then
/// `sort`, then each range filter. Nothing explains it: a fatal error
/// that quotes the server.
pub(crate) async fn refused(
    w: &mut Walker,
    def: &'static StreamDef,
    target: &Target,
    q: &Query,
    why: String,
) -> Result<(), FetchError> {
    let learned_name = def.name;
    // A search index pages only so deep (`Assumption::DeepSkip`): the same
    // request from the top is answered. Only walks without a keyset page by
    // offset (small lists, a server that ignores the range filters, a tie
    // group no filter splits): what lies deeper cannot be reached.
    if let Some(skip) = q.skip_value().filter(|&s| s > 0) {
        if accepted(w, def, target, &q.without(|k, _| k == "skip")).await? {
            w.client()
                .learned()
                .note(learned_name, Assumption::DeepSkip, Fact::Refused);
            return Err(FetchError::Fatal(Error::Api(format!(
                "GET {} refuses to page past {skip} records ({why}); the tap reads this list by offset here (it has no replication key, or this server does not honour its range filters), so stream {} stops at that depth: the records past it are not read",
                target.path, def.name
            ))));
        }
    }
    if let Some(limit) = q.limit_value() {
        for smaller in SMALLER_LIMITS.into_iter().filter(|&s| s < limit) {
            if accepted(w, def, target, &q.relimit(smaller)).await? {
                tracing::warn!(
                    stream = def.name,
                    "the API refused limit={limit} on {}: asking for {smaller} records a page from now on",
                    target.path
                );
                w.client().learned().update(learned_name, |e| {
                    e.limit_max = Some(smaller as u32);
                });
                return Ok(());
            }
        }
    }
    if q.has("sort") && accepted(w, def, target, &q.without(|k, _| k == "sort")).await? {
        w.client()
            .learned()
            .note(learned_name, Assumption::SortByUpdatedAt, Fact::Refused);
        return Ok(());
    }
    let rk = def.replication_key.unwrap_or("updatedAt");
    for (field, assumption) in [
        ("_id", Assumption::IdFilters),
        ("createdAt", Assumption::CreatedAtFilters),
        (rk, Assumption::RangeFilters),
    ] {
        let has = |k: &str, op: Op| k == field && op != Op::Eq;
        if q.without(|k, op| !has(k, op)).has(field)
            && accepted(w, def, target, &q.without(has)).await?
        {
            w.client()
                .learned()
                .note(learned_name, assumption, Fact::Refused);
            return Ok(());
        }
    }
    Err(FetchError::Fatal(Error::Api(format!(
        "{why}; the request is refused with or without each parameter the tap can do without: check \"api_url\""
    ))))
}

/// Whether the server answers `q` (a 400 is an answer too: refused).
async fn accepted(
    w: &mut Walker,
    def: &'static StreamDef,
    target: &Target,
    q: &Query,
) -> Result<bool, FetchError> {
    match w.fetch_once(def, target, q, &|_| false).await {
        Ok(page) => {
            w.discard(page);
            Ok(true)
        }
        Err(FetchError::BadRequest(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
