//! The command line, as Singer taps spell it.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AboutFormat {
    Json,
    Markdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TestMode {
    /// Fetch one record per selected stream.
    All,
    /// Print the SCHEMA messages only, without calling the API.
    Schema,
    /// Ask the API a handful of questions and print, per undocumented
    /// behaviour, what this server does and what a sync does about it.
    Api,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(name = "tap-gleap", version, about = crate::about::DESCRIPTION)]
pub struct Args {
    /// Config file (JSON). Repeat to merge several, later keys winning; `ENV`
    /// reads TAP_GLEAP_* variables. Without any, the environment is read.
    #[arg(long, value_name = "FILE|ENV")]
    pub config: Vec<String>,

    /// State file from a previous run (its last STATE message, or its value).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Catalog selecting streams and fields (`--properties` is the old name).
    #[arg(long, visible_alias = "properties", value_name = "FILE")]
    pub catalog: Option<PathBuf>,

    /// Print the catalog and exit.
    #[arg(long)]
    pub discover: bool,

    /// Extract only these streams (comma-separated or repeated). With
    /// `--catalog`, the catalog still chooses their fields and replication
    /// methods; with `--discover`, only these are marked selected.
    #[arg(long, value_delimiter = ',', value_name = "STREAM[,STREAM]", value_parser = stream_names())]
    pub select: Vec<String>,

    /// Print the tap's name, version, capabilities and settings, and exit.
    #[arg(long)]
    pub about: bool,

    /// Check the connection: one record per selected stream (`--test`),
    /// only the SCHEMA messages (`--test=schema`), or what this server does
    /// where Gleap's docs are silent (`--test=api`).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "all", value_name = "MODE")]
    pub test: Option<TestMode>,

    /// Format of `--about`.
    #[arg(long, value_enum, default_value_t = AboutFormat::Json, requires = "about")]
    pub format: AboutFormat,

    /// Log format on stderr (`json` for orchestrators that parse logs).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The known stream names: anything else given to `--select` is a usage
/// error that lists them.
fn stream_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::streams::STREAMS.iter().map(|s| s.name))
}
