//! `fake-gleap`: a faithful fake of the Gleap REST API (v3), like
//! stripe-mock for Stripe. The Singer tap `tap-gleap` is tested, benchmarked
//! and demonstrated against it.
//!
//! Records are generated on the fly from (seed, stream, index), so millions
//! of records cost no memory; a small overlay holds run-time updates,
//! creations and deletions. Behaviours the API docs leave unknown (archived
//! default, responses shape, tie order, Retry-After, ...) are config switches.
//!
//! Modules: `config` (settings), `data` (generation), `render` (JSON writer),
//! `query` (raw query parsing), `store` (overlay and listing), `http`
//! (router, auth, rate limit, faults), `control` (`/_fake` control plane),
//! `shared` (the server state and error responses those two share),
//! `modes` (named deviations from the default, for test matrices).

mod config;
mod control;
mod data;
mod http;
mod modes;
mod query;
mod rawio;
mod render;
mod shared;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    ArchivedDefault, EncodedOperators, ErrorBody, FakeConfig, Fault, Faults, IdRangeFilters,
    MutateEvery, OverLimit, RateLimit, ResponsesShape, RetryAfter, Stream, TieOrder, TimeShape,
    UndocumentedSort,
};
pub use modes::{apply_modes, mode, ServerMode, MODES};
pub use shared::Stats;
pub use store::RecordRef;

use shared::Shared;

/// A running fake server. The server stops when this is dropped.
pub struct FakeGleap {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Stop,
}

enum Stop {
    /// Served by a task of the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// Served by its own runtime on its own thread (`start_blocking`).
    Thread {
        tx: Option<tokio::sync::oneshot::Sender<()>>,
        handle: Option<std::thread::JoinHandle<()>>,
    },
}

impl Drop for FakeGleap {
    fn drop(&mut self) {
        match &mut self.stop {
            Stop::Task(h) => h.abort(),
            Stop::Thread { tx, handle } => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
                if let Some(h) = handle.take() {
                    let _ = h.join();
                }
            }
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let date_header = shared.cfg.date_header;
    let app = http::router(shared);
    // Not graceful: a shutdown must not wait for keep-alive clients or hangs.
    if date_header {
        tokio::select! {
            r = axum::serve(rawio::RawListener(listener), app) => { if let Err(e) = r { eprintln!("fake-gleap: server error: {e}"); } }
            _ = shutdown => {}
        }
    } else {
        tokio::select! {
            _ = serve_without_date(listener, app) => {}
            _ = shutdown => {}
        }
    }
}

/// Like `axum::serve` (HTTP/1.1, one task per connection), but with hyper's
/// automatic `Date` header turned off (`FakeConfig::date_header`).
async fn serve_without_date(listener: tokio::net::TcpListener, app: axum::Router) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // As axum::serve: transient (e.g. out of file descriptors).
                eprintln!("fake-gleap: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(rawio::RawTargets::new(stream)), svc)
                .await;
        });
    }
}

/// Starts the fake on 127.0.0.1 with an OS-assigned port, served by a task
/// of the current tokio runtime.
pub async fn start(config: FakeConfig) -> std::io::Result<FakeGleap> {
    start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Like [`start`] but on the given address (port 0 = any).
pub async fn start_on(config: FakeConfig, addr: SocketAddr) -> std::io::Result<FakeGleap> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config));
    let task = tokio::spawn(serve(listener, shared.clone(), std::future::pending()));
    Ok(FakeGleap {
        shared,
        addr,
        stop: Stop::Task(task),
    })
}

/// Starts the fake on its own runtime and thread, for synchronous tests.
pub fn start_blocking(config: FakeConfig) -> std::io::Result<FakeGleap> {
    start_blocking_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Like [`start_blocking`] but on the given address (port 0 = any).
pub fn start_blocking_on(config: FakeConfig, addr: SocketAddr) -> std::io::Result<FakeGleap> {
    let shared = Arc::new(Shared::new(config));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
    let sh = shared.clone();
    let handle = std::thread::Builder::new()
        .name("fake-gleap".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("fake-gleap-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(addr).await.and_then(|l| {
                    let a = l.local_addr()?;
                    Ok((l, a))
                }) {
                    Ok((l, a)) => {
                        let _ = ready_tx.send(Ok(a));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(listener, sh, async {
                    let _ = rx.await;
                })
                .await;
            });
            // Dropping the runtime cancels connection tasks (and hangs).
            rt.shutdown_timeout(Duration::from_millis(100));
        })?;
    let addr = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("fake-gleap thread died"))??;
    Ok(FakeGleap {
        shared,
        addr,
        stop: Stop::Thread {
            tx: Some(tx),
            handle: Some(handle),
        },
    })
}

impl FakeGleap {
    /// Base URL including the API version, e.g. `http://127.0.0.1:40123/v3`.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.cfg
    }

    /// `n` random live records get updatedAt = now (ms, never below the
    /// highest updatedAt issued so far, each one later than the previous).
    pub fn update(&self, stream: Stream, n: u64) -> Vec<String> {
        self.shared
            .store
            .lock()
            .update(&self.shared.gen, stream, n, false)
    }

    /// `n` random live records all get the same new updatedAt.
    pub fn bulk_update(&self, stream: Stream, n: u64) -> Vec<String> {
        self.shared
            .store
            .lock()
            .update(&self.shared.gen, stream, n, true)
    }

    /// Creates `n` records, with ids greater than all existing ids.
    pub fn create(&self, stream: Stream, n: u64) -> Vec<String> {
        self.shared.store.lock().create(&self.shared.gen, stream, n)
    }

    /// Deletes `n` random live records.
    pub fn delete(&self, stream: Stream, n: u64) -> Vec<String> {
        self.shared.store.lock().delete(&self.shared.gen, stream, n)
    }

    /// Deletes a survey by id: its responses endpoint then answers 404.
    pub fn delete_survey(&self, id: &str) {
        self.shared
            .store
            .lock()
            .delete_id(&self.shared.gen, Stream::Surveys, id);
    }

    /// Deletes one record by id; false if there is no such live record.
    /// Gives the record with this id a new updatedAt (now, on the API's clock).
    pub fn update_id(&self, stream: Stream, id: &str) -> bool {
        self.shared
            .store
            .lock()
            .update_id(&self.shared.gen, stream, id)
    }

    pub fn delete_id(&self, stream: Stream, id: &str) -> bool {
        self.shared
            .store
            .lock()
            .delete_id(&self.shared.gen, stream, id)
    }

    /// Every record the API currently holds (all tickets, archived and spam
    /// included), sorted by id: what a client can reach. A feature the
    /// project's plan lacks (`FakeConfig::missing_features`) holds nothing.
    pub fn snapshot(&self, stream: Stream) -> Vec<RecordRef> {
        self.shared.snapshot(stream)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock() = Stats::default();
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.dynamic.lock().faults = faults;
    }

    pub fn set_rate_limit(&self, rl: Option<RateLimit>) {
        self.shared.dynamic.lock().rate_limit = rl;
        self.shared.window.lock().clear();
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared.dynamic.lock().latency = d;
    }
}

/// Renders a raw API response body (no HTTP), e.g. for benchmarks of the
/// generator itself. `path` like `/v3/tickets`, `query` the raw query string.
pub fn render_body(config: &FakeConfig, path: &str, query: &str) -> Result<Vec<u8>, u16> {
    let sh = Shared::new(config.clone());
    http::route_public(&sh, path, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page of every stream is valid JSON (odd records included), and
    /// the same seed renders the same bytes.
    #[test]
    fn every_page_is_valid_json_and_deterministic() {
        for odd in [false, true] {
            let cfg = FakeConfig {
                tickets: 3000,
                sessions: 1500,
                messages: 2500,
                teams: 12,
                surveys: 7,
                responses_per_survey: 30,
                message_templates: 9,
                odd_records: odd,
                archived_default: ArchivedDefault::Include,
                ..FakeConfig::default()
            };
            let sh = Shared::new(cfg.clone());
            let sh2 = Shared::new(cfg.clone());
            let mut pages: Vec<(String, String)> = Vec::new();
            for (p, n) in [
                ("/v3/tickets", 3000u64),
                ("/v3/sessions", 1500),
                ("/v3/messages", 2500),
            ] {
                for skip in (0..n).step_by(1000) {
                    pages.push((p.into(), format!("limit=1000&skip={skip}")));
                }
            }
            for st in Stream::ALL.into_iter().filter(|s| s.is_small_list()) {
                pages.push((format!("/v3{}", st.path().unwrap()), String::new()));
            }
            for child in Stream::ALL {
                let (Some((prefix, suffix)), Some(parent)) = (child.child_path(), child.parent())
                else {
                    continue;
                };
                for i in 0..sh.gen.base_count(parent) {
                    let id = sh.gen.base_id(parent, i);
                    pages.push((
                        format!("/v3{prefix}{}{suffix}", std::str::from_utf8(&id).unwrap()),
                        String::new(),
                    ));
                }
            }
            let mut records = 0;
            let mut odd_seen = 0;
            for (p, q) in &pages {
                let body = http::route_public(&sh, p, q).unwrap();
                assert_eq!(body, http::route_public(&sh2, p, q).unwrap(), "{p}?{q}");
                let v: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{p}?{q}: {e}"));
                let items = v
                    .get("tickets")
                    .or_else(|| v.get("data"))
                    .unwrap_or(&v)
                    .as_array()
                    .unwrap_or_else(|| panic!("{p}: {v}"))
                    .clone();
                records += items.len();
                odd_seen += items
                    .iter()
                    .filter(|r| {
                        !(r["updatedAt"].is_string() || r["updatedAt"].is_null())
                            || !r["createdAt"].is_string()
                            || r.get("id").is_none()
                            || r.get("legacyRef").is_some()
                    })
                    .count();
            }
            let want: u64 = Stream::ALL.iter().map(|&st| cfg.base_count(st)).sum();
            assert_eq!(records as u64, want);
            assert!(want > 3000 + 1500 + 2500 + 12 + 7 + 9 + 7 * 30);
            if odd {
                assert!(odd_seen > 50, "{odd_seen}");
            } else {
                assert_eq!(odd_seen, 0);
            }
        }
    }

    /// A feature the plan lacks answers 404 (or 403) on its endpoints, and
    /// the snapshot holds none of its records (nor of its children).
    #[test]
    fn missing_features_answer_404_or_403_and_hold_nothing() {
        for status in [404u16, 403] {
            let cfg = FakeConfig {
                missing_features: vec!["engagement-cobrowse".into(), "helpcenter".into()],
                missing_status: status,
                ..FakeConfig::default()
            };
            let sh = Shared::new(cfg.clone());
            for p in ["/v3/engagement/cobrowse", "/v3/helpcenter/collections/all"] {
                assert_eq!(http::route_public(&sh, p, ""), Err(status), "{p}");
            }
            let id = sh.gen.base_id(Stream::HelpcenterCollections, 0);
            let articles = format!(
                "/v3/helpcenter/collections/{}/articles",
                std::str::from_utf8(&id).unwrap()
            );
            assert_eq!(http::route_public(&sh, &articles, ""), Err(status));
            assert!(http::route_public(&sh, "/v3/engagement/banners", "").is_ok());
            for st in [
                Stream::EngagementCobrowse,
                Stream::HelpcenterCollections,
                Stream::HelpcenterArticles,
                Stream::HelpcenterRedirects,
            ] {
                assert!(sh.snapshot(st).is_empty(), "{st}");
            }
            assert_eq!(sh.snapshot(Stream::EngagementBanners).len(), 2);
        }
    }

    /// A new activity log, activity or event stamps its parent (the ticket,
    /// the contact) with its time, as Gleap's do: a tap reading only the
    /// parents updated since its bookmark finds it.
    #[test]
    fn children_that_touch_their_parent_stamp_it() {
        let sh = Shared::new(FakeConfig {
            tickets: 20,
            sessions: 10,
            ..FakeConfig::default()
        });
        for (child, parent) in [
            (Stream::TicketActivityLogs, Stream::Tickets),
            (Stream::SessionEvents, Stream::Sessions),
        ] {
            let before: std::collections::BTreeMap<String, String> = sh
                .snapshot(parent)
                .into_iter()
                .map(|r| (r.id, r.updated_at))
                .collect();
            let ids = sh.store.lock().create(&sh.gen, child, 1);
            let rec = sh
                .snapshot(child)
                .into_iter()
                .find(|r| r.id == ids[0])
                .unwrap();
            let pid = rec.parent_id.unwrap();
            let after = sh
                .snapshot(parent)
                .into_iter()
                .find(|r| r.id == pid)
                .unwrap();
            assert!(after.updated_at > before[&pid], "{child}: parent stamped");
        }
        // Events never change: an update is a no-op.
        assert!(sh
            .store
            .lock()
            .update(&sh.gen, Stream::SessionEvents, 3, false)
            .is_empty());
        // Children are as old as their parent, never ahead of it.
        for r in sh.snapshot(Stream::TicketActivityLogs) {
            let parent = sh
                .snapshot(Stream::Tickets)
                .into_iter()
                .find(|t| Some(&t.id) == r.parent_id.as_ref())
                .unwrap();
            assert!(r.updated_at <= parent.updated_at);
        }
    }

    /// Rendering speed; run with `cargo test --release -p fake-gleap -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn render_throughput() {
        let sh = Shared::new(FakeConfig {
            tickets: 1_000_000,
            ..FakeConfig::default()
        });
        let t0 = std::time::Instant::now();
        let mut bytes = 0;
        let pages = 200;
        // Keyset walk, as a tap does it: `updatedAt>=` the last value seen.
        let mut since = "2024-06-01T00:00:00.000Z".to_string();
        for _ in 0..pages {
            let q = format!("updatedAt%3E={since}&sort=updatedAt&limit=1000");
            let body = http::route_public(&sh, "/v3/tickets", &q).unwrap();
            bytes += body.len();
            let key = b"\"updatedAt\":\"";
            let at = body.windows(key.len()).rposition(|w| w == key).unwrap() + key.len();
            since = String::from_utf8(body[at..at + 24].to_vec()).unwrap();
        }
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "{:.0} tickets/s, {:.0} MB/s, {:.2} ms/page",
            pages as f64 * 1000.0 / secs,
            bytes as f64 / secs / 1e6,
            secs * 1000.0 / pages as f64
        );
    }
}
