//! What the HTTP side and the `/_fake` control plane share: the server's
//! state (`Shared`), its counters (`Stats`), and the plain responses both
//! build (`json_error`, `respond`). Its own file so that `http.rs`, which
//! routes `/_fake` requests to `control.rs`, and `control.rs`, which reads
//! and changes this state, do not import each other.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use parking_lot::Mutex;
use serde::Serialize;

use crate::config::{FakeConfig, Faults, RateLimit, Stream};
use crate::data::Gen;
use crate::render::Json;
use crate::store::Store;

/// Counters of what the fake has seen, for tests and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// API requests (`/v3/...`), whatever their outcome.
    pub requests: u64,
    /// API requests per path (query string left out).
    pub by_path: BTreeMap<String, u64>,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Injected faults per kind name (`Fault::name`).
    pub faults: BTreeMap<String, u64>,
    pub auth_failures: u64,
    /// Most requests admitted within any one rate-limit window.
    pub max_in_window: u32,
}

/// Settings that can change while the server runs.
pub(crate) struct Dynamic {
    pub faults: Faults,
    pub rate_limit: Option<RateLimit>,
    pub latency: Duration,
}

pub(crate) struct Shared {
    pub cfg: FakeConfig,
    pub gen: Gen,
    pub store: Mutex<Store>,
    pub dynamic: Mutex<Dynamic>,
    /// Admission times of requests in the current rolling window.
    pub window: Mutex<VecDeque<Instant>>,
    pub stats: Mutex<Stats>,
    /// Sequence number of admitted API requests (drives faults, mutations).
    pub seq: AtomicU64,
    /// Bodies of recent list requests by path and query (`FakeConfig::list_cache`).
    pub list_cache: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

impl Shared {
    pub fn new(cfg: FakeConfig) -> Self {
        let gen = Gen::new(&cfg);
        let mut store = Store::new(&gen);
        store.clock_offset_ms = cfg.clock_offset_ms;
        if !cfg.index_lag.is_zero() {
            store.lag_lists(&gen, cfg.index_lag);
        }
        Shared {
            dynamic: Mutex::new(Dynamic {
                faults: cfg.faults.clone(),
                rate_limit: cfg.rate_limit.clone(),
                latency: cfg.latency,
            }),
            cfg,
            gen,
            store: Mutex::new(store),
            window: Mutex::new(VecDeque::new()),
            stats: Mutex::new(Stats::default()),
            seq: AtomicU64::new(0),
            list_cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Shared {
    /// What a client can reach of `stream` (see `Store::snapshot`): nothing
    /// of a feature the plan lacks, nor of a child of one.
    pub fn snapshot(&self, stream: Stream) -> Vec<crate::store::RecordRef> {
        let cfg = &self.cfg;
        if cfg.is_missing(stream) || stream.parent().is_some_and(|p| cfg.is_missing(p)) {
            return Vec::new();
        }
        self.store.lock().snapshot(&self.gen, stream)
    }
}

pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    let mut w = Json::with_capacity(80);
    w.begin_obj();
    w.key("statusCode");
    w.u64(status.as_u16() as u64);
    w.key("message");
    w.str(message);
    w.end_obj();
    respond(status, "application/json; charset=utf-8", w.into_bytes())
}

pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
