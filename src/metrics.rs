//! Counters per stream, Singer metrics as orchestrators parse them
//! (`METRIC: {...}` log lines), and the end-of-run summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

pub struct StreamStats {
    pub stream: &'static str,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub bytes: AtomicU64,
    pub records: AtomicU64,
    pub skipped: AtomicU64,
    /// The API's total for the stream, where it tells one (tickets' `totalCount`).
    pub total: AtomicU64,
    pub started: Instant,
}

impl StreamStats {
    pub fn new(stream: &'static str) -> Self {
        StreamStats {
            stream,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// One progress line: records so far, rate, and where the API gives a
    /// total, percent done and time left.
    pub fn log_progress(&self) {
        let records = self.get(&self.records);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = records as f64 / secs;
        let total = self.get(&self.total);
        if total > 0 && records <= total {
            let left = (total - records) as f64 / rate.max(0.001);
            tracing::info!(
                stream = self.stream,
                "progress: {records} records ({rate:.0}/s), {:.1}% of {total}, about {left:.0}s left",
                100.0 * records as f64 / total as f64
            );
        } else {
            tracing::info!(
                stream = self.stream,
                "progress: {records} records ({rate:.0}/s)"
            );
        }
    }

    pub fn log_summary(&self) {
        let records = self.get(&self.records);
        record_count(self.stream, records);
        tracing::info!(
            stream = self.stream,
            "done: {records} records, {} skipped, {} requests, {} retries, {} rate-limited (429), {:.1} MB in {:.1}s",
            self.get(&self.skipped),
            self.get(&self.requests),
            self.get(&self.retries),
            self.get(&self.rate_limited),
            self.get(&self.bytes) as f64 / 1e6,
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub fn http_timer(stream: &str, endpoint: &str, status: u16, took: Duration) {
    let status_word = if (200..300).contains(&status) {
        "succeeded"
    } else {
        "failed"
    };
    let m = json!({
        "type": "timer",
        "metric": "http_request_duration",
        "value": took.as_secs_f64(),
        "tags": {"stream": stream, "endpoint": endpoint, "http_status_code": status, "status": status_word},
    });
    tracing::info!(target: "tap_gleap::metrics", "METRIC: {m}");
}

pub fn record_count(stream: &str, n: u64) {
    let m = json!({"type": "counter", "metric": "record_count", "value": n, "tags": {"stream": stream}});
    tracing::info!(target: "tap_gleap::metrics", "METRIC: {m}");
}

/// A count the run found, for a stream (`late_updates`, ...).
pub fn counter(stream: &str, metric: &str, n: u64) {
    let m = json!({"type": "counter", "metric": metric, "value": n, "tags": {"stream": stream}});
    tracing::info!(target: "tap_gleap::metrics", "METRIC: {m}");
}
