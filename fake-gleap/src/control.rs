//! Control plane for scripts, under `/_fake` (no auth): snapshot, mutate,
//! stats, faults, rate limit, latency, health.

// Errors here are finished HTTP responses, built at most once per request:
// boxing them would buy nothing.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::config::{ErrorBody, Fault, RateLimit, RetryAfter, Stream};
use crate::query::percent_decode;
use crate::render::escape_into;
use crate::shared::{json_error, Shared};

fn params(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn param<'a>(ps: &'a [(String, String)], k: &str) -> Option<&'a str> {
    ps.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str())
}

fn num(ps: &[(String, String)], k: &str) -> Result<u64, Response> {
    match param(ps, k) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| json_error(StatusCode::BAD_REQUEST, &format!("{k} must be a number"))),
    }
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    r
}

fn ids_json(out: &mut Vec<u8>, key: &str, ids: &[String]) {
    escape_into(out, key);
    out.extend_from_slice(b":[");
    for (k, id) in ids.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        escape_into(out, id);
    }
    out.push(b']');
}

pub(crate) fn handle(sh: &Shared, method: &Method, rest: &str, query: &str) -> Response {
    match inner(sh, method, rest, query) {
        Ok(r) | Err(r) => r,
    }
}

fn inner(sh: &Shared, method: &Method, rest: &str, query: &str) -> Result<Response, Response> {
    let ps = params(query);
    let bad = |m: &str| json_error(StatusCode::BAD_REQUEST, m);
    match (method.as_str(), rest) {
        ("GET", "/health") => Ok(ok("text/plain; charset=utf-8", b"ok".to_vec())),
        ("GET", "/stats") => {
            let st = sh.stats.lock().clone();
            Ok(ok(
                "application/json",
                serde_json::to_vec(&st).expect("serializable"),
            ))
        }
        ("GET", r) if r.starts_with("/snapshot/") => {
            let s: Stream = r["/snapshot/".len()..]
                .parse()
                .map_err(|e: String| bad(&e))?;
            let snap = sh.snapshot(s);
            let mut out = Vec::with_capacity(snap.len() * 80);
            for rec in snap {
                serde_json::to_writer(&mut out, &rec).expect("serializable");
                out.push(b'\n');
            }
            Ok(ok("application/x-ndjson", out))
        }
        ("POST", "/mutate") => {
            let s: Stream = param(&ps, "stream")
                .ok_or_else(|| bad("stream is required"))?
                .parse()
                .map_err(|e: String| bad(&e))?;
            let (u, bu, c, d) = (
                num(&ps, "update")?,
                num(&ps, "bulk_update")?,
                num(&ps, "create")?,
                num(&ps, "delete")?,
            );
            let mut store = sh.store.lock();
            let mut updated = store.update(&sh.gen, s, u, false);
            updated.extend(store.update(&sh.gen, s, bu, true));
            let created = store.create(&sh.gen, s, c);
            let deleted = store.delete(&sh.gen, s, d);
            drop(store);
            let mut out = b"{".to_vec();
            ids_json(&mut out, "updated", &updated);
            out.push(b',');
            ids_json(&mut out, "created", &created);
            out.push(b',');
            ids_json(&mut out, "deleted", &deleted);
            out.push(b'}');
            Ok(ok("application/json", out))
        }
        ("POST", "/faults") => {
            let mut d = sh.dynamic.lock();
            if let Some(r) = param(&ps, "rate") {
                d.faults.rate = r
                    .parse::<f64>()
                    .map_err(|_| bad("rate must be a number"))?
                    .clamp(0.0, 1.0);
            }
            if let Some(k) = param(&ps, "kinds") {
                d.faults.kinds = Fault::parse_list(k).map_err(|e| bad(&e))?;
            }
            if param(&ps, "hang_ms").is_some() {
                d.faults.hang = Duration::from_millis(num(&ps, "hang_ms")?);
            }
            Ok(ok("application/json", b"{\"ok\":true}".to_vec()))
        }
        ("POST", "/rate-limit") => {
            let per = num(&ps, "per_window")?;
            let mut d = sh.dynamic.lock();
            d.rate_limit = if per == 0 {
                None
            } else {
                let retry_after = match param(&ps, "retry_after").unwrap_or("seconds") {
                    "seconds" => RetryAfter::Seconds,
                    "http-date" => RetryAfter::HttpDate,
                    "absent" => RetryAfter::Absent,
                    _ => return Err(bad("retry_after: seconds|http-date|absent")),
                };
                let body = match param(&ps, "body").unwrap_or("json") {
                    "json" => ErrorBody::Json,
                    "text" => ErrorBody::Text,
                    "empty" => ErrorBody::Empty,
                    _ => return Err(bad("body: json|text|empty")),
                };
                let window_s = num(&ps, "window_s")?;
                Some(RateLimit {
                    per_window: per.min(u32::MAX as u64) as u32,
                    window: Duration::from_secs(if window_s == 0 { 60 } else { window_s }),
                    retry_after,
                    body,
                })
            };
            Ok(ok("application/json", b"{\"ok\":true}".to_vec()))
        }
        ("POST", "/latency") => {
            sh.dynamic.lock().latency = Duration::from_millis(num(&ps, "ms")?);
            Ok(ok("application/json", b"{\"ok\":true}".to_vec()))
        }
        _ => Err(json_error(StatusCode::NOT_FOUND, "Not Found")),
    }
}
