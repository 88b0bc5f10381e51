//! Settings: declared once as data (`SETTINGS`), which drives validation,
//! environment variables, `--about` and the README's table alike.
//!
//! Several `--config` files merge, later keys winning; `--config ENV` (or no
//! `--config` at all) reads `TAP_GLEAP_<KEY>` variables, as Meltano SDK taps do.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::streams::{self, StreamDef};
use crate::timefmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    DateTime,
    Url,
    /// A JSON object (from the environment: its JSON text).
    Object,
    /// A period such as `7d`, `24h`, `90m` (`timefmt::parse_period`).
    Duration,
    /// The Meltano SDK's `batch_config` object (`output::batch_config`).
    BatchConfig,
}

pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub required: bool,
    pub secret: bool,
    pub description: &'static str,
}

pub const DEFAULT_API_URL: &str = "https://api.gleap.io/v3";

use crate::state::MAX_LOOKBACK_WINDOW_SECONDS;

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "api_key",
        kind: Kind::String,
        default: None,
        required: true,
        secret: true,
        description: "Gleap API key (Project Settings > Security > API Key). Sent as a Bearer token; never logged.",
    },
    Setting {
        name: "project_id",
        kind: Kind::String,
        default: None,
        required: true,
        secret: false,
        description: "Gleap project id, sent in the `Project` header.",
    },
    Setting {
        name: "start_date",
        kind: Kind::DateTime,
        default: None,
        required: false,
        secret: false,
        description: "Where incremental streams begin when there is no bookmark (RFC 3339 date or date-time; no zone means UTC). Empty: from the beginning.",
    },
    Setting {
        name: "api_url",
        kind: Kind::Url,
        default: Some(DEFAULT_API_URL),
        required: false,
        secret: false,
        description: "Base URL of the Gleap API, including the version. Plain http:// is refused unless it points at loopback or allow_insecure_http is true.",
    },
    Setting {
        name: "page_size",
        kind: Kind::Integer { min: 1, max: 10_000 },
        default: Some("1000"),
        required: false,
        secret: false,
        description: "Records requested per page (capped per endpoint at the API's own maximum: 1000 for tickets, 10000 for messages).",
    },
    Setting {
        name: "requests_per_minute",
        kind: Kind::Integer { min: 1, max: 100_000 },
        default: Some("900"),
        required: false,
        secret: false,
        description: "Requests per minute for the whole process, all streams together. The API allows 1000 per project; the default leaves room for the project's other integrations.",
    },
    Setting {
        name: "request_timeout_seconds",
        kind: Kind::Integer { min: 1, max: 3600 },
        default: Some("60"),
        required: false,
        secret: false,
        description: "Timeout of one HTTP request, body included.",
    },
    Setting {
        name: "retry_budget_seconds",
        kind: Kind::Integer { min: 0, max: 86_400 },
        default: Some("600"),
        required: false,
        secret: false,
        description: "How long one request may keep being retried (429, 5xx, timeouts, broken bodies) before the sync stops with an error. Outlasts a full rate-limit window by default.",
    },
    Setting {
        name: "lookback_window_seconds",
        kind: Kind::Integer { min: 0, max: MAX_LOOKBACK_WINDOW_SECONDS as i64 },
        default: Some("300"),
        required: false,
        secret: false,
        description: "How late the API may show an update in its lists (they are served by a search index and a cache): no bookmark passes the API's clock at the sync's start less this, so each run reads the updates of the last few minutes again (duplicates by design). Widened by the tap, up to 24 hours, when a run finds an update that arrived about that late. 0: none (updates shown late are lost).",
    },
    Setting {
        name: "emit_activate_version_messages",
        kind: Kind::Boolean,
        default: Some("false"),
        required: false,
        secret: false,
        description: "Full-table streams send ACTIVATE_VERSION after a complete pass, so targets can drop rows that disappeared.",
    },
    Setting {
        name: "reconcile_every",
        kind: Kind::Duration,
        default: None,
        required: false,
        secret: false,
        description: "How often incremental streams are read whole to find the records deleted in Gleap (a duration: \"7d\", \"24h\", \"90m\"; empty or \"off\": never). A run in which a stream is due sends it under a new table version and ACTIVATE_VERSION once the pass completed without error, so targets that honour it delete or mark the rows gone; full-table streams then send ACTIVATE_VERSION every run. Costs one request per page of the stream.",
    },
    Setting {
        name: "reconcile_streams",
        kind: Kind::Object,
        default: None,
        required: false,
        secret: false,
        description: "Periods per stream, overriding reconcile_every, e.g. {\"tickets\": \"7d\", \"messages\": \"off\"}. The streams listed per changed parent (ticket_activity_logs, session_activities, session_events) are never reconciled: a whole pass would cost a request per ticket or contact.",
    },
    Setting {
        name: "schema_evolution",
        kind: Kind::String,
        default: Some("evolve"),
        required: false,
        secret: false,
        description: "Fields the API sends that the stream's schema lacks: evolve (add them to the schema, typed from their values, and send the SCHEMA again), freeze (fail the stream on one) or discard (drop them with a warning). Fields deselected in the catalog stay out in every mode.",
    },
    Setting {
        name: "allow_insecure_http",
        kind: Kind::Boolean,
        default: Some("false"),
        required: false,
        secret: false,
        description: "Allow a plain http:// api_url that is not loopback (the API key would travel unencrypted).",
    },
    Setting {
        name: "stream_maps",
        kind: Kind::Object,
        default: None,
        required: false,
        secret: false,
        description: "Stream maps, in the Meltano SDK's syntax: per stream, properties computed by expressions (e.g. \"md5(email)\"), null to drop a property or a whole stream, and __alias__, __source__, __filter__, __else__, __key_properties__.",
    },
    Setting {
        name: "stream_map_config",
        kind: Kind::Object,
        default: None,
        required: false,
        secret: false,
        description: "Values that map expressions read as `config` (e.g. a salt: \"md5(config['salt'] + email)\").",
    },
    Setting {
        name: "flattening_enabled",
        kind: Kind::Boolean,
        default: Some("false"),
        required: false,
        secret: false,
        description: "Flatten nested objects into top-level properties named parent__child (the Meltano SDK's schema flattening); deeper objects and arrays become JSON strings.",
    },
    Setting {
        name: "flattening_max_depth",
        kind: Kind::Integer { min: 0, max: 100 },
        default: None,
        required: false,
        secret: false,
        description: "How many levels of nested objects flattening opens; required when flattening_enabled is true.",
    },
    Setting {
        name: "batch_config",
        kind: Kind::BatchConfig,
        default: None,
        required: false,
        secret: false,
        description: "Write records to files and send BATCH messages (the Meltano SDK's) instead of RECORD lines, e.g. {\"encoding\": {\"format\": \"jsonl\", \"compression\": \"gzip\"}, \"storage\": {\"root\": \"file:///var/lib/gleap/batches\", \"prefix\": \"gleap-\"}, \"batch_size\": 10000}. Local folders only (file://). A STATE follows the files that hold what it covers. See docs/batch.md.",
    },
];

/// Keys Meltano or the Meltano SDK may pass to any tap; accepted silently.
const TOLERATED_KEYS: &[&str] = &["faker_config"];

/// The API key: held apart so that no `{:?}` or log line can show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub api_key: ApiKey,
    pub project_id: String,
    pub start_date: Option<DateTime<Utc>>,
    pub api_url: String,
    pub page_size: u32,
    pub requests_per_minute: u32,
    pub request_timeout: Duration,
    pub retry_budget: Duration,
    pub emit_activate_version_messages: bool,
    /// The settle window: how late the API may show an update (`pager::settle`).
    pub lookback_window: Duration,
    /// `reconcile_every`: how often incremental streams are read whole.
    pub reconcile_every: Option<chrono::Duration>,
    /// `reconcile_streams`: per stream, a period or `None` ("off").
    pub reconcile_streams: Vec<(&'static str, Option<chrono::Duration>)>,
    /// What becomes of fields the schema lacks (`evolve.rs`).
    pub schema_evolution: crate::evolve::Mode,
    pub allow_insecure_http: bool,
    /// `stream_maps`, `stream_map_config`, `flattening_*`: checked in full
    /// against the catalog by `maps::Mapper::new`.
    pub maps: crate::maps::MapSettings,
    /// `batch_config`: records go to files announced by BATCH messages.
    pub batch: Option<crate::output::batch_config::BatchConfig>,
}

/// A raw value and where it came from, so errors can name the file or variable.
struct Raw {
    value: Value,
    source: String,
    /// From an environment variable: a string, coerced to the setting's type.
    /// A file's values must have their JSON type already.
    from_env: bool,
}

/// Reads and merges every `--config` argument, then validates the result.
pub fn load(args: &[String]) -> Result<Config> {
    validate(merge(args)?, true)
}

/// Reads and validates the config as `load` does, except that the
/// credentials may be missing: for `--discover` and `--test=schema`, which
/// need not call the API. The config when it holds credentials (with
/// them, `--discover` reads a page of each stream).
pub fn load_without_credentials(args: &[String]) -> Result<Option<Config>> {
    if args.is_empty() {
        return Ok(None);
    }
    let config = validate(merge(args)?, false)?;
    let complete = !config.api_key.expose().is_empty() && !config.project_id.is_empty();
    Ok(complete.then_some(config))
}

fn merge(args: &[String]) -> Result<Vec<(String, Raw)>> {
    let mut merged: Vec<(String, Raw)> = Vec::new();
    let mut put = |key: String, raw: Raw| {
        merged.retain(|(k, _)| *k != key);
        merged.push((key, raw));
    };
    let env_only = args.is_empty();
    for arg in args {
        if arg == "ENV" {
            for (k, raw) in from_env() {
                put(k, raw);
            }
        } else {
            for (k, raw) in sourced(read_object(Path::new(arg))?, arg) {
                put(k, raw);
            }
        }
    }
    if env_only {
        for (k, raw) in from_env() {
            put(k, raw);
        }
    }
    Ok(merged)
}

/// Validates settings given as one JSON object (as a single config file
/// would hold them); errors name the source as "config".
pub fn from_value(value: &Value) -> Result<Config> {
    validate(
        sourced(settings_object(value.clone(), "config")?, "config").collect(),
        true,
    )
}

/// Each setting of one file (or object), with where it came from.
fn sourced(map: Map<String, Value>, source: &str) -> impl Iterator<Item = (String, Raw)> + '_ {
    map.into_iter().map(move |(k, value)| {
        (
            k,
            Raw {
                value,
                source: source.to_string(),
                from_env: false,
            },
        )
    })
}

fn settings_object(value: Value, source: &str) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Config(format!(
            "{source}: expected a JSON object of settings like {{\"api_key\": \"...\", \"project_id\": \"...\"}}"
        ))),
    }
}

fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let value = serde_json::from_str::<Value>(&text)
        .map_err(|e| Error::Config(format!("{} is not valid JSON: {e}", path.display())))?;
    settings_object(value, &path.display().to_string())
}

fn env_name(key: &str) -> String {
    format!("TAP_GLEAP_{}", key.to_ascii_uppercase())
}

fn from_env() -> Vec<(String, Raw)> {
    SETTINGS
        .iter()
        .filter_map(|s| {
            let var = env_name(s.name);
            std::env::var(&var).ok().map(|v| {
                (
                    s.name.to_string(),
                    Raw {
                        value: Value::String(v),
                        source: format!("environment variable {var}"),
                        from_env: true,
                    },
                )
            })
        })
        .collect()
}

/// Checks every setting; `require_credentials` false lets `api_key` and
/// `project_id` be missing (the config is then only for checking).
fn validate(merged: Vec<(String, Raw)>, require_credentials: bool) -> Result<Config> {
    for (key, raw) in &merged {
        if !SETTINGS.iter().any(|s| s.name == key) && !TOLERATED_KEYS.contains(&key.as_str()) {
            tracing::warn!("{}: unknown setting \"{key}\" is ignored (see `tap-gleap --about` for the settings)", raw.source);
        }
    }
    let get = |name: &str| merged.iter().find(|(k, _)| k == name).map(|(_, r)| r);
    let mut values: Vec<(&'static str, Option<Parsed>)> = Vec::new();
    for s in SETTINGS {
        let parsed = match get(s.name) {
            Some(raw) if !raw.value.is_null() && raw.value != Value::String(String::new()) => Some(
                parse_value(s, &raw.value, raw.from_env).map_err(|expected| {
                    Error::Config(format!(
                        "{}: \"{}\" must be {expected}, got {}",
                        raw.source,
                        s.name,
                        if s.secret {
                            "<redacted>".to_string()
                        } else {
                            short(&raw.value)
                        }
                    ))
                })?,
            ),
            _ => match s.default {
                Some(d) => Some(
                    parse_value(s, &Value::String(d.into()), true).expect("defaults are valid"),
                ),
                None if s.required && require_credentials => {
                    // Name the files read, so the reader knows which to fix.
                    let mut files: Vec<&str> = Vec::new();
                    for (_, raw) in merged.iter().filter(|(_, raw)| !raw.from_env) {
                        if !files.contains(&raw.source.as_str()) {
                            files.push(&raw.source);
                        }
                    }
                    let into = match files.as_slice() {
                        [] => "a config file (--config FILE)".to_string(),
                        files => files.join(" or "),
                    };
                    return Err(Error::Config(format!(
                        "the required setting \"{}\" is missing: add it to {into} or set {}",
                        s.name,
                        env_name(s.name)
                    )));
                }
                None => None,
            },
        };
        values.push((s.name, parsed));
    }
    let take = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, p)| p.clone())
    };
    let text = |name: &str| match take(name) {
        Some(Parsed::Text(t)) => t,
        _ => String::new(),
    };
    let int = |name: &str| match take(name) {
        Some(Parsed::Int(i)) => i,
        _ => 0,
    };
    let flag = |name: &str| matches!(take(name), Some(Parsed::Bool(true)));
    let object = |name: &str| match take(name) {
        Some(Parsed::Object(o)) => Some(o),
        _ => None,
    };

    let config = Config {
        api_key: ApiKey(text("api_key")),
        project_id: text("project_id"),
        start_date: match take("start_date") {
            Some(Parsed::Time(t)) => Some(t),
            _ => None,
        },
        api_url: text("api_url").trim_end_matches('/').to_string(),
        page_size: int("page_size") as u32,
        requests_per_minute: int("requests_per_minute") as u32,
        request_timeout: Duration::from_secs(int("request_timeout_seconds") as u64),
        retry_budget: Duration::from_secs(int("retry_budget_seconds") as u64),
        emit_activate_version_messages: flag("emit_activate_version_messages"),
        lookback_window: Duration::from_secs(int("lookback_window_seconds") as u64),
        reconcile_every: match take("reconcile_every") {
            Some(Parsed::Period(p)) => p,
            _ => None,
        },
        reconcile_streams: match object("reconcile_streams") {
            Some(o) => reconcile_streams(&o, get("reconcile_streams").map(|r| r.source.as_str()))?,
            None => Vec::new(),
        },
        schema_evolution: {
            let mode = text("schema_evolution");
            crate::evolve::Mode::parse(&mode).ok_or_else(|| {
                Error::Config(format!(
                    "{}: \"schema_evolution\" must be one of {}, got {}",
                    get("schema_evolution").map_or("config", |r| r.source.as_str()),
                    crate::evolve::Mode::NAMES.join(", "),
                    short(&Value::String(mode.clone()))
                ))
            })?
        },
        allow_insecure_http: flag("allow_insecure_http"),
        maps: crate::maps::MapSettings {
            stream_maps: object("stream_maps"),
            stream_map_config: object("stream_map_config"),
            flattening_enabled: flag("flattening_enabled"),
            flattening_max_depth: match take("flattening_max_depth") {
                Some(Parsed::Int(i)) => Some(i),
                _ => None,
            },
        },
        batch: match object("batch_config") {
            Some(o) => Some(crate::output::batch_config::parse(&o).map_err(|e| {
                Error::Config(format!(
                    "{}: {e}",
                    get("batch_config").map_or("config", |r| r.source.as_str())
                ))
            })?),
            None => None,
        },
    };
    check_url_security(
        &config,
        get("api_url")
            .map(|r| r.source.as_str())
            .unwrap_or("default"),
    )?;
    if let Some(start) = config.start_date {
        if start > Utc::now() {
            return Err(Error::Config(format!(
                "\"start_date\" {} lies in the future: use a past date, or leave it out to extract everything",
                timefmt::format_ms(start)
            )));
        }
    }
    if config.requests_per_minute > 1000 {
        tracing::warn!(
            "requests_per_minute {} is above the documented limit of 1000 per project: expect 429 responses",
            config.requests_per_minute
        );
    }
    Ok(config)
}

#[derive(Clone)]
enum Parsed {
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    Object(Map<String, Value>),
    /// `None`: "off".
    Period(Option<chrono::Duration>),
}

/// Parses one value. Values from the environment arrive as strings and are
/// coerced to the setting's type (`coerce`); in a file, `"100"` for a number
/// or `"yes"` for a boolean is refused, as the README promises. The error is
/// what was expected.
fn parse_value(s: &Setting, v: &Value, coerce: bool) -> std::result::Result<Parsed, String> {
    match s.kind {
        Kind::String => match v {
            // Both string settings travel in HTTP headers (`Authorization`,
            // `Project`): refuse here, naming the file, what the HTTP client
            // would refuse later without saying where the value came from.
            Value::String(t) if !t.trim().is_empty() && !t.trim().bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => {
                Err("a string of printable ASCII characters (it is sent in an HTTP header)".into())
            }
            Value::String(t) if !t.trim().is_empty() => Ok(Parsed::Text(t.trim().to_string())),
            _ => Err("a non-empty string".into()),
        },
        Kind::Integer { min, max } => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(t) if coerce => t.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Parsed::Int(n)),
                _ if v.is_string() && !coerce => Err(format!(
                    "a whole number from {min} to {max}, written as a JSON number (without quotes)"
                )),
                _ => Err(format!("a whole number from {min} to {max}")),
            }
        }
        Kind::Boolean => match v {
            Value::Bool(b) => Ok(Parsed::Bool(*b)),
            Value::String(t) if coerce => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Parsed::Bool(true)),
                "false" | "0" | "no" => Ok(Parsed::Bool(false)),
                _ => Err("true or false".into()),
            },
            Value::String(_) => {
                Err("true or false, written as a JSON boolean (without quotes)".into())
            }
            _ => Err("true or false".into()),
        },
        Kind::DateTime => match v {
            Value::String(t) => timefmt::parse_instant(t)
                .map(Parsed::Time)
                .ok_or_else(|| "an RFC 3339 date or date-time such as \"2024-01-31\" or \"2024-01-31T00:00:00Z\"".into()),
            _ => Err("an RFC 3339 date or date-time string such as \"2024-01-31\"".into()),
        },
        Kind::Object | Kind::BatchConfig => match v {
            Value::Object(o) => Ok(Parsed::Object(o.clone())),
            Value::String(t) => match serde_json::from_str::<Value>(t) {
                Ok(Value::Object(o)) => Ok(Parsed::Object(o)),
                _ => Err("a JSON object".into()),
            },
            _ => Err("a JSON object".into()),
        },
        Kind::Duration => match v {
            Value::String(t) => timefmt::parse_period(t).map(Parsed::Period),
            _ => Err(timefmt::PERIOD_EXPECTED.into()),
        },
        Kind::Url => match v {
            Value::String(t) => match url::Url::parse(t.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Parsed::Text(t.trim().to_string())),
                _ => Err("an http(s) URL such as \"https://api.gleap.io/v3\"".into()),
            },
            _ => Err("an http(s) URL string such as \"https://api.gleap.io/v3\"".into()),
        },
    }
}

impl Config {
    /// How often `def` is read whole to find deletions (`reconcile_every`,
    /// `reconcile_streams`); `None`: never. Streams listed per changed
    /// parent are left out of `reconcile_every` (`reconcile_streams` refuses
    /// them): a whole pass would cost a request per parent.
    pub fn reconcile_period(&self, def: &StreamDef) -> Option<chrono::Duration> {
        match self.reconcile_streams.iter().find(|(n, _)| *n == def.name) {
            Some((_, period)) => *period,
            None if def.is_per_changed_parent() => None,
            None => self.reconcile_every,
        }
    }
}

/// `reconcile_streams`: every key a stream that can be reconciled, every
/// value a period or "off".
fn reconcile_streams(
    o: &Map<String, Value>,
    source: Option<&str>,
) -> Result<Vec<(&'static str, Option<chrono::Duration>)>> {
    let source = source.unwrap_or("config");
    let mut out = Vec::new();
    for (name, v) in o {
        let def = streams::find(name).ok_or_else(|| {
            Error::Config(format!(
                "{source}: \"reconcile_streams\" names \"{name}\", which is not a stream of this tap (see `tap-gleap --about`)"
            ))
        })?;
        let period = match v {
            Value::String(t) => timefmt::parse_period(t),
            _ => Err(timefmt::PERIOD_EXPECTED.into()),
        }
        .map_err(|e| {
            Error::Config(format!(
                "{source}: \"reconcile_streams\".\"{name}\" must be {e}, got {}",
                short(v)
            ))
        })?;
        if period.is_some() && def.is_per_changed_parent() {
            return Err(Error::Config(format!(
                "{source}: \"reconcile_streams\".\"{name}\": {name} cannot be reconciled: a whole pass would cost one request per {} (see the README's section on deletions); set it to \"off\" or remove it",
                def.parent.map_or("parent", |p| p.noun)
            )));
        }
        out.push((def.name, period));
    }
    Ok(out)
}

/// Refuses to send the API key in clear text to anything but this machine.
fn check_url_security(config: &Config, source: &str) -> Result<()> {
    let url = url::Url::parse(&config.api_url)
        .map_err(|e| Error::Config(format!("{source}: \"api_url\" is not a URL: {e}")))?;
    if url.scheme() == "https" || config.allow_insecure_http {
        return Ok(());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{source}: \"api_url\" uses plain http:// to a host that is not loopback, which would send the API key unencrypted: use https://, or set \"allow_insecure_http\": true if you really mean it"
        )))
    }
}

/// A value shown in an error, cut short so a pasted blob does not flood the log.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, Value)], from_env: bool, require_credentials: bool) -> Result<Config> {
        validate(
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Raw {
                            value: v.clone(),
                            source: if from_env { "environment" } else { "c.json" }.into(),
                            from_env,
                        },
                    )
                })
                .collect(),
            require_credentials,
        )
    }

    /// Settings as a file `c.json` holds them.
    fn cfg(pairs: &[(&str, Value)]) -> Result<Config> {
        from(pairs, false, true)
    }

    fn base() -> Vec<(&'static str, Value)> {
        vec![("api_key", "k".into()), ("project_id", "p".into())]
    }

    #[test]
    fn defaults_apply() {
        let c = cfg(&base()).unwrap();
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert_eq!(c.page_size, 1000);
        assert_eq!(c.requests_per_minute, 900);
        assert!(!c.emit_activate_version_messages);
    }

    #[test]
    fn errors_name_the_source_the_key_and_what_is_expected() {
        let mut p = base();
        p.push(("page_size", (-5).into()));
        let e = cfg(&p).unwrap_err().to_string();
        assert!(
            e.contains("c.json") && e.contains("page_size") && e.contains("whole number"),
            "{e}"
        );
        let e = cfg(&[("project_id", "p".into())]).unwrap_err().to_string();
        assert!(
            e.contains("api_key") && e.contains("TAP_GLEAP_API_KEY"),
            "{e}"
        );
    }

    #[test]
    fn strings_from_the_environment_are_coerced() {
        let mut p = base();
        p.push(("page_size", "250".into()));
        p.push(("emit_activate_version_messages", "yes".into()));
        p.push(("allow_insecure_http", "0".into()));
        let c = from(&p, true, true).unwrap();
        assert_eq!(c.page_size, 250);
        assert!(c.emit_activate_version_messages);
        assert!(!c.allow_insecure_http);
    }

    #[test]
    fn strings_in_a_file_are_not_coerced() {
        for (key, value, expected) in [
            ("page_size", "100", "JSON number"),
            ("retry_budget_seconds", "600", "JSON number"),
            ("emit_activate_version_messages", "yes", "JSON boolean"),
            ("allow_insecure_http", "true", "JSON boolean"),
        ] {
            let mut p = base();
            p.push((key, value.into()));
            let e = cfg(&p).unwrap_err().to_string();
            assert!(
                e.contains("c.json") && e.contains(key) && e.contains(expected),
                "{e}"
            );
        }
    }

    #[test]
    fn credentials_may_be_missing_when_the_api_is_not_called() {
        assert!(from(&[], false, false).is_ok());
        let e = from(&[("page_size", "x".into())], false, false).unwrap_err();
        assert!(e.to_string().contains("page_size"), "{e}");
        assert!(from(&[], false, true).is_err());
    }

    /// The README says every error names the file: a missing setting names
    /// the files that were read, or says a config file is wanted.
    #[test]
    fn a_missing_setting_names_the_file_to_add_it_to() {
        let e = cfg(&[("api_key", "k".into())]).unwrap_err().to_string();
        assert!(
            e.contains("\"project_id\" is missing: add it to c.json or set TAP_GLEAP_PROJECT_ID"),
            "{e}"
        );
        let e = from(&[], true, true).unwrap_err().to_string();
        assert!(
            e.contains("add it to a config file (--config FILE) or set TAP_GLEAP_API_KEY"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let mut p = base();
        p.push(("api_url", "http://127.0.0.1:8723/v3/".into()));
        assert_eq!(cfg(&p).unwrap().api_url, "http://127.0.0.1:8723/v3");
        let mut p = base();
        p.push(("api_url", "http://example.com/v3".into()));
        assert!(cfg(&p)
            .unwrap_err()
            .to_string()
            .contains("allow_insecure_http"));
        p.push(("allow_insecure_http", true.into()));
        assert!(cfg(&p).is_ok());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let mut p = base();
        p[0] = ("api_key", "canary-secret-123".into());
        let c = cfg(&p).unwrap();
        assert!(!format!("{c:?}").contains("canary-secret-123"));
    }

    #[test]
    fn a_wrong_typed_secret_is_not_echoed() {
        let mut p = base();
        p[0] = ("api_key", 12345678.into());
        let e = cfg(&p).unwrap_err().to_string();
        assert!(!e.contains("12345678") && e.contains("redacted"), "{e}");
    }
}
