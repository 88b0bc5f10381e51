//! Discovery that looks: with credentials, `--discover` reads one page of
//! each stream and adds the top-level fields the API sent that `schemas/`
//! lacks to the catalog (typed from their values), so that they can be
//! selected or deselected before the first sync. The requests go through
//! the client, under the one rate budget.

use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinSet;

use crate::client::{Cancel, Client, FetchError};
use crate::config::Config;
use crate::error::Error;
use crate::evolve::types;
use crate::metrics::StreamStats;
use crate::scan;
use crate::streams::{StreamDef, STREAMS};

/// Records read per stream: enough to meet fields on one record in a
/// hundred now and then, one request each.
const SAMPLE: u32 = 100;

/// Fields seen per stream that its schema lacks, with the types of their
/// non-null values (a field only ever null is left out, as a sync leaves
/// it out), in the order first met.
pub type Seen = Vec<(&'static str, Vec<(String, u8)>)>;

/// Reads one page of every stream (a child stream: of its parent's first
/// record). A stream that cannot be read is left as `schemas/` has it,
/// with a warning; refused credentials fail discovery. `None` when no
/// stream could be read (the API unreachable): the catalog of `schemas/`.
pub async fn sample(config: &Config) -> Result<Option<Seen>, Error> {
    let (_cancel_tx, cancel) = Cancel::new();
    let client = Client::new(config, cancel)?;
    let mut seen = Seen::new();
    let mut failures: Vec<(&'static StreamDef, String)> = Vec::new();
    // Parents first: their first ids are the children's.
    let mut first_ids: Vec<(&'static str, String)> = Vec::new();
    for children in [false, true] {
        let mut tasks = JoinSet::new();
        for def in STREAMS.iter().filter(|d| d.parent.is_some() == children) {
            let path = match def.parent {
                None => def.path.to_string(),
                Some(p) => match first_ids.iter().find(|(s, _)| *s == p.stream) {
                    Some((_, id)) => def.path.replace("{parent_id}", id),
                    None => continue,
                },
            };
            let client = client.clone();
            tasks.spawn(async move { (def, page(&client, def, &path).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((def, answer)) = joined else { continue };
            match answer {
                Ok((fields, first)) => {
                    if let Some(id) = first {
                        first_ids.push((def.name, id));
                    }
                    seen.push((def.name, fields));
                }
                Err(FetchError::Fatal(e @ Error::Auth(_))) => return Err(e),
                Err(FetchError::Forbidden(why)) if !def.optional => return Err(Error::Auth(why)),
                Err(FetchError::NotFound | FetchError::Forbidden(_)) if def.optional => {
                    tracing::info!(
                        stream = def.name,
                        "discovery: {} is not in the project's plan; its fields are the schema's",
                        def.endpoint()
                    );
                }
                Err(e) => failures.push((def, describe(e))),
            }
        }
    }
    if seen.is_empty() {
        let why = failures
            .first()
            .map_or("no answer".into(), |(_, w)| w.clone());
        tracing::warn!("discovery could not read the API ({why}): the catalog lists the fields of schemas/ only");
        return Ok(None);
    }
    for (def, why) in failures {
        tracing::warn!(
            stream = def.name,
            "discovery could not read a page of {} ({why}); its fields are the schema's",
            def.endpoint()
        );
    }
    // The catalog's order, whatever order the answers came in.
    seen.sort_by_key(|(name, _)| STREAMS.iter().position(|d| d.name == *name));
    Ok(Some(seen))
}

fn describe(e: FetchError) -> String {
    match e {
        FetchError::NotFound => "404".into(),
        FetchError::Forbidden(_) => "403".into(),
        FetchError::BadRequest(why) => why,
        FetchError::Fatal(e) => e.to_string(),
        FetchError::Replan | FetchError::Cancelled => "stopped".into(),
    }
}

/// One page of `def` at `path`: the fields beyond its schema, and the
/// first record's id.
async fn page(
    client: &Arc<Client>,
    def: &'static StreamDef,
    path: &str,
) -> Result<(Vec<(String, u8)>, Option<String>), FetchError> {
    let stats = StreamStats::new(def.name);
    let schema = crate::catalog::schema_of(def);
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let query = format!("limit={}", SAMPLE.min(def.max_page_size));
    client
        .get(&stats, path, &query, |body| {
            let mut fields: Vec<(String, u8)> = Vec::new();
            let mut first = None;
            scan::each_record(body, def, |record| {
                let Some(record) = record else { return };
                for i in 0..record.len() {
                    let name = record.name(i);
                    if first.is_none() && (name == def.key || name == "_id") {
                        first = serde_json::from_str::<Value>(record.value(i))
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string));
                    }
                    let known = props.contains_key(name)
                        || def.ignored_fields.contains(&name)
                        || def.parent.is_some_and(|p| p.child_field == name);
                    let t = types::of(record.value(i).as_bytes());
                    if known || t == types::NULL {
                        continue;
                    }
                    match fields.iter_mut().find(|(n, _)| n == name) {
                        Some((_, have)) => *have |= t,
                        None => fields.push((name.to_string(), t)),
                    }
                }
            })?;
            Ok((fields, first))
        })
        .await
}
