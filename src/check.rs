//! `--test`: a connection check, as Meltano SDK taps offer. Each selected
//! stream fetches one page of one record and writes its SCHEMA and that
//! record; what failed is said in plain words, stream by stream.
//! `--test=schema` writes the SCHEMA messages only, without calling the API.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::catalog::Selected;
use crate::client::{host_of, Cancel, Client, FetchError};
use crate::config::Config;
use crate::conform::{self, Conformer};
use crate::error::Error;
use crate::metrics::StreamStats;
use crate::output;
use crate::scan;
use crate::streams::{self, Method, StreamDef};
use crate::timefmt;

pub fn schemas_only(selected: &[Selected], out: &mut dyn Write) -> Result<(), Error> {
    for sel in selected {
        write(
            out,
            &output::schema_line(sel.def, &sel.schema, sel.method == Method::Incremental),
        )?;
    }
    flush(out)
}

/// The whole check ends within this, whatever the API does: a connection
/// test that waits out the retry budget (ten minutes by default) tells
/// nobody anything in time.
const CHECK_DEADLINE: Duration = Duration::from_secs(15);

pub async fn connection(
    config: &Config,
    selected: Vec<Selected>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (_cancel_tx, cancel) = Cancel::new();
    let client = Client::new(config, cancel)?;
    // Every stream at once, so that the deadline covers them all.
    let selected: Arc<[Selected]> = selected.into();
    let mut tasks = JoinSet::new();
    for i in 0..selected.len() {
        let (client, selected) = (client.clone(), selected.clone());
        let mode = config.schema_evolution;
        tasks.spawn(async move { (i, one_record(&client, &selected[i], mode).await) });
    }
    let mut results: Vec<Option<Checked>> = std::iter::repeat_with(|| None)
        .take(selected.len())
        .collect();
    let deadline = tokio::time::Instant::now() + CHECK_DEADLINE;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        let (i, result) =
            joined.map_err(|e| Error::Internal(format!("a connection test task failed: {e}")))?;
        // Nothing has answered at `api_url`, or the credentials were
        // refused: the other streams would only meet the same.
        let gave_up = match &result.0 {
            Err(Error::Auth(_)) => true,
            Err(_) => !client.has_answered(),
            Ok(_) => false,
        };
        results[i] = Some(result);
        if gave_up {
            break;
        }
    }
    tasks.abort_all();
    if let Some(e) = one_cause(config, &client, &selected, &mut results) {
        // Nothing to show stream by stream: one line says it all, and
        // nothing goes to stdout.
        return Err(e);
    }
    let mut failures: Vec<(&str, Error)> = Vec::new();
    for (sel, result) in selected.iter().zip(results) {
        let result = result.map(|(r, _)| r);
        let result = result.unwrap_or_else(|| {
            Err(Error::Api(format!(
                "GET {}: no usable answer from {} (the host of \"api_url\") within {}s, as long as a connection test waits (the warnings above say what failed): check \"api_url\" and the API's status",
                sel.def.path,
                host_of(&config.api_url),
                CHECK_DEADLINE.as_secs()
            )))
        });
        match result {
            Ok(None) => {
                tracing::warn!(
                    stream = sel.def.name,
                    "connection test: not available (403/404): the project's plan does not include this feature; a sync skips it"
                );
            }
            Ok(Some(line)) => {
                let found = if line.is_empty() {
                    "reachable, no records"
                } else {
                    "ok, read 1 record"
                };
                tracing::info!(stream = sel.def.name, "connection test: {found}");
                // As a sync writes it: the SCHEMA of a stream the API served.
                let incremental = sel.method == Method::Incremental;
                write(out, &output::schema_line(sel.def, &sel.schema, incremental))?;
                write(out, &line)?;
            }
            Err(e) => {
                // A warning: the one ERROR line, at the end, names them all.
                tracing::warn!(stream = sel.def.name, "connection test failed: {e}");
                failures.push((sel.def.name, e));
            }
        }
    }
    flush(out)?;
    if failures.is_empty() {
        tracing::info!("connection test passed for {} streams", selected.len());
        return Ok(());
    }
    let names: Vec<&str> = failures.iter().map(|(n, _)| *n).collect();
    let names = names.join(", ");
    // The first failure's class decides the exit code.
    let (_, first) = failures.swap_remove(0);
    Err(first.map_message(|m| format!("connection test failed for {names}; the first: {m}")))
}

/// The one error that explains every stream's result, when there is one:
/// nothing answered at `api_url` at all (every stream failed the same way,
/// or hung), or an endpoint every plan has answered 404 (then optional
/// streams' 404s are the same wrong `api_url`, not the project's plan).
fn one_cause(
    config: &Config,
    client: &Client,
    selected: &[Selected],
    results: &mut [Option<Checked>],
) -> Option<Error> {
    // Refused credentials explain every stream's failure.
    if let Some(e) = results.iter_mut().find_map(|r| match r {
        Some((Err(Error::Auth(_)), _)) => r.take().and_then(|(r, _)| r.err()),
        _ => None,
    }) {
        return Some(e);
    }
    if !client.has_answered() {
        return Some(
            results
                .iter_mut()
                .find_map(|r| match r.take() {
                    Some((Err(e), _)) => Some(e),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    Error::Api(format!(
                        "nothing answered at {} (the host of \"api_url\") within {}s, as long as a connection test waits: check \"api_url\" and that this machine can reach it",
                        host_of(&config.api_url),
                        CHECK_DEADLINE.as_secs()
                    ))
                }),
        );
    }
    let not_found = |core: bool| {
        selected
            .iter()
            .zip(results.iter())
            .filter(move |(sel, r)| sel.def.optional != core && matches!(r, Some((_, true))))
            .map(|(sel, _)| sel.def)
    };
    let first = not_found(true).next()?;
    Some(crate::client::not_found_at_api_url(
        &first.endpoint(),
        not_found(true).count() - 1 + not_found(false).count(),
        &config.api_url,
    ))
}

/// The first record of a stream as a RECORD line (empty when there is
/// none); `None` for an optional stream the API answers 403 or 404 for (a
/// feature the project's plan lacks, which a sync skips).
async fn one_record(client: &Arc<Client>, sel: &Selected, mode: crate::evolve::Mode) -> Checked {
    let result = first_record(client, sel, mode).await;
    let not_found = matches!(result, Err(FetchError::NotFound));
    let result = match result {
        Ok(line) => Ok(Some(line)),
        Err(FetchError::NotFound | FetchError::Forbidden(_)) if sel.def.optional => Ok(None),
        Err(e) => Err(explain(sel.def, e)),
    };
    (result, not_found)
}

/// A stream's check: its RECORD line (empty when there is none), `None`
/// for an optional stream answering 403 or 404; and whether it was a 404.
type Checked = (Result<Option<Vec<u8>>, Error>, bool);

/// As a sync writes it: with `mode`, a field the schema lacks extends the
/// SCHEMA (written before the record), fails the stream, or is dropped.
async fn first_record(
    client: &Arc<Client>,
    sel: &Selected,
    mode: crate::evolve::Mode,
) -> Result<Vec<u8>, FetchError> {
    let def = sel.def;
    let stats = StreamStats::new(def.name);
    let (path, parent_id) = match def.parent {
        None => (def.path.to_string(), None),
        Some(parent) => {
            let parent_def = streams::find(parent.stream).expect("registry parents exist");
            match first_id(client, &stats, parent_def).await? {
                Some(id) => (def.path.replace("{parent_id}", &id), Some(id)),
                None => return Ok(Vec::new()),
            }
        }
    };
    let mut conformer = Conformer::evolving(sel, mode, sel.method == Method::Incremental);
    let page = client.get(&stats, &path, "limit=1", |body| {
        let tail = conform::record_tail(&timefmt::format_ms(chrono::Utc::now()), None);
        let mut line = Vec::new();
        let mut first = true;
        scan::each_record(body, def, |record| {
            if let Some(record) = record.filter(|_| std::mem::take(&mut first)) {
                if conformer.meta(record).is_some() {
                    conformer.write_record(record, parent_id.as_deref(), &tail, &mut line);
                }
            }
        })?;
        Ok(line)
    });
    let line = page.await?;
    if let Some(why) = conformer.violation() {
        return Err(FetchError::Fatal(Error::Api(why.to_string())));
    }
    // Unmarked, as the writer writes it.
    Ok(output::SchemaFilter::default().apply(&line).unwrap_or(line))
}

async fn first_id(
    client: &Arc<Client>,
    stats: &StreamStats,
    def: &'static StreamDef,
) -> Result<Option<String>, FetchError> {
    let mut conformer = Conformer::new(def, &[]);
    let id = client.get(stats, def.path, "limit=1", |body| {
        let mut id = None;
        let mut first = true;
        scan::each_record(body, def, |record| {
            if let Some(record) = record.filter(|_| std::mem::take(&mut first)) {
                id = conformer.meta(record).map(|m| m.id);
            }
        })?;
        Ok(id)
    });
    id.await
}

fn explain(def: &StreamDef, e: FetchError) -> Error {
    match e {
        FetchError::Fatal(e) => e,
        FetchError::NotFound => {
            Error::Api(format!("GET {} answered 404: check \"api_url\"", def.path))
        }
        FetchError::Forbidden(why) => Error::Auth(why),
        FetchError::Cancelled => Error::Interrupted(crate::error::exit::SIGINT),
        FetchError::BadRequest(why) => Error::Api(why),
        FetchError::Replan => Error::Internal("a replan outside a walk".into()),
    }
}

fn write(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    out.write_all(bytes)
        .map_err(|e| Error::Output(format!("cannot write to stdout: {e}")))
}

fn flush(out: &mut dyn Write) -> Result<(), Error> {
    out.flush()
        .map_err(|e| Error::Output(format!("cannot write to stdout: {e}")))
}
