//! A child stream: listed once per record of its parent stream, several
//! parents at once under the one budget.
//!
//! Which parents (`ParentIds`):
//! - `All` (survey responses, help center articles): every record of the
//!   parent, a small list read whole by offset, every run; each parent's
//!   list is read from the child's bookmark by the child's `updatedAt`
//!   ([`walk`]).
//! - `ChangedSince` (ticket activity logs, contacts' activities and
//!   events): only the parent's records updated since the child's
//!   bookmark. The parent's endpoint is walked from that bookmark as the
//!   parent stream itself is walked ([`partitions`]: keyset on `updatedAt`,
//!   tickets' hidden kinds too), for the ids alone (nothing is written for
//!   the parent), and each id's whole list is read as soon as it arrives
//!   ([`offset::listing`]): one request per changed parent, however old
//!   its records. A child record older than the bookmark may so be written
//!   again (its parent changed); none is missed, since a change to a child
//!   record is a change to its parent (an activity log entry is an update
//!   of its ticket).
//!
//! The stream keeps one bookmark, however many parents (the state stays
//! small), moved only once every parent has been read. It may not pass the
//! moment the first child walk began on the API's clock: a response written
//! to survey 1 after survey 1 was read, while survey 5 is read, carries a
//! stamp from then, and survey 5's newest record may be newer still. That
//! moment is the API's `Date` when it sends one; without it, the newest
//! `updatedAt` read anywhere before the walks began, which the API's clock
//! had passed (`Assumption::DateHeader`). For `ChangedSince` the bookmark is
//! on the parents' `updatedAt`: the newest the parent walk read (never past
//! a tie group it could not read whole), under the same cap.
//!
//! A parent whose list answers 404 was deleted since it was listed: it is
//! skipped. When the first parents' lists all answer 404 (and none
//! answered), or one answers 403, the endpoint itself is missing (a
//! feature the project's plan lacks): the stream ends with that error.

use std::collections::{HashSet, VecDeque};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::walk::{self, WalkEnd};
use super::{offset, partitions, Target, Walker};
use crate::client::FetchError;
use crate::output::Batch;
use crate::state::Context;
use crate::streams::{self, ParentIds};

/// Parent ids received and not yet walked, past which the parent walk
/// waits (it holds a page of ids; this bounds the memory).
const MAX_PENDING: usize = 10_000;
/// 404s on the first parents' lists, none answering, that mean the
/// endpoint is missing rather than those parents deleted.
const MISSING_AFTER: usize = 3;

pub(crate) async fn run(
    w: &mut Walker,
    from: Option<i64>,
    incremental: bool,
) -> Result<(), FetchError> {
    let def = w.def();
    let link = def.parent.expect("a child stream");
    let parent = streams::find(link.stream).expect("registry parents exist");
    let mut pending: VecDeque<String> = VecDeque::new();
    // The parent walk of `ChangedSince`, sending pages of ids.
    let (mut ids_rx, mut parent_walk) = match link.ids {
        ParentIds::All => {
            let listing = Target {
                path: parent.path.to_string(),
                partition: &[],
                parent_id: None,
            };
            let mut ids = offset::offset_walk(w, parent, &listing, false).await?;
            ids.sort();
            pending.extend(ids);
            (None, None)
        }
        ParentIds::ChangedSince => {
            let (tx, rx) = mpsc::channel::<Batch>(2);
            let mut walker = w.parent_ids(parent, tx);
            let task = tokio::spawn(async move {
                partitions::run(
                    &mut walker,
                    &|_: Context| from,
                    &|_| None,
                    incremental,
                    false,
                )
                .await
            });
            (Some(rx), Some(AbortOnDrop(task)))
        }
    };
    let mut seen: HashSet<String> = HashSet::new();
    let to = match link.ids {
        ParentIds::All => incremental.then_some(w.sh.signpost.get().await + 1),
        ParentIds::ChangedSince => None,
    };
    let mut cap: Option<i64> = None;
    let mut tasks: JoinSet<(String, Result<WalkEnd, FetchError>)> = JoinSet::new();
    let mut read = WalkEnd::default();
    let (mut parents, mut answered, mut not_found) = (0usize, false, 0usize);
    loop {
        // Start walks while the budget has room; always keep one going.
        while !pending.is_empty() {
            let seat = if tasks.is_empty() {
                w.sh.budget.join()
            } else {
                match w.sh.budget.try_join(w.client()) {
                    Some(seat) => seat,
                    None => break,
                }
            };
            let id = pending.pop_front().expect("not empty");
            if cap.is_none() {
                cap = Some(api_clock_cap(w).await);
            }
            parents += 1;
            let mut child = w.fork();
            let target = Target {
                path: def.path.replace("{parent_id}", &id),
                partition: &[],
                parent_id: Some(id.clone()),
            };
            let ids = link.ids;
            tasks.spawn(async move {
                let r = match ids {
                    ParentIds::All => walk::run(&mut child, &target, from, to, None).await,
                    ParentIds::ChangedSince => offset::listing(&mut child, &target)
                        .await
                        .map(|()| WalkEnd::default()),
                };
                drop(seat);
                (id, r)
            });
        }
        if tasks.is_empty() && pending.is_empty() && ids_rx.is_none() {
            break;
        }
        let room = pending.len() < MAX_PENDING;
        tokio::select! {
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let (id, result) = match joined.expect("tasks were not empty") {
                    Ok(r) => r,
                    Err(e) => {
                        tasks.abort_all();
                        return Err(FetchError::Fatal(crate::error::Error::Internal(format!(
                            "a walking task failed: {e}"
                        ))));
                    }
                };
                match result {
                    Ok(end) => {
                        answered = true;
                        read.max_seen = read.max_seen.max(end.max_seen);
                        read.held = match (read.held, end.held) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Err(FetchError::NotFound) if answered || not_found + 1 < MISSING_AFTER => {
                        not_found += 1;
                        tracing::info!(
                            stream = def.name,
                            "{} {id} no longer exists (404): skipped",
                            link.noun
                        );
                    }
                    Err(e) => {
                        // A 403, the first lists all 404 (the endpoint is
                        // missing), or a failure past the retries.
                        tasks.abort_all();
                        return Err(e);
                    }
                }
            }
            batch = recv(&mut ids_rx), if ids_rx.is_some() && room => match batch {
                Some(batch) => {
                    for id in batch.lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        let id = String::from_utf8_lossy(id).into_owned();
                        if seen.insert(id.clone()) {
                            pending.push_back(id);
                        }
                    }
                    w.sh.line_buffers.give(batch.lines);
                }
                None => ids_rx = None,
            },
        }
    }
    // What bounds the bookmark: the child records read (`All`), or the
    // parents whose lists were read (`ChangedSince`).
    if let Some(mut task) = parent_walk.take() {
        let walked = match (&mut task.0).await {
            Ok(walked) => walked?,
            Err(e) => {
                return Err(FetchError::Fatal(crate::error::Error::Internal(format!(
                    "the walk of {} failed: {e}",
                    parent.name
                ))))
            }
        };
        read = WalkEnd {
            max_seen: walked.max_seen,
            held: walked.held,
            ..WalkEnd::default()
        };
        tracing::info!(
            stream = def.name,
            "read the {} of {parents} {} updated since {}",
            def.name,
            parent.name,
            from.map_or("the beginning".into(), super::query::fmt_ms)
        );
    } else {
        tracing::info!(
            stream = def.name,
            "read the {} of {parents} {}",
            def.name,
            parent.name
        );
    }
    if let (true, Some(max)) = (incremental, read.max_seen) {
        let cap = match cap {
            Some(cap) => cap,
            None => api_clock_cap(w).await,
        };
        let mut at = max.min(cap);
        if let Some(held) = read.held {
            at = at.min(held);
        }
        if from.is_none_or(|f| at > f) {
            let bookmark = w.bookmark(&[], at, None, None);
            w.send(Vec::new(), 0, Some(bookmark)).await?;
        }
    }
    Ok(())
}

/// The API's clock as the child walks begin: no bookmark passes it (see
/// the top of this file).
async fn api_clock_cap(w: &Walker) -> i64 {
    let signpost = w.sh.signpost.get().await;
    match w.client().server_date_ms() {
        Some(date) => date.min(signpost),
        None => w
            .client()
            .learned()
            .newest_seen()
            .unwrap_or(i64::MIN)
            .min(signpost),
    }
}

/// The next page of parent ids, if the parent walk still runs.
async fn recv(rx: &mut Option<mpsc::Receiver<Batch>>) -> Option<Batch> {
    match rx {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

/// The parent walk's task, stopped if the child stream ends first (an
/// error, a cancellation).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
