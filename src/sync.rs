//! A sync: every selected stream runs concurrently under the one rate
//! budget, feeding the single stdout writer; SIGINT/SIGTERM and a closed
//! stdout stop the fetching, and whatever was read is written with a final
//! STATE that covers it.

use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::catalog::Selected;
use crate::client::{Cancel, Client, FetchError};
use crate::config::Config;
use crate::conform::Conformer;
use crate::error::{exit, Error};
use crate::metrics::StreamStats;
use crate::output::{self, Finish};
use crate::pager::{Budget, Signpost, StreamRun};
use crate::pool::Pool;
use crate::state::State;
use crate::streams::{Method, StreamDef};

/// Pages queued between the stream tasks and the writer. The writer is
/// faster than conforming, so a page waiting beside the one being written
/// is all it needs; each page held costs its size in memory (~2 MB of
/// tickets). Measured at 1M tickets: four pages, 34 MB peak RSS; two, 30-32
/// MB; one, 28-29 MB, with the same wall time.
const CHANNEL_PAGES: usize = 1;

pub async fn sync(
    config: Config,
    selected: Vec<Selected>,
    state: State,
    stdout: Box<dyn Write + Send>,
    mapper: Option<crate::maps::Mapper>,
) -> Result<(), Error> {
    // A batch folder that cannot be written is a config error now, before
    // any request.
    let files = match &config.batch {
        Some(b) => Some(output::batch_files::BatchFiles::start(b)?),
        None => None,
    };
    let signpost = Utc::now();
    let (cancel_tx, cancel) = Cancel::new();
    let cancel_tx = Arc::new(cancel_tx);
    let client = Client::new(&config, cancel.clone())?;
    let stats: Vec<Arc<StreamStats>> = selected
        .iter()
        .map(|s| Arc::new(StreamStats::new(s.def.name)))
        .collect();
    let (tx, rx) = mpsc::channel(CHANNEL_PAGES);
    // The writer gives back each batch's buffer for the next page's lines.
    // One spare is enough to stop the allocations; each spare kept costs a
    // page of memory.
    let line_buffers = Arc::new(Pool::new(1));
    let writer = output::Writer {
        state: state.clone(),
        stdout,
        cancel: cancel_tx.clone(),
        stats: stats.clone(),
        line_buffers: line_buffers.clone(),
        mapper,
        schemas: selected
            .iter()
            .map(|s| {
                let incremental = s.method == Method::Incremental;
                (
                    s.def.name,
                    output::schema_line(s.def, &s.schema, incremental),
                )
            })
            .collect(),
        files,
    };
    let writer = tokio::task::spawn_blocking(move || writer.run(rx));
    let signal = Arc::new(AtomicI32::new(0));
    let signal_task = tokio::spawn(watch_signals(cancel_tx.clone(), signal.clone()));

    let state = Arc::new(state);
    let start_ms = config.start_date.map(|t| t.timestamp_millis());
    let mut tasks = JoinSet::new();
    let budget = Budget::new();
    // The API's clock, asked while the streams start (see `Signpost`).
    let signpost_ms = Signpost::new(signpost.timestamp_millis());
    let clock = {
        let (client, signpost_ms) = (client.clone(), signpost_ms.clone());
        let probe: Vec<(&'static crate::streams::StreamDef, Method, Arc<StreamStats>)> = selected
            .iter()
            .zip(&stats)
            .map(|(s, st)| (s.def, s.method, st.clone()))
            .collect();
        tokio::spawn(async move {
            let at = api_clock(&client, &probe).await;
            signpost_ms.set(at.unwrap_or(signpost_ms.now_or_local()));
        })
    };
    for (sel, stats) in selected.into_iter().zip(stats) {
        let run = StreamRun {
            def: sel.def,
            client: client.clone(),
            tx: tx.clone(),
            line_buffers: line_buffers.clone(),
            stats,
            conformer: Conformer::evolving(
                &sel,
                config.schema_evolution,
                sel.method == Method::Incremental,
            ),
            page_size: config.page_size,
            signpost: signpost_ms.clone(),
            version: crate::reconcile::version(&config, sel.def, sel.method, &state, signpost),
            cancel: cancel.clone(),
            budget: budget.clone(),
            lookback_window_s: config.lookback_window.as_secs() as u32,
        };
        let state = state.clone();
        tasks.spawn(async move {
            let def = sel.def;
            (def, run.run(&sel, &state, start_ms).await)
        });
    }
    drop(tx);

    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let (def, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A stream's task panicked: that stream failed, the others go on.
                outcome
                    .failed
                    .push(("?", Error::Internal(format!("a stream task failed: {e}"))));
                continue;
            }
        };
        match outcome.judge(def, result, &client) {
            Verdict::Ok => {}
            Verdict::StopAll => {
                // What the other streams read so far is still written, with
                // a STATE covering it.
                let _ = cancel_tx.send(true);
            }
        }
    }
    clock.abort();
    if client.has_served() {
        tracing::info!(
            "at most {} requests were in flight at once; a page took {:.0} ms on average",
            client.most_in_flight(),
            client.latency().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        );
    }
    drop(client);
    let finish = writer
        .await
        .map_err(|e| Error::Internal(format!("the writer failed: {e}")))??;
    signal_task.abort();
    if let Some(e) = outcome.result(&config.api_url) {
        return Err(e);
    }
    if let Finish::BrokenPipe = finish {
        tracing::info!("stdout was closed by the reader (the target exited): stopping");
        return Ok(());
    }
    match signal.load(Ordering::Relaxed) {
        0 => Ok(()),
        code => Err(Error::Interrupted(code)),
    }
}

/// How long the API's clock waits for the streams' first answer before it
/// asks with a request of its own.
const CLOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The API's clock at the start of the sync, from the `Date` header of the
/// first answer: the signpost that bounds incremental walks. `updatedAt`
/// is stamped by the API's clock, and this machine's may run ahead of it (a
/// walk would then chase records updated while it runs, for as long as the
/// gap) or behind it (records updated just before the sync would wait for
/// the next one). `Date` is whole seconds, floored: the API's "now" at the
/// start is at most a second past it. `None` without a `Date` header
/// (`Assumption::DateHeader`) or without an incremental stream.
async fn api_clock(
    client: &Client,
    streams: &[(&'static crate::streams::StreamDef, Method, Arc<StreamStats>)],
) -> Option<i64> {
    let (def, _, stats) = streams.iter().find(|(_, m, _)| *m == Method::Incremental)?;
    let def = match def.parent {
        Some(p) => crate::streams::find(p.stream).expect("registry parents exist"),
        None => def,
    };
    // The streams' first requests (the newest-record probe, a first page)
    // need no upper bound: they are on their way at once, and the first
    // answer tells the clock without a request of its own. An API slower
    // than `CLOCK_WAIT`, or a first request that gets no answer, gets one
    // small request (never retried: failures are the streams' own to
    // report), as walks waiting for the signpost must not wait for ever.
    tokio::select! {
        () = client.first_answer() => {}
        () = tokio::time::sleep(CLOCK_WAIT) => {
            client.server_date_now(stats, def.path).await;
        }
    }
    let date = client.server_first_date_ms()?;
    let local = Utc::now().timestamp_millis();
    let skew_s = (date - local) / 1000;
    if skew_s.abs() > 2 {
        tracing::warn!(
            "the API's clock is about {} s {} this machine's: incremental streams are read up to the API's \"now\"",
            skew_s.abs(),
            if skew_s > 0 { "ahead of" } else { "behind" }
        );
    }
    Some(date + 999)
}

/// How the streams ended.
#[derive(Default)]
struct Outcome {
    /// An error that stopped every stream (refused credentials, a wrong
    /// `api_url`): the run's error.
    stop: Option<Error>,
    /// Streams that failed on their own (past their retries, an unusable
    /// answer): the others went on.
    failed: Vec<(&'static str, Error)>,
    /// Streams that completed.
    completed: usize,
    /// Optional streams that answered 403 or 404 (stream, endpoint,
    /// status): a feature the project's plan lacks, unless the run stops
    /// for a cause that explains them too (a wrong `api_url`, refused
    /// credentials). Reported when the run ends, from all the streams.
    skipped: Vec<(&'static str, String, u16)>,
    /// Streams every plan has that answered 404.
    core_not_found: Vec<String>,
}

enum Verdict {
    Ok,
    /// Stop every stream.
    StopAll,
}

impl Outcome {
    /// `client`: what the API has answered so far decides whether one
    /// stream's failure is everyone's.
    fn judge(
        &mut self,
        def: &'static StreamDef,
        result: Result<(), FetchError>,
        client: &Client,
    ) -> Verdict {
        let name = def.name;
        // A warning while other streams are being served; at debug level
        // while the API serves none (an outage: every stream meets it, and
        // the run's one ERROR line, when it ends, names them all).
        let failed = |e: Error| {
            if client.has_served() {
                tracing::warn!(
                    stream = name,
                    "stream {name} failed: {e}; the other streams go on"
                );
            } else {
                tracing::debug!(stream = name, "stream {name} failed: {e}");
            }
            e
        };
        let error = match result {
            Ok(()) => {
                self.completed += 1;
                return Verdict::Ok;
            }
            Err(FetchError::Cancelled) => return Verdict::Ok,
            Err(FetchError::NotFound) if def.optional => {
                self.skip(def, 404);
                return Verdict::Ok;
            }
            Err(FetchError::Forbidden(_)) if def.optional => {
                self.skip(def, 403);
                return Verdict::Ok;
            }
            // On a stream every plan has, a 404 is a wrong `api_url` and a
            // 403 refused credentials: nothing else can work either.
            Err(FetchError::NotFound) => {
                self.core_not_found.push(def.endpoint());
                return self.stop_all(Error::Api(format!(
                    "stream {name}: the endpoint answered 404: check \"api_url\""
                )));
            }
            Err(FetchError::Forbidden(why)) => return self.stop_all(Error::Auth(why)),
            Err(FetchError::Fatal(e @ Error::Auth(_))) => return self.stop_all(e),
            // Nothing has ever answered at `api_url`: every stream meets the
            // same silence, and this one line says it.
            Err(FetchError::Fatal(e @ Error::Api(_))) if !client.has_answered() => {
                return self.stop_all(e)
            }
            Err(FetchError::Fatal(e)) => failed(e),
            Err(FetchError::BadRequest(why)) => failed(Error::Api(why)),
            Err(FetchError::Replan) => failed(Error::Internal(format!(
                "stream {name}: a walk's replan escaped the pager"
            ))),
        };
        self.failed.push((name, error));
        Verdict::Ok
    }

    /// An optional stream the project's plan lacks: the run goes on (and
    /// may exit 0), with one warning for it when it ends.
    fn skip(&mut self, def: &'static StreamDef, status: u16) {
        self.skipped.push((def.name, def.endpoint(), status));
    }

    /// The skipped streams' warnings, when nothing stopped the run: a wrong
    /// `api_url` or refused credentials also make optional endpoints answer
    /// 404 or 403, and blaming the plan would send the reader the wrong way.
    fn warn_skipped(&self) {
        for (name, endpoint, status) in &self.skipped {
            tracing::warn!(
                stream = name,
                "stream {name} skipped: the API answered {status} for it (GET {endpoint}): the project's plan does not include this feature, or the key may not read it; the other streams go on"
            );
        }
    }

    /// Keeps the most telling error: an authentication failure explains the rest.
    fn stop_all(&mut self, e: Error) -> Verdict {
        match &self.stop {
            None => self.stop = Some(e),
            Some(Error::Auth(_)) => {}
            Some(_) if matches!(e, Error::Auth(_)) => self.stop = Some(e),
            Some(_) => {}
        }
        Verdict::StopAll
    }

    /// A stream every plan has answered 404: the cause, decided from every
    /// stream (optional ones that answered 404 too are not in the plan's
    /// absence, but at a wrong `api_url`), in one line. Credentials refused
    /// elsewhere explain more, and stay the error.
    fn explain_not_found(&self, e: Error, api_url: &str) -> Error {
        let Some(first) = self.core_not_found.first() else {
            return e;
        };
        if !matches!(e, Error::Api(_)) {
            return e;
        }
        let others = self.core_not_found.len() - 1
            + self.skipped.iter().filter(|(_, _, s)| *s == 404).count();
        crate::client::not_found_at_api_url(first, others, api_url)
    }

    /// The run's error, if any: what stopped everything; else, when streams
    /// failed, the failure itself if none completed, or a partial run
    /// naming them.
    fn result(mut self, api_url: &str) -> Option<Error> {
        if let Some(e) = self.stop.take() {
            return Some(self.explain_not_found(e, api_url));
        }
        self.warn_skipped();
        if self.failed.is_empty() {
            return None;
        }
        if self.completed == 0 {
            let (_, first) = self.failed.remove(0);
            if self.failed.is_empty() {
                return Some(first);
            }
            let others: Vec<&str> = self.failed.iter().map(|(name, _)| *name).collect();
            return Some(first.map_message(|m| {
                format!(
                    "{m}; {} other stream(s) failed too, none completed: {}",
                    others.len(),
                    others.join(", ")
                )
            }));
        }
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(name, e)| format!("{name} ({e})"))
            .collect();
        let skipped = match self.skipped.len() {
            0 => String::new(),
            n => format!(", {n} skipped (not in the project's plan)"),
        };
        Some(Error::Partial(format!(
            "{} stream(s) failed: {}; {} completed{skipped}. The last STATE covers every record written: the next run resumes from it",
            failed.len(),
            failed.join("; "),
            self.completed
        )))
    }
}

#[cfg(unix)]
async fn watch_signals(cancel: Arc<watch::Sender<bool>>, code: Arc<AtomicI32>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let got = tokio::select! {
        _ = int.recv() => exit::SIGINT,
        _ = term.recv() => exit::SIGTERM,
    };
    tracing::warn!(
        "received {}: stopping after writing what was read",
        if got == exit::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    );
    code.store(got, Ordering::Relaxed);
    let _ = cancel.send(true);
}

#[cfg(not(unix))]
async fn watch_signals(cancel: Arc<watch::Sender<bool>>, code: Arc<AtomicI32>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        code.store(exit::SIGINT, Ordering::Relaxed);
        let _ = cancel.send(true);
    }
}
