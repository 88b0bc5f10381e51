//! The HTTP client: one rate budget for the whole process, retries within a
//! time budget, and the only place that ever touches the API key.
//!
//! - One governor limiter at `requests_per_minute`, burst 1: requests are
//!   spaced evenly, so no 60-second rolling window ever holds more than the
//!   configured number (a burst allowance would let two windows' worth land
//!   in one).
//! - `X-RateLimit-Remaining` running low (another client of the same project
//!   is spending the shared budget) and `429` responses pause every stream:
//!   the limit is per project, so one stream's 429 is everyone's.
//! - 5xx, 408, timeouts, resets and 200s whose body is not the documented
//!   JSON are retried with exponential backoff and full jitter, until the
//!   retry budget (a duration, per request) runs out.
//! - Until the process has had any HTTP response, a failure to connect (a
//!   refused connection, an unknown host, a TLS failure) is almost always a
//!   wrong `api_url`: it gets a couple of quick retries, not the budget.

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, DATE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::{watch, Mutex, Notify, OwnedSemaphorePermit, Semaphore};

use crate::assumptions::Learned;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::{self, StreamStats};
use crate::pool::Pool;

/// Responses larger than this are refused rather than buffered: a page of
/// 10,000 messages is a few tens of megabytes; hundreds of MB is a broken
/// proxy or a runaway field, and holding it would defeat the memory bound.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Idle connections kept for reuse.
const MAX_IDLE_CONNECTIONS: usize = 8;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// With no `Retry-After`, a 429 waits at least this long: the window is 60 s,
/// and hammering it only delays the moment a slot frees.
const RATE_LIMIT_MIN_WAIT: Duration = Duration::from_secs(2);
/// At most one retry in this long is logged as a warning; the others at
/// debug level (`RUST_LOG=debug` shows each).
const RETRY_WARNING_EVERY: Duration = Duration::from_secs(30);
/// Before any response: attempts, and the time they may take, for a
/// request that cannot connect (see `Client::answered`).
const FIRST_CONTACT_ATTEMPTS: u32 = 3;
const FIRST_CONTACT_BUDGET: Duration = Duration::from_secs(10);

/// Why a request did not produce a page.
#[derive(Debug)]
pub enum FetchError {
    /// 404: for a child (a survey deleted mid-sync) the caller skips it; an
    /// optional stream's listing (a feature the project's plan lacks) is
    /// skipped; on any other stream it means a wrong `api_url`.
    NotFound,
    /// 403: on an optional stream, a feature the project's plan lacks (the
    /// stream is skipped); on any other, the credentials are refused. The
    /// text is the credentials message (it never holds the key).
    Forbidden(String),
    /// 400 or 422: the server refused a parameter. The pager finds out which
    /// (`pager/probe.rs`) and asks without it; the text is the body's start.
    BadRequest(String),
    /// What the server showed invalidates the walk's strategy (a sort or a
    /// filter found not to hold): the walk starts again from its last safe
    /// point with another one. Never leaves the pager.
    Replan,
    /// Stop the sync with this error.
    Fatal(Error),
    /// SIGINT/SIGTERM arrived while waiting.
    Cancelled,
}

/// A cancellation signal shared by every task (set on SIGINT/SIGTERM, or
/// when the target closes stdout).
#[derive(Clone)]
pub struct Cancel(watch::Receiver<bool>);

impl Cancel {
    pub fn new() -> (watch::Sender<bool>, Cancel) {
        let (tx, rx) = watch::channel(false);
        (tx, Cancel(rx))
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone: nobody can cancel any more.
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleeps, unless cancelled first. Returns false when cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.cancelled() => false,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    limiter: DefaultDirectRateLimiter,
    /// Milliseconds since `epoch` before which no request may start (429s, low remaining).
    hold_until_ms: AtomicU64,
    epoch: Instant,
    retry_budget: Duration,
    cancel: Cancel,
    /// Serialises the slow-down decision so concurrent responses do not stack pauses.
    hold_lock: Mutex<()>,
    /// The first and the latest `Date` header seen (epoch ms): the API's own
    /// clock, which stamps `updatedAt`, as opposed to this machine's.
    server_first_date_ms: AtomicI64,
    server_date_ms: AtomicI64,
    /// Body buffers, reused from response to response.
    bodies: Pool,
    /// What this run has learned about the server (`assumptions.rs`).
    learned: Learned,
    /// Round trip of a page (request to last body byte), microseconds, a
    /// moving average: how many requests must be in flight to keep up with
    /// the rate budget.
    latency_us: AtomicU64,
    /// Time a page takes to conform, microseconds, a moving average.
    parse_us: AtomicU64,
    requests_per_minute: u32,
    /// Requests under way, and how many may be: unlimited (the limiter
    /// spaces them) until a 429 shows the project's budget is being spent
    /// by others too; then halved, and grown back by one after as many
    /// successes as it allows (additive increase, multiplicative decrease).
    in_flight: AtomicUsize,
    /// The most requests that were in flight at once.
    most_in_flight: AtomicUsize,
    allowed: AtomicUsize,
    successes: AtomicUsize,
    slot_freed: Notify,
    /// Whether any HTTP response (of any status) has arrived: until then a
    /// failure to connect is most likely a wrong `api_url`, and fails fast.
    answered: AtomicBool,
    /// Told when `answered` is first set.
    first_answer: Notify,
    /// Whether a retry before any answer was reported: once per run, as the
    /// streams all meet the same silent host.
    warned_first_contact: AtomicBool,
    /// Whether any request has been served: a 2xx whose body parsed. Until
    /// then, a stream that runs out of retries meets what every stream
    /// meets (`sync.rs` says it once, when the run ends).
    served: AtomicBool,
    /// When a retry was last logged as a warning (ms since `epoch`, plus
    /// one; 0: never): an outage makes every request in flight retry, and
    /// one line in `RETRY_WARNING_EVERY` says it.
    retry_warned_ms: AtomicU64,
    /// `api_url`'s host (and port), for the message when nothing answers.
    host: String,
}

/// Why a request did not get its turn.
enum Turn {
    Cancelled,
    /// Every request is paused this much longer, past the request's budget.
    Past(Duration),
}

/// Past this many, requests in flight are no longer counted against a limit.
const UNLIMITED_FROM: usize = 64;

/// A request's place among those in flight, given back when dropped.
struct Slot<'a>(&'a Client);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.slot_freed.notify_one();
    }
}

impl Client {
    pub fn new(config: &Config, cancel: Cancel) -> Result<Arc<Client>, Error> {
        // reqwest is built without a default crypto provider, so that only
        // ring (no C toolchain, no OpenSSL) is compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose()))
            .map_err(|_| {
                Error::Config(
                    "\"api_key\" contains characters that cannot be sent in an HTTP header".into(),
                )
            })?;
        // Marks the header so that HTTP-level debug logging never prints it.
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            "Project",
            HeaderValue::from_str(&config.project_id).map_err(|_| {
                Error::Config(
                    "\"project_id\" contains characters that cannot be sent in an HTTP header"
                        .into(),
                )
            })?,
        );
        let mut http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("tap-gleap/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(15)))
            .pool_idle_timeout(Duration::from_secs(60))
            // Each connection keeps its read buffer (up to ~400 KB): the few
            // the budget keeps busy are enough to hold on to.
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .gzip(true);
        let plain_http = url::Url::parse(&config.api_url).is_ok_and(|u| u.scheme() == "http");
        if plain_http {
            // No TLS to set up (plain http is allowed to loopback, or on
            // purpose): skip loading the system's root certificates, a third
            // of the CPU of a short sync (~3 ms of reading and parsing PEM).
            // A redirect to https would then fail: the answer is an https
            // api_url, which keeps the key off the wire in the first place.
            http = http.tls_certs_only(std::iter::empty());
        }
        let http = http
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        let per_request =
            Duration::from_secs_f64(60.0 / f64::from(config.requests_per_minute.max(1)));
        let quota = Quota::with_period(per_request)
            .expect("period is positive")
            .allow_burst(NonZeroU32::MIN);
        Ok(Arc::new(Client {
            http,
            base: config.api_url.clone(),
            limiter: RateLimiter::direct(quota),
            hold_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            retry_budget: config.retry_budget,
            cancel,
            hold_lock: Mutex::new(()),
            server_first_date_ms: AtomicI64::new(i64::MIN),
            server_date_ms: AtomicI64::new(i64::MIN),
            // One spare: taken and given back within `get`, so buffers
            // beyond those in flight stay idle; each costs a page of memory.
            bodies: Pool::new(1),
            learned: Learned::new(),
            latency_us: AtomicU64::new(0),
            parse_us: AtomicU64::new(0),
            requests_per_minute: config.requests_per_minute.max(1),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            allowed: AtomicUsize::new(usize::MAX),
            successes: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            answered: AtomicBool::new(false),
            first_answer: Notify::new(),
            warned_first_contact: AtomicBool::new(false),
            served: AtomicBool::new(false),
            retry_warned_ms: AtomicU64::new(0),
            host: host_of(&config.api_url),
        }))
    }

    /// Waits until one more request may be in flight.
    async fn slot(&self) -> Result<Slot<'_>, FetchError> {
        loop {
            let freed = self.slot_freed.notified();
            let n = self.in_flight.load(Ordering::Relaxed);
            if n < self.allowed.load(Ordering::Relaxed) {
                if self
                    .in_flight
                    .compare_exchange(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    self.most_in_flight.fetch_max(n + 1, Ordering::Relaxed);
                    return Ok(Slot(self));
                }
                continue;
            }
            tokio::select! {
                _ = freed => {}
                _ = self.cancel.cancelled() => return Err(FetchError::Cancelled),
            }
        }
    }

    fn note_rate_limited(&self) {
        let n = self.in_flight.load(Ordering::Relaxed);
        let halved = (n / 2).max(1);
        self.allowed.fetch_min(halved, Ordering::Relaxed);
        self.successes.store(0, Ordering::Relaxed);
    }

    fn note_success(&self) {
        let allowed = self.allowed.load(Ordering::Relaxed);
        if allowed == usize::MAX {
            return;
        }
        if self.successes.fetch_add(1, Ordering::Relaxed) + 1 >= allowed {
            self.successes.store(0, Ordering::Relaxed);
            let grown = if allowed + 1 >= UNLIMITED_FROM {
                usize::MAX
            } else {
                allowed + 1
            };
            let _ =
                self.allowed
                    .compare_exchange(allowed, grown, Ordering::Relaxed, Ordering::Relaxed);
            self.slot_freed.notify_waiters();
        }
    }

    pub fn learned(&self) -> &Learned {
        &self.learned
    }

    /// Requests per second the budget allows.
    pub fn rate_per_second(&self) -> f64 {
        f64::from(self.requests_per_minute) / 60.0
    }

    /// The average round trip of a page so far, if any was measured.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The most requests that were in flight at once so far.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::Relaxed)
    }

    /// Pages a second this process can read and conform, by the time the
    /// last pages took on its one worker thread (`None` before any).
    pub fn pages_per_second(&self) -> Option<f64> {
        match self.parse_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(1e6 / us as f64),
        }
    }

    fn note_parse(&self, took: Duration) {
        let us = took.as_micros().clamp(1, u64::MAX as u128) as u64;
        let _ = self
            .parse_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { us } else { old - old / 8 + us / 8 })
            });
    }

    fn note_latency(&self, took: Duration) {
        let us = took.as_micros().clamp(1, u64::MAX as u128) as u64;
        // An average over about the last eight pages.
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { us } else { old - old / 8 + us / 8 })
            });
    }

    /// GETs `path?query` and hands the body to `parse`, retrying (within the
    /// retry budget) anything transient, including a body `parse` rejects.
    pub async fn get<T>(
        &self,
        stats: &StreamStats,
        path: &str,
        query: &str,
        parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Result<T, FetchError> {
        self.get_held(stats, path, query, None, parse)
            .await
            .map(|(v, _)| v)
    }

    /// [`Client::get`], holding a permit of `pages` from the moment the
    /// answer's headers arrive: a page's body and its conformed lines are
    /// the tap's memory, and the permit, handed back with the value, is
    /// kept until they are passed on. Waiting for an answer holds none.
    pub async fn get_held<T>(
        &self,
        stats: &StreamStats,
        path: &str,
        query: &str,
        pages: Option<&Arc<Semaphore>>,
        mut parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Result<(T, Option<OwnedSemaphorePermit>), FetchError> {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let first_try = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let mut slot = Some(self.slot().await?);
            // A pause every request shares (the API's 429s) counts against
            // this request's budget too: with `Retry-After: 60` and a budget
            // of 10 s, each stream would otherwise wait a minute for a turn
            // that can only fail.
            match self.wait_turn(Some(first_try + self.retry_budget)).await {
                Ok(()) => {}
                Err(Turn::Cancelled) => return Err(FetchError::Cancelled),
                Err(Turn::Past(pause)) => {
                    return Err(FetchError::Fatal(Error::Api(format!(
                        "GET {path} not sent: the API's rate limit pauses every request for {:.1}s more (HTTP 429), past the retry budget of {}s (\"retry_budget_seconds\"). The bookmarks in the last STATE are safe to resume from",
                        pause.as_secs_f64(),
                        self.retry_budget.as_secs()
                    ))))
                }
            }
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            tracing::debug!(stream = stats.stream, "GET {path}?{query}");
            let outcome = self.http.get(&url).send().await;
            // Set when nothing has answered yet and this request could not connect.
            let mut first_contact = false;
            let (wait, why) = match outcome {
                Err(e) => {
                    first_contact = e.is_connect() && !self.answered.load(Ordering::Relaxed);
                    (None, describe_reqwest_error(&e))
                }
                Ok(resp) => {
                    self.note_answer(resp.headers());
                    let status = resp.status();
                    if status.is_success() {
                        self.learned.note_headers(
                            resp.headers().contains_key(DATE),
                            resp.headers().contains_key("x-ratelimit-remaining"),
                        );
                    }
                    self.note_remaining(resp.headers()).await;
                    let retry_after = parse_retry_after(resp.headers().get(RETRY_AFTER));
                    match status {
                        s if s.is_success() => {
                            match read_body(resp, self.bodies.take(), pages).await {
                                Ok((body, permit)) => {
                                    metrics::http_timer(
                                        stats.stream,
                                        path,
                                        status.as_u16(),
                                        started.elapsed(),
                                    );
                                    self.note_latency(started.elapsed());
                                    stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                                    slot.take();
                                    self.note_success();
                                    let parsing = Instant::now();
                                    let parsed = parse(&text(&body));
                                    self.note_parse(parsing.elapsed());
                                    self.bodies.give(body);
                                    match parsed {
                                    Ok(v) => {
                                        self.served.store(true, Ordering::Relaxed);
                                        return Ok((v, permit));
                                    }
                                    Err(e) => (None, format!("HTTP {} with a body that is not the documented JSON ({e})", status.as_u16())),
                                }
                                }
                                Err(e) => (None, e),
                            }
                        }
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            metrics::http_timer(
                                stats.stream,
                                path,
                                status.as_u16(),
                                started.elapsed(),
                            );
                            let body = read_body(resp, Vec::new(), None)
                                .await
                                .map(|(b, _)| b)
                                .unwrap_or_default();
                            let why = refused_credentials(status.as_u16(), path, &text(&body));
                            // A 403 may be a feature the project's plan
                            // lacks: the stream decides (`sync.rs`).
                            return Err(if status == StatusCode::FORBIDDEN {
                                FetchError::Forbidden(why)
                            } else {
                                FetchError::Fatal(Error::Auth(why))
                            });
                        }
                        StatusCode::NOT_FOUND => {
                            metrics::http_timer(stats.stream, path, 404, started.elapsed());
                            return Err(FetchError::NotFound);
                        }
                        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                            metrics::http_timer(
                                stats.stream,
                                path,
                                status.as_u16(),
                                started.elapsed(),
                            );
                            let body = read_body(resp, Vec::new(), None)
                                .await
                                .map(|(b, _)| b)
                                .unwrap_or_default();
                            return Err(FetchError::BadRequest(format!(
                                "HTTP {} for GET {path}?{query}: {}",
                                status.as_u16(),
                                excerpt(&text(&body))
                            )));
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            metrics::http_timer(stats.stream, path, 429, started.elapsed());
                            self.learned.note_retry_after(retry_after.is_some());
                            self.note_rate_limited();
                            stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                            // `Retry-After: 0` means "soon", not a tight loop.
                            let wait = retry_after.map_or_else(
                                || backoff(attempt).max(RATE_LIMIT_MIN_WAIT),
                                |ra| ra.max(BACKOFF_BASE),
                            );
                            // The limit is per project: every stream pauses.
                            self.hold_for(wait);
                            (Some(wait), "HTTP 429 Too Many Requests".to_string())
                        }
                        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                            metrics::http_timer(stats.stream, path, s.as_u16(), started.elapsed());
                            let wait = backoff(attempt).max(retry_after.unwrap_or_default());
                            (Some(wait), format!("HTTP {}", s.as_u16()))
                        }
                        s => {
                            metrics::http_timer(stats.stream, path, s.as_u16(), started.elapsed());
                            let body = read_body(resp, Vec::new(), None)
                                .await
                                .map(|(b, _)| b)
                                .unwrap_or_default();
                            return Err(FetchError::Fatal(Error::Api(format!(
                                "HTTP {} for GET {path}?{query}: {}",
                                s.as_u16(),
                                excerpt(&text(&body))
                            ))));
                        }
                    }
                }
            };
            slot.take();
            let wait = wait.unwrap_or_else(|| backoff(attempt));
            if first_contact
                && (attempt + 1 >= FIRST_CONTACT_ATTEMPTS
                    || first_try.elapsed() + wait > self.retry_budget.min(FIRST_CONTACT_BUDGET))
            {
                return Err(FetchError::Fatal(Error::Api(format!(
                    "cannot reach {} (the host of \"api_url\"): {why}; {} attempts over {:.1}s and nothing has answered yet: check \"api_url\" (scheme, host, port, path) and that this machine can reach it (DNS, proxy, firewall)",
                    self.host,
                    attempt + 1,
                    first_try.elapsed().as_secs_f64()
                ))));
            }
            if first_try.elapsed() + wait > self.retry_budget {
                return Err(FetchError::Fatal(Error::Api(format!(
                    "GET {path} still failing after {} attempts over {:.1}s ({why}); stopped because the next retry, in {:.1}s, would pass the retry budget of {}s (\"retry_budget_seconds\"). The bookmarks in the last STATE are safe to resume from",
                    attempt + 1,
                    first_try.elapsed().as_secs_f64(),
                    wait.as_secs_f64(),
                    self.retry_budget.as_secs()
                ))));
            }
            attempt += 1;
            stats.retries.fetch_add(1, Ordering::Relaxed);
            if !first_contact && self.retry_warning_due() {
                tracing::warn!(
                    stream = stats.stream,
                    "GET {path}: {why}; retry {attempt} in {:.1}s (other retries within {}s are logged at debug level)",
                    wait.as_secs_f64(),
                    RETRY_WARNING_EVERY.as_secs()
                );
            } else if first_contact && !self.warned_first_contact.swap(true, Ordering::Relaxed) {
                // Every stream meets the same silent host: one line for the
                // run, and the error names it if it stays silent.
                tracing::warn!(
                    "nothing has answered at {} (the host of \"api_url\") yet: {why}; trying again, {FIRST_CONTACT_ATTEMPTS} attempts in all",
                    self.host
                );
            } else {
                tracing::debug!(
                    stream = stats.stream,
                    "GET {path}: {why}; retry {attempt} in {:.1}s",
                    wait.as_secs_f64()
                );
            }
            if !self.cancel.sleep(wait).await {
                return Err(FetchError::Cancelled);
            }
        }
    }

    /// Whether a retry may be logged as a warning now (see
    /// `RETRY_WARNING_EVERY`); if so, the next one may not for a while.
    fn retry_warning_due(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let every = RETRY_WARNING_EVERY.as_millis() as u64;
        self.retry_warned_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                (last == 0 || now >= last + every).then_some(now)
            })
            .is_ok()
    }

    /// Whether any request has been served (a 2xx whose body parsed).
    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether any HTTP response (of any status) has arrived yet.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// One request, never retried, for its `Date` header alone: the API's
    /// clock, best effort. `None` when it failed or carried none.
    pub async fn server_date_now(&self, stats: &StreamStats, path: &str) -> Option<i64> {
        let _slot = self.slot().await.ok()?;
        self.wait_turn(None).await.ok()?;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}?limit=1", self.base);
        let resp = self.http.get(&url).send().await.ok()?;
        self.note_answer(resp.headers());
        self.note_remaining(resp.headers()).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        resp.headers().get(DATE)?;
        self.server_date_ms()
    }

    /// The API's clock as of the latest response: a moment no later than its
    /// "now". `None` before any response carried a `Date` header.
    pub fn server_date_ms(&self) -> Option<i64> {
        Some(self.server_date_ms.load(Ordering::Relaxed)).filter(|&ms| ms != i64::MIN)
    }

    /// The API's clock at the first response of this process.
    pub fn server_first_date_ms(&self) -> Option<i64> {
        Some(self.server_first_date_ms.load(Ordering::Relaxed)).filter(|&ms| ms != i64::MIN)
    }

    /// A response arrived: its `Date`, then that the API has answered.
    fn note_answer(&self, headers: &HeaderMap) {
        self.note_server_date(headers);
        if !self.answered.swap(true, Ordering::AcqRel) {
            self.first_answer.notify_waiters();
        }
    }

    /// Returns once any response (of any status) has arrived; its `Date`,
    /// if it had one, is then [`Client::server_first_date_ms`].
    pub async fn first_answer(&self) {
        loop {
            // Registered before the check: a response in between still wakes it.
            let answered = self.first_answer.notified();
            if self.answered.load(Ordering::Acquire) {
                return;
            }
            answered.await;
        }
    }

    fn note_server_date(&self, headers: &HeaderMap) {
        let date = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(ms) = date
            .and_then(|d| d.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
        {
            let _ = self.server_first_date_ms.compare_exchange(
                i64::MIN,
                ms,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            self.server_date_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Waits for any global pause, then for the rate limiter. A pause
    /// (429s, a low `X-RateLimit-Remaining`) that would end after
    /// `deadline` is not waited out: `Err(Turn::Past(pause))`.
    async fn wait_turn(&self, deadline: Option<Instant>) -> Result<(), Turn> {
        loop {
            let hold = self.hold_until_ms.load(Ordering::Relaxed);
            let now = self.epoch.elapsed().as_millis() as u64;
            if hold <= now {
                break;
            }
            let pause = Duration::from_millis(hold - now);
            if deadline.is_some_and(|d| Instant::now() + pause > d) {
                return Err(Turn::Past(pause));
            }
            if !self.cancel.sleep(pause).await {
                return Err(Turn::Cancelled);
            }
        }
        // Cancellation first: a turn that comes with SIGTERM is not taken.
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Turn::Cancelled),
            _ = self.limiter.until_ready() => Ok(()),
        }
    }

    fn hold_for(&self, d: Duration) {
        let until = self.epoch.elapsed().as_millis() as u64 + d.as_millis() as u64;
        self.hold_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// When the project's shared budget runs low (another integration is
    /// using it too), spread the remaining requests over the rest of the
    /// window instead of running into a 429.
    async fn note_remaining(&self, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), Some(limit)) =
            (num("x-ratelimit-remaining"), num("x-ratelimit-limit"))
        else {
            return;
        };
        let low_water = (limit / 20).max(2);
        if remaining >= low_water || limit == 0 {
            return;
        }
        let _guard = self.hold_lock.lock().await;
        // At zero, wait a twentieth of the window; above, proportionally less.
        let pause = Duration::from_millis(60_000 / 20 * (low_water - remaining) / low_water);
        tracing::debug!(
            "rate limit low ({remaining}/{limit} left): pausing {}ms",
            pause.as_millis()
        );
        self.hold_for(pause);
    }
}

/// The line for refused credentials: names the setting to fix. Gleap's
/// refusal body is not documented, and only this line rests on it: when
/// it names a project, `project_id`; a key or a token, `api_key`;
/// neither or both (a bare `Unauthorized`), the two settings.
fn refused_credentials(status: u16, path: &str, body: &str) -> String {
    let body = body.to_ascii_lowercase();
    let project = body.contains("project");
    let key = ["key", "token", "jwt", "expired", "signature"]
        .iter()
        .any(|w| body.contains(w));
    let what = match (key, project) {
        (true, false) => "the \"api_key\" setting (Project Settings > Security > API Key in Gleap)",
        (false, true) => "the \"project_id\" setting (the key is for another project, or the id is mistyped)",
        _ => "the \"api_key\" and \"project_id\" settings (Project Settings > Security > API Key in Gleap)",
    };
    format!("the API answered {status} for {path}: check {what}")
}

/// The one line for endpoints every plan has answering 404 (`first`, and
/// `others` more, optional ones included): the API is not under `api_url`,
/// whatever the optional streams' 404s could otherwise mean.
pub fn not_found_at_api_url(first: &str, others: usize, api_url: &str) -> Error {
    let others = match others {
        0 => String::new(),
        1 => ", and so did 1 other endpoint".to_string(),
        n => format!(", and so did {n} other endpoints"),
    };
    Error::Api(format!(
        "GET {first} answered 404{others}: an endpoint every Gleap plan has is not at {} (the host of \"api_url\") under that path: check \"api_url\", most likely its path (Gleap's is {})",
        host_of(api_url),
        crate::config::DEFAULT_API_URL
    ))
}

/// `api_url`'s host and port, for messages: never its user, password or path.
pub fn host_of(api_url: &str) -> String {
    url::Url::parse(api_url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "?".into())
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped at 60 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let jittered =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(jittered)
}

/// `Retry-After` as seconds or as an HTTP date; anything else is ignored.
fn parse_retry_after(v: Option<&HeaderValue>) -> Option<Duration> {
    let s = v?.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// Reads the whole body into `buf` (empty, perhaps with capacity to spare).
async fn read_body(
    mut resp: reqwest::Response,
    mut buf: Vec<u8>,
    pages: Option<&Arc<Semaphore>>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), String> {
    let permit = match pages {
        Some(p) => Some(
            p.clone()
                .acquire_owned()
                .await
                .map_err(|_| "the page budget is closed".to_string())?,
        ),
        None => None,
    };
    let expected = resp.content_length().unwrap_or(64 * 1024);
    // Exact: a reused buffer must not double past what the page needs.
    buf.reserve_exact(expected.min(MAX_BODY_BYTES as u64) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(format!(
                        "response body larger than {} MiB",
                        MAX_BODY_BYTES >> 20
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "connection broke while reading the body ({})",
                    describe_reqwest_error(&e)
                ))
            }
        }
    }
    Ok((buf, permit))
}

/// A body as text, borrowed when it is valid UTF-8. Bytes that are not
/// become U+FFFD rather than failing the page. The check is SIMD
/// (simdutf8): several times faster than `std`'s on a page.
fn text(body: &[u8]) -> Cow<'_, str> {
    match simdutf8::basic::from_utf8(body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            tracing::warn!("response body is not valid UTF-8: invalid bytes replaced with U+FFFD");
            String::from_utf8_lossy(body)
        }
    }
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which holds no secret (the key
    // travels in a header); the kind is what a reader needs.
    let kind = if e.is_timeout() {
        "request timed out (\"request_timeout_seconds\")"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "response body broken"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// The start of an error body, on one line, for error messages.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.trim().is_empty() {
        "(empty body)".into()
    } else {
        one_line.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("7"))),
            Some(Duration::from_secs(7))
        );
        // An HTTP date is whole seconds: 30 s from `written`, floored, is
        // 29 to 30 s from then; parsed `spent` later, that much less.
        let written = SystemTime::now();
        let later = httpdate::fmt_http_date(written + Duration::from_secs(30));
        let d = parse_retry_after(Some(&HeaderValue::from_str(&later).unwrap())).unwrap();
        let spent = written.elapsed().unwrap_or_default();
        assert!(
            d <= Duration::from_secs(30)
                && d + spent + Duration::from_millis(10) >= Duration::from_secs(29),
            "{d:?}, {spent:?} after"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_str(&past).unwrap())),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("soon"))),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let ceiling = BACKOFF_BASE
                .saturating_mul(1u32 << attempt.min(16))
                .min(BACKOFF_CAP);
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
    }
}
