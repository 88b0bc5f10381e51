//! A child stream: listed once per record of its parent stream (survey
//! responses, one listing per survey), several parents at once under the
//! one budget.
//!
//! The stream keeps one bookmark, however many parents (the state stays
//! small), moved only once every parent has been read. It may not pass the
//! moment the first child walk began on the API's clock: a response written
//! to survey 1 after survey 1 was read, while survey 5 is read, carries a
//! stamp from then, and survey 5's newest record may be newer still. That
//! moment is the API's `Date` when it sends one; without it, the newest
//! `updatedAt` read anywhere before the walks began, which the API's clock
//! had passed (`Assumption::DateHeader`).

use tokio::task::JoinSet;

use super::walk::{self, WalkEnd};
use super::{offset, Target, Walker};
use crate::client::FetchError;
use crate::output::Bookmark;
use crate::streams;

pub(crate) async fn run(
    w: &mut Walker,
    from: Option<i64>,
    incremental: bool,
) -> Result<(), FetchError> {
    let def = w.def();
    let parent =
        streams::find(def.parent.expect("a child stream").stream).expect("registry parents exist");
    let listing = Target {
        path: parent.path.to_string(),
        partition: &[],
        parent_id: None,
    };
    let mut parent_ids = offset::offset_walk(w, parent, &listing, false).await?;
    parent_ids.sort();
    let signpost = w.sh.signpost.get().await;
    let cap = match w.client().server_date_ms() {
        Some(date) => date.min(signpost),
        None => w
            .client()
            .learned()
            .newest_seen()
            .unwrap_or(i64::MIN)
            .min(signpost),
    };
    tracing::info!(
        stream = def.name,
        "reading the {} of {} {}",
        def.name,
        parent_ids.len(),
        parent.name
    );
    let to = incremental.then_some(signpost + 1);
    let mut queue = parent_ids.into_iter();
    let mut tasks: JoinSet<Result<WalkEnd, FetchError>> = JoinSet::new();
    let mut read = WalkEnd::default();
    loop {
        // Start walks while the budget has room; always keep one going.
        while let Some(id) = queue.as_slice().first().cloned() {
            let seat = if tasks.is_empty() {
                w.sh.budget.join()
            } else {
                match w.sh.budget.try_join(w.client()) {
                    Some(seat) => seat,
                    None => break,
                }
            };
            queue.next();
            let mut child = w.fork();
            let target = Target {
                path: def.path.replace("{parent_id}", &id),
                partition: &[],
                parent_id: Some(id.clone()),
            };
            tasks.spawn(async move {
                let r = match walk::run(&mut child, &target, from, to, None).await {
                    Err(FetchError::NotFound) => {
                        tracing::info!(
                            stream = child.def().name,
                            "{} {id} no longer exists (404): skipped",
                            parent.name
                        );
                        Ok(WalkEnd::default())
                    }
                    other => other,
                };
                drop(seat);
                r
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let end = match joined {
            Ok(Ok(end)) => end,
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(FetchError::Fatal(crate::error::Error::Internal(format!(
                    "a walking task failed: {e}"
                ))));
            }
        };
        read.max_seen = read.max_seen.max(end.max_seen);
        read.held = match (read.held, end.held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if let (true, Some(max)) = (incremental, read.max_seen) {
        let mut at = max.min(cap);
        if let Some(held) = read.held {
            at = at.min(held);
        }
        if from.is_none_or(|f| at > f) {
            let bookmark = Bookmark {
                def,
                context: &[],
                value: w.bookmark_value(at),
                progress: None,
            };
            w.send(Vec::new(), 0, Some(bookmark)).await?;
        }
    }
    Ok(())
}
