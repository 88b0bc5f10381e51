//! tap-gleap: a Singer tap for the Gleap REST API.
//!
//! Where things live:
//! - `cli`: the command line; `config`: settings (one table drives
//!   validation, environment variables and `--about`); `about`.
//! - `streams`: the registry of streams, declared as data; `catalog`:
//!   discovery and selection; `state`: bookmarks; `check`: `--test`.
//! - `client`: HTTP, rate limit, retries; `pager`: how pages are walked so
//!   that no record is skipped; `reconcile`: which streams are read whole
//!   this run to find deletions (ACTIVATE_VERSION); `scan`: a page's bytes
//!   to its records (a validating JSON scanner); `conform`: records to
//!   RECORD lines.
//! - `output`: the one stdout writer, which orders records before the STATE
//!   that covers them, and a stream's SCHEMA before its first batch (none
//!   for a stream the API did not serve); `sync`: runs the streams
//!   concurrently.
//! - `maps`: stream maps and schema flattening (the Meltano SDK's), applied
//!   by the writer when configured.
//! - `seen`: the versions a run delivered in its settle window, for the
//!   next run to find the updates the API showed late.
//! - `error`: one error type, an exit code per class; `metrics`, `timefmt`.

pub mod about;
pub mod assumptions;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod conform;
pub mod diagnose;
pub mod error;
pub mod evolve;
pub mod json_types;
pub mod maps;
pub mod metrics;
pub mod output;
pub mod pager;
pub mod pool;
pub mod reconcile;
pub mod sample;
pub mod scan;
pub mod seen;
pub mod state;
pub mod streams;
pub mod sync;
pub mod timefmt;

use std::io::Write;

use cli::{AboutFormat, Args, TestMode};
use error::{Error, Result};

/// Runs the tap as the arguments say, writing Singer messages to `stdout`.
pub fn run(args: Args, stdout: Box<dyn Write + Send>) -> Result<()> {
    let mut stdout = stdout;
    let print = |out: &mut Box<dyn Write + Send>, text: &str| -> Result<()> {
        match out
            .write_all(text.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::Output(format!("cannot write to stdout: {e}")))
            }
            _ => Ok(()),
        }
    };
    if args.about {
        let text = match args.format {
            AboutFormat::Json => {
                serde_json::to_string_pretty(&about::about_json()).expect("JSON serialises")
            }
            AboutFormat::Markdown => about::about_markdown(),
        };
        return print(&mut stdout, &text);
    }
    let select = |args: &Args| match &args.catalog {
        Some(path) => catalog::load_only(path, &args.select),
        None => Ok(catalog::select_only(&args.select)),
    };
    if args.discover || args.test == Some(TestMode::Schema) {
        // Neither needs credentials; a config given is still checked, so
        // that a typo shows up early.
        let credentials = config::load_without_credentials(&args.config)?;
        if args.discover {
            let mut catalog = catalog::discover_only(&args.select);
            // With credentials in a --config, discovery reads a page of
            // each stream and adds the fields the API sends (`sample.rs`).
            if let Some(config) = credentials {
                let seen = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?
                    .block_on(sample::sample(&config))?;
                if let Some(seen) = seen {
                    catalog::add_seen(&mut catalog, &seen);
                }
            }
            return print(
                &mut stdout,
                &serde_json::to_string_pretty(&catalog).expect("JSON serialises"),
            );
        }
        return check::schemas_only(&select(&args)?, &mut stdout);
    }
    let config = config::load(&args.config)?;
    let selected = select(&args)?;
    // Stream maps are checked against the catalog's streams and properties
    // here, before any request: a bad map is a config error, not a failure
    // halfway through a sync.
    let mapper = maps::Mapper::new(&config.maps, &selected)?;
    let state = match &args.state {
        Some(path) => state::State::load(path)?,
        None => state::State::empty(),
    };
    // Discovery selects every stream by default (the Meltano SDK's rule): say
    // what this run extracts, so that a catalog selecting more than meant shows.
    tracing::info!("{}", catalog::summary(&selected));
    // One worker thread (the writer has its own): streams wait on the
    // network, and conforming a page takes milliseconds. Under the API's
    // rate limit a core is idle 95% of the time; against the unlimited fake
    // on 2 cores, a second worker measured the same wall time, the same CPU,
    // and 5-8 MB more peak RSS (glibc keeps an arena per thread).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    if args.test == Some(TestMode::All) {
        return runtime.block_on(check::connection(&config, selected, &mut stdout));
    }
    if args.test == Some(TestMode::Api) {
        return runtime.block_on(diagnose::api(&config, &mut stdout));
    }
    runtime.block_on(sync::sync(config, selected, state, stdout, mapper))
}
