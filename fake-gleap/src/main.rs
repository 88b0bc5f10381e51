//! `fake-gleap` binary: serves the fake Gleap API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fake_gleap::{
    FakeConfig, Fault, Faults, MutateEvery, RateLimit, ResponsesShape, RetryAfter, TieOrder,
};

#[derive(Parser, Debug)]
#[command(
    name = "fake-gleap",
    version,
    about = "A faithful fake of the Gleap REST API (v3)"
)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 = any free port (see --ready-file).
    #[arg(long, default_value_t = 8723)]
    port: u16,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "fake-api-key")]
    api_key: String,
    #[arg(long, default_value = "fake-project")]
    project_id: String,
    #[arg(long, default_value_t = 250)]
    tickets: u64,
    #[arg(long, default_value_t = 120)]
    sessions: u64,
    #[arg(long, default_value_t = 300)]
    messages: u64,
    #[arg(long, default_value_t = 4)]
    teams: u64,
    #[arg(long, default_value_t = 5)]
    surveys: u64,
    #[arg(long, default_value_t = 20)]
    responses_per_survey: u64,
    #[arg(long, default_value_t = 6)]
    message_templates: u64,
    #[arg(long, default_value_t = 8)]
    team_members: u64,
    #[arg(long, default_value_t = 4)]
    helpcenter_collections: u64,
    #[arg(long, default_value_t = 3)]
    articles_per_collection: u64,
    #[arg(long, default_value_t = 3)]
    helpcenter_redirects: u64,
    #[arg(long, default_value_t = 4)]
    news: u64,
    /// Records of each of the ten engagement lists.
    #[arg(long, default_value_t = 2)]
    engagements_per_kind: u64,
    #[arg(long, default_value_t = 3)]
    custom_components: u64,
    #[arg(long, default_value_t = 2)]
    activity_logs_per_ticket: u64,
    #[arg(long, default_value_t = 2)]
    activities_per_session: u64,
    #[arg(long, default_value_t = 3)]
    events_per_session: u64,
    /// Features the project's plan lacks: their endpoints answer
    /// --missing-status. Stream names (engagement_cobrowse, news,
    /// ticket_activity_logs, ...) or groups: engagement, helpcenter.
    #[arg(long, value_name = "FEATURE[,FEATURE...]", value_delimiter = ',')]
    missing: Vec<String>,
    /// What a missing feature's endpoints answer: 404 or 403.
    #[arg(long, default_value_t = 404)]
    missing_status: u16,
    /// Streams whose endpoints are down: every request answers 503.
    #[arg(long, value_name = "STREAM[,STREAM...]", value_delimiter = ',')]
    broken: Vec<String>,
    /// updatedAt of base record 0 (RFC 3339).
    #[arg(long)]
    base_time: Option<String>,
    /// Consecutive base records sharing one updatedAt.
    #[arg(long, default_value_t = 1)]
    tie_group: u64,
    /// updatedAt spacing between tie groups, in ms.
    #[arg(long, default_value_t = 60_000)]
    step_ms: i64,
    /// How base records spread in time: uniform, growth (most records
    /// recent) or bursts (many small bursts with gaps).
    #[arg(long, default_value = "uniform", value_parser = fake_gleap::TimeShape::parse)]
    time_shape: fake_gleap::TimeShape,
    /// Requests allowed per 60 s rolling window (default: unlimited).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Rate-limit window in seconds.
    #[arg(long, default_value_t = 60)]
    rate_window_s: u64,
    /// seconds | http-date | absent
    #[arg(long, default_value = "seconds")]
    retry_after: String,
    /// Body of 429 answers: json | text | empty
    #[arg(long, default_value = "json")]
    rate_limit_body: String,
    /// Share of API requests (0..1) that get a fault.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// 500,502,503,504,hang,reset,truncated,html,wrong-shape,empty
    #[arg(long)]
    faults: Option<String>,
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra wait per response, drawn evenly from 0..N ms.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Meaning of archived / isSpam / ignoreArchived on GET /tickets:
    /// ignored | include | exclude | webapp
    #[arg(long, default_value = "exclude")]
    archived_default: String,
    /// Sort on an undocumented field (sort=_id): honour | refuse | ignore
    #[arg(long, default_value = "honour")]
    undocumented_sort: String,
    /// /messages ignores sort (always createdAt ascending).
    #[arg(long)]
    messages_sort_ignored: bool,
    /// Percent-encoded range operators (updatedAt%3E=): decode | refuse | ignore | literal
    #[arg(long, default_value = "decode")]
    encoded_operators: String,
    /// Range operators on _id / id: honour | refuse | ignore
    #[arg(long, default_value = "honour")]
    id_range_filters: String,
    /// A limit above the endpoint's cap: clamp | refuse
    #[arg(long, default_value = "clamp")]
    over_limit: String,
    /// Records of one tie group share createdAt too.
    #[arg(long)]
    tie_created: bool,
    /// No Date header on responses.
    #[arg(long)]
    no_date_header: bool,
    /// No X-RateLimit-Limit / -Remaining headers.
    #[arg(long)]
    no_rate_limit_headers: bool,
    /// No count / totalCount in the GET /tickets body.
    #[arg(long)]
    no_total_count: bool,
    /// How far the API's clock runs ahead of this machine's, in ms (negative: behind).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_offset_ms: i64,
    /// How far the Date header runs ahead of the clock that stamps records, in ms.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    date_lead_ms: i64,
    /// Named modes (see --list-modes), applied after the other flags.
    #[arg(long, value_name = "NAME[,NAME...]")]
    mode: Option<String>,
    /// Print the named modes and exit.
    #[arg(long)]
    list_modes: bool,
    /// array | wrapped:KEY
    #[arg(long, default_value = "array")]
    responses_shape: String,
    /// natural | shuffled
    #[arg(long, default_value = "natural")]
    tie_order: String,
    #[arg(long)]
    ignore_filters: bool,
    #[arg(long)]
    ignore_sort: bool,
    #[arg(long)]
    unpaginated_small_lists: bool,
    /// 401 or 403
    #[arg(long, default_value_t = 401)]
    auth_failure_status: u16,
    /// Refusals say which header was wrong ("Invalid API token", "Project
    /// not found") instead of a bare "Unauthorized".
    #[arg(long)]
    auth_failure_telling: bool,
    #[arg(long)]
    no_gzip: bool,
    /// Every N API requests, mutate the incremental streams.
    #[arg(long)]
    mutate_every: Option<u64>,
    #[arg(long, default_value_t = 5)]
    mutate_updates: u64,
    #[arg(long, default_value_t = 1)]
    mutate_creates: u64,
    #[arg(long, default_value_t = 0)]
    mutate_deletes: u64,
    #[arg(long)]
    odd_records: bool,
    /// Serve only the fields the tap's schemas name (no undocumented ones).
    #[arg(long)]
    no_undocumented_fields: bool,
    /// Serve at most this many records per page on every endpoint, silently.
    #[arg(long)]
    max_limit: Option<u64>,
    /// Write the base URL here once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn config(c: &Cli) -> Result<FakeConfig, String> {
    let mut cfg = FakeConfig {
        seed: c.seed,
        api_key: c.api_key.clone(),
        project_id: c.project_id.clone(),
        tickets: c.tickets,
        sessions: c.sessions,
        messages: c.messages,
        teams: c.teams,
        surveys: c.surveys,
        responses_per_survey: c.responses_per_survey,
        message_templates: c.message_templates,
        team_members: c.team_members,
        helpcenter_collections: c.helpcenter_collections,
        articles_per_collection: c.articles_per_collection,
        helpcenter_redirects: c.helpcenter_redirects,
        news: c.news,
        engagements_per_kind: c.engagements_per_kind,
        custom_components: c.custom_components,
        activity_logs_per_ticket: c.activity_logs_per_ticket,
        activities_per_session: c.activities_per_session,
        events_per_session: c.events_per_session,
        missing_status: c.missing_status,
        step_ms: c.step_ms,
        time_shape: c.time_shape,
        tie_group: c.tie_group.max(1),
        latency: Duration::from_millis(c.latency_ms),
        latency_jitter: Duration::from_millis(c.latency_jitter_ms),
        ignore_filters: c.ignore_filters,
        ignore_sort: c.ignore_sort,
        unpaginated_small_lists: c.unpaginated_small_lists,
        auth_failure_status: c.auth_failure_status,
        auth_failure_telling: c.auth_failure_telling,
        gzip: !c.no_gzip,
        odd_records: c.odd_records,
        undocumented_fields: !c.no_undocumented_fields,
        max_limit: c.max_limit,
        messages_sort_ignored: c.messages_sort_ignored,
        tie_created: c.tie_created,
        date_header: !c.no_date_header,
        rate_limit_headers: !c.no_rate_limit_headers,
        total_count: !c.no_total_count,
        clock_offset_ms: c.clock_offset_ms,
        date_lead_ms: c.date_lead_ms,
        ..FakeConfig::default()
    };
    for f in c.missing.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        if !fake_gleap::Stream::ALL.iter().any(|s| s.is_feature(f)) {
            return Err(format!(
                "--missing: unknown feature {f:?}: a stream name (see /_fake/snapshot/<stream>) or engagement, helpcenter"
            ));
        }
        cfg.missing_features.push(f.to_string());
    }
    for f in c.broken.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        if !fake_gleap::Stream::ALL.iter().any(|s| s.is_feature(f)) {
            return Err(format!("--broken: unknown stream {f:?}"));
        }
        cfg.broken_features.push(f.to_string());
    }
    if !matches!(c.missing_status, 403 | 404) {
        return Err("--missing-status: 403 or 404".into());
    }
    if let Some(t) = &c.base_time {
        cfg.base_time = chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| format!("--base-time: {e}"))?
            .with_timezone(&chrono::Utc);
    }
    if let Some(n) = c.rate_limit {
        cfg.rate_limit = Some(RateLimit {
            per_window: n,
            window: Duration::from_secs(c.rate_window_s.max(1)),
            retry_after: match c.retry_after.as_str() {
                "seconds" => RetryAfter::Seconds,
                "http-date" => RetryAfter::HttpDate,
                "absent" => RetryAfter::Absent,
                o => return Err(format!("--retry-after: unknown {o:?}")),
            },
            body: match c.rate_limit_body.as_str() {
                "json" => fake_gleap::ErrorBody::Json,
                "text" => fake_gleap::ErrorBody::Text,
                "empty" => fake_gleap::ErrorBody::Empty,
                o => return Err(format!("--rate-limit-body: unknown {o:?}")),
            },
        });
    }
    cfg.faults = Faults {
        rate: c.fault_rate.clamp(0.0, 1.0),
        kinds: match &c.faults {
            Some(k) => Fault::parse_list(k)?,
            None => Faults::default().kinds,
        },
        hang: Duration::from_millis(c.hang_ms),
    };
    cfg.archived_default = c
        .archived_default
        .parse()
        .map_err(|e| format!("--archived-default: {e}"))?;
    cfg.undocumented_sort = c
        .undocumented_sort
        .parse()
        .map_err(|e| format!("--undocumented-sort: {e}"))?;
    cfg.encoded_operators = c
        .encoded_operators
        .parse()
        .map_err(|e| format!("--encoded-operators: {e}"))?;
    cfg.id_range_filters = c
        .id_range_filters
        .parse()
        .map_err(|e| format!("--id-range-filters: {e}"))?;
    cfg.over_limit = c
        .over_limit
        .parse()
        .map_err(|e| format!("--over-limit: {e}"))?;
    cfg.responses_shape = match c.responses_shape.as_str() {
        "array" => ResponsesShape::Array,
        o => match o.strip_prefix("wrapped:") {
            Some(k) if !k.is_empty() => ResponsesShape::Wrapped(k.to_string()),
            _ => {
                return Err(format!(
                    "--responses-shape: array or wrapped:KEY, not {o:?}"
                ))
            }
        },
    };
    cfg.tie_order = match c.tie_order.as_str() {
        "natural" => TieOrder::Natural,
        "shuffled" => TieOrder::Shuffled,
        o => return Err(format!("--tie-order: unknown {o:?}")),
    };
    if let Some(n) = c.mutate_every {
        cfg.mutate_every = Some(MutateEvery {
            requests: n.max(1),
            updates: c.mutate_updates,
            creates: c.mutate_creates,
            deletes: c.mutate_deletes,
        });
    }
    if let Some(m) = &c.mode {
        fake_gleap::apply_modes(&mut cfg, m).map_err(|e| format!("--mode: {e}"))?;
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if cli.list_modes {
        let w = fake_gleap::MODES
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0);
        for m in fake_gleap::MODES {
            println!("{:w$}  {}", m.name, m.about);
        }
        return;
    }
    let cfg = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fake-gleap: {e}");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = match format!("{}:{}", cli.host, cli.port).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-gleap: bad --host/--port: {e}");
            std::process::exit(2);
        }
    };
    let (key, project) = (cfg.api_key.clone(), cfg.project_id.clone());
    let server = match fake_gleap::start_on(cfg, addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-gleap: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "fake-gleap listening on {} (api key: {key}, project: {project})",
        server.url()
    );
    if let Some(p) = &cli.ready_file {
        // Write then rename, so a polling script never reads a partial URL.
        let tmp = p.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, server.url()).and_then(|_| std::fs::rename(&tmp, p)) {
            eprintln!("fake-gleap: cannot write {}: {e}", p.display());
            std::process::exit(1);
        }
    }
    shutdown_signal().await;
    drop(server);
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
