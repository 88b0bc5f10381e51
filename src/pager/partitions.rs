//! Streams read by replication key, with the partitions an endpoint's
//! hidden records call for.
//!
//! What a plain `GET /tickets` leaves out is undocumented. Four meanings are
//! plausible: `archived`/`isSpam` ignored (everything listed); exact filters
//! with nothing hidden; archived and spam hidden unless asked; hidden, with
//! `archived=true` counting only beside `ignoreArchived=true` (what Gleap's
//! web app sends). Reading every combination explicitly, as this tap once
//! did, loses archived tickets under the last meaning and reads everything
//! four times under the first. So the records the plain listing returns
//! tell what it hides (`Assumption::HiddenRecords`):
//! - a kind (`StreamDef::hidden`) shown by the plain listing's first page is
//!   not hidden, and is not read again;
//! - a kind not shown there is read on its own, with the query the web app
//!   uses, at once, beside the plain listing (the budget is the clock: one
//!   after the other would wait for nothing);
//! - a kind's own walk writes only records that do not say they are of
//!   another kind (`archived: false` in the archived walk): a server that
//!   ignores the kind's query lists every ticket there, and the plain
//!   listing has those under every meaning (`Walker::fetch_once`);
//! - should the plain listing show that kind later after all (a kind rare
//!   enough to miss a first page), its walk is stopped: the records of
//!   that kind it wrote by then are written twice, a handful at most.
//!
//! Each kind has its own bookmark. A kind the plain listing covered takes
//! the plain listing's bookmark, so that a later run that has to read it
//! starts from there, not from the beginning.
//!
//! A per-parent child stream (`ParentIds::ChangedSince`: a ticket's
//! activity logs) walks its parent the same way, for the ids of the
//! parents updated since its own bookmark: every partition from that one
//! bookmark, none moved (`bookmarks` false).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::walk::{self, Observer, WalkEnd};
use super::{Target, Walker};
use crate::client::FetchError;
use crate::state::{Context, Progress};

/// What a walk's task returns: which walk (`None`: the plain listing).
type Finished = (Option<usize>, Result<WalkEnd, FetchError>);

/// What the partitions' walks read, together.
pub(crate) struct Walked {
    /// The partitions that hold records the plain listing does not (the
    /// plain listing first).
    pub hiding: Vec<Context>,
    /// The newest `updatedAt` read by any walk.
    pub max_seen: Option<i64>,
    /// A tie group some walk could not read whole: no bookmark may pass it.
    pub held: Option<i64>,
}

/// Walks the stream, each partition from `from_of(partition)` (up to the
/// signpost when `incremental`, else to the end), moving the partitions'
/// bookmarks when `bookmarks` (a reconciliation's whole pass moves them
/// too: everything below them is written), and reading only what
/// `progress_of` (the state's `progress`) says a killed run left.
pub(crate) async fn run(
    w: &mut Walker,
    from_of: &(dyn Fn(Context) -> Option<i64> + Sync),
    progress_of: &(dyn Fn(Context) -> Option<Progress> + Sync),
    incremental: bool,
    bookmarks: bool,
) -> Result<Walked, FetchError> {
    let def = w.def();
    let to = incremental.then_some(walk::AT_SIGNPOST);
    let spawn = |tasks: &mut JoinSet<Finished>,
                 which: Option<usize>,
                 partition: Context,
                 observer: Option<Arc<Observer>>,
                 mut walker: Walker| {
        let target = Target {
            path: def.path.to_string(),
            partition,
            parent_id: None,
        };
        let from = from_of(partition);
        let resume = if incremental && bookmarks {
            progress_of(partition)
        } else {
            None
        };
        tasks.spawn(async move {
            let bookmark = bookmarks.then_some(partition);
            let end =
                walk::run_observed(&mut walker, &target, from, to, bookmark, observer, resume)
                    .await;
            (which, end)
        })
    };
    let plain: Context = &[];
    let observer = Arc::new(Observer::default());
    let mut tasks = JoinSet::new();
    spawn(&mut tasks, None, plain, Some(observer.clone()), w.fork());
    if def.hidden.is_empty() {
        return match tasks.join_next().await {
            Some(Ok((_, end))) => end.map(|end| Walked {
                hiding: vec![plain],
                max_seen: end.max_seen,
                held: end.held,
            }),
            _ => Err(task_failed()),
        };
    }
    // Wait for the plain listing's first page (or its end).
    let mut plain_end: Option<WalkEnd> = None;
    while observer.pages.load(Ordering::Relaxed) == 0 && plain_end.is_none() {
        tokio::select! {
            _ = observer.changed.notified() => {}
            joined = tasks.join_next() => plain_end = Some(finished(joined, &mut tasks)?.1),
        }
    }
    let mut handles: Vec<Option<tokio::task::AbortHandle>> = vec![None; def.hidden.len()];
    let shown = observer.flags.load(Ordering::Relaxed);
    for (i, hidden) in def.hidden.iter().enumerate() {
        if shown & (1 << i) == 0 {
            w.client()
                .learned()
                .update(def.name, |e| e.read_flags |= 1 << i);
            handles[i] = Some(spawn(&mut tasks, Some(i), hidden.query, None, w.fork()));
        }
    }
    let mut ends: Vec<Option<WalkEnd>> = vec![None; def.hidden.len()];
    loop {
        // Kinds the plain listing has shown by now: their walks are not needed.
        let shown = observer.flags.load(Ordering::Relaxed);
        for (i, h) in handles.iter_mut().enumerate() {
            if shown & (1 << i) != 0 {
                if let Some(h) = h.take() {
                    tracing::info!(
                        stream = def.name,
                        "the plain listing shows records with {} true after all: their own walk stops",
                        def.hidden[i].flag
                    );
                    h.abort();
                }
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            _ = observer.changed.notified() => {}
            joined = tasks.join_next() => {
                let Some((which, end)) = finished_or_aborted(joined)? else { continue };
                match which {
                    None => plain_end = Some(end?),
                    Some(i) => {
                        ends[i] = Some(end?);
                        handles[i] = None;
                    }
                }
            }
        }
    }
    let shown_end = plain_end.ok_or_else(task_failed)?;
    let mut hiding = vec![plain];
    let (mut max_seen, mut held) = (shown_end.max_seen, shown_end.held);
    for end in ends.iter().flatten() {
        max_seen = max_seen.max(end.max_seen);
        held = match (held, end.held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for (i, hidden) in def.hidden.iter().enumerate() {
        let bit = 1u8 << i;
        if shown_end.flags & bit == 0 {
            hiding.push(hidden.query);
            if w.client().learned().endpoint(def.name).unfiltered_flags & bit != 0 {
                tracing::warn!(
                    stream = def.name,
                    "the API answered {:?} with records whose {} is false: it does not honour that query; only those with {} true were written from it (the others are the plain listing's)",
                    hidden.query,
                    hidden.flag,
                    hidden.flag
                );
            }
            continue;
        }
        w.client()
            .learned()
            .update(def.name, |e| e.shown_flags |= bit);
        tracing::info!(
            stream = def.name,
            "the plain listing includes records with {} true: they are not read on their own",
            hidden.flag
        );
        if let (true, Some(at)) = (bookmarks, shown_end.bookmark) {
            if Some(at) > from_of(hidden.query) {
                let bookmark = w.bookmark(hidden.query, at, None, None);
                w.send(Vec::new(), 0, Some(bookmark)).await?;
            }
        }
    }
    Ok(Walked {
        hiding,
        max_seen,
        held,
    })
}

fn task_failed() -> FetchError {
    FetchError::Fatal(crate::error::Error::Internal(
        "a partition's walk ended without a result".into(),
    ))
}

/// A joined task's result; `None` when it was stopped on purpose.
fn finished_or_aborted(
    joined: Option<Result<Finished, tokio::task::JoinError>>,
) -> Result<Option<Finished>, FetchError> {
    match joined {
        None => Ok(None),
        Some(Ok(f)) => Ok(Some(f)),
        Some(Err(e)) if e.is_cancelled() => Ok(None),
        Some(Err(e)) => Err(FetchError::Fatal(crate::error::Error::Internal(format!(
            "a walking task failed: {e}"
        )))),
    }
}

/// The plain listing's walk, joined before the others started.
fn finished(
    joined: Option<Result<Finished, tokio::task::JoinError>>,
    tasks: &mut JoinSet<Finished>,
) -> Result<(Option<usize>, WalkEnd), FetchError> {
    match finished_or_aborted(joined)? {
        Some((which, end)) => Ok((which, end?)),
        None => {
            tasks.abort_all();
            Err(task_failed())
        }
    }
}
