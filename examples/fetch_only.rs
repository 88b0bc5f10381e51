//! Benchmark helper for `scripts/bench.sh` (not part of the tap).
//!
//! - `fetch_only --log TAP_LOG --config CONFIG [--depth N]`: the ceiling. It
//!   replays the very requests a tap run made (the `GET` lines of its JSON
//!   debug log, `RUST_LOG=tap_gleap::client=debug --log-format json`), stream
//!   by stream concurrently and in order within a stream, with an HTTP client
//!   set up like the tap's (keep-alive, gzip, the same headers), reading every
//!   body to the end and throwing it away: no UTF-8 check, no parsing, no
//!   output. `--depth` is the number of requests in flight per stream (the
//!   tap keeps at most 2: the page being conformed and the next one).
//! - `fetch_only --count`: reads stdin (the tap's Singer output) and prints
//!   `<bytes> <lines> <RECORD lines>`.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--count") {
        count();
        return;
    }
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(log), Some(config)) = (opt("--log"), opt("--config")) else {
        eprintln!(
            "usage: fetch_only --log TAP_LOG --config CONFIG [--depth N] | fetch_only --count"
        );
        std::process::exit(2);
    };
    let depth: usize = opt("--depth").map_or(1, |d| d.parse().expect("--depth N"));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(config).expect("config")).expect("JSON");
    let base = config["api_url"].as_str().expect("api_url").to_string();
    let mut by_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).expect("log").lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        let (Some(msg), Some(stream)) = (fields["message"].as_str(), fields["stream"].as_str())
        else {
            continue;
        };
        if let Some(rest) = msg.strip_prefix("GET ") {
            let rest = rest.strip_suffix('?').unwrap_or(rest);
            by_stream
                .entry(stream.to_string())
                .or_default()
                .push(format!("{base}{rest}"));
        }
    }
    let requests: usize = by_stream.values().map(Vec::len).sum();
    if requests == 0 {
        eprintln!("no GET lines in the log: run the tap with RUST_LOG=tap_gleap::client=debug --log-format json");
        std::process::exit(1);
    }
    let mut headers = HeaderMap::new();
    let key = config["api_key"].as_str().expect("api_key");
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
    );
    headers.insert(
        "Project",
        HeaderValue::from_str(config["project_id"].as_str().expect("project_id")).expect("header"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let bytes = runtime.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent("tap-gleap-fetch-only")
            .pool_idle_timeout(Duration::from_secs(60))
            .gzip(true)
            .build()
            .expect("client");
        let mut tasks = tokio::task::JoinSet::new();
        for (_, urls) in by_stream {
            let http = http.clone();
            tasks.spawn(async move {
                // Up to `depth` requests of this stream in flight, answered in order.
                let mut in_flight = std::collections::VecDeque::new();
                let mut total = 0u64;
                for url in urls {
                    if in_flight.len() == depth {
                        let first: tokio::task::JoinHandle<u64> =
                            in_flight.pop_front().expect("non-empty");
                        total += first.await.expect("fetch");
                    }
                    in_flight.push_back(tokio::spawn(fetch(http.clone(), url)));
                }
                for h in in_flight {
                    total += h.await.expect("fetch");
                }
                total
            });
        }
        let mut bytes = 0;
        while let Some(r) = tasks.join_next().await {
            bytes += r.expect("task");
        }
        bytes
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fetch-only: {requests} requests, {:.1} MB of bodies in {secs:.2}s ({:.0} MB/s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
}

async fn fetch(http: reqwest::Client, url: String) -> u64 {
    let mut resp = http.get(&url).send().await.expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.expect("body") {
        n += chunk.len() as u64;
    }
    n
}

fn count() {
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut lines, mut records) = (0u64, 0u64, 0u64);
    let mut at_line_start = true;
    let prefix = br#"{"type":"RECORD""#;
    let mut matched = 0usize; // bytes of `prefix` matched at the current line start
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("stdin: {e}"),
        };
        bytes += n as u64;
        for &b in &buf[..n] {
            if at_line_start || matched > 0 {
                at_line_start = false;
                if b == prefix[matched] {
                    matched += 1;
                    if matched == prefix.len() {
                        records += 1;
                        matched = 0;
                    }
                } else {
                    matched = 0;
                }
            }
            if b == b'\n' {
                lines += 1;
                at_line_start = true;
                matched = 0;
            }
        }
    }
    println!("{bytes} {lines} {records}");
}
