//! The HTTP side: routing, auth, rate limit, faults, latency, gzip.
//!
//! One fallback handler does the routing by hand: the API's paths are few,
//! and the raw query string must be parsed by `query.rs` anyway.

// Errors here are finished HTTP responses, built at most once per request:
// boxing them would buy nothing.
#![allow(clippy::result_large_err)]

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use futures_util::StreamExt;

use crate::config::{
    ErrorBody, FakeConfig, Fault, Faults, IdRangeFilters, OverLimit, RateLimit, ResponsesShape,
    RetryAfter, Stream, TieOrder, UndocumentedSort,
};
use crate::data::{mix, Gen, RecMeta};
use crate::query;
use crate::render::Json;
use crate::shared::{json_error, respond, Shared};
use crate::store::{list, ListOpts, Scope};

pub(crate) fn router(sh: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(sh)
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    // Raw `<` / `>` reach here as markers (see `rawio`).
    let path = crate::rawio::restore(req.uri().path()).into_owned();
    let query = crate::rawio::restore(req.uri().query().unwrap_or("")).into_owned();
    let method = req.method().clone();
    if let Some(rest) = path.strip_prefix("/_fake") {
        return crate::control::handle(&sh, &method, rest, &query);
    }
    if path == "/v3" || path.starts_with("/v3/") {
        let h = req.headers();
        let key_ok = header_is(
            h,
            header::AUTHORIZATION.as_str(),
            &format!("Bearer {}", sh.cfg.api_key),
        );
        let auth = match (key_ok, header_is(h, "project", &sh.cfg.project_id)) {
            (true, true) => Auth::Ok,
            (false, _) => Auth::WrongKey,
            (true, false) => Auth::WrongProject,
        };
        let gzip_ok = sh.cfg.gzip
            && h.get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(',')
                        .any(|e| e.trim().starts_with("gzip") && !e.contains("q=0"))
                });
        let offset = sh.cfg.clock_offset_ms + sh.cfg.date_lead_ms;
        let date_header = sh.cfg.date_header;
        let mut resp = api(sh, method, path, query, auth, gzip_ok).await;
        if offset != 0 && date_header {
            // The API's clock, which stamps updatedAt, not this machine's
            // (and a proxy's lead over it).
            let at = if offset >= 0 {
                SystemTime::now() + Duration::from_millis(offset as u64)
            } else {
                SystemTime::now() - Duration::from_millis(offset.unsigned_abs())
            };
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                resp.headers_mut().insert(header::DATE, v);
            }
        }
        return resp;
    }
    json_error(StatusCode::NOT_FOUND, "Not Found")
}

/// What the two credentials headers are worth.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Ok,
    WrongKey,
    /// The key is right, the `Project` header names another project.
    WrongProject,
}

fn header_is(h: &HeaderMap, name: &str, want: &str) -> bool {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == want)
}

/// Rolling window admission. Ok(remaining) or Err(time until a slot frees).
fn admit(sh: &Shared, rl: &RateLimit) -> Result<u32, Duration> {
    let now = Instant::now();
    let mut w = sh.window.lock();
    while let Some(&t) = w.front() {
        if now.duration_since(t) >= rl.window {
            w.pop_front();
        } else {
            break;
        }
    }
    if w.len() >= rl.per_window as usize {
        // Rejected requests are not recorded: they do not use up the window.
        let Some(&oldest) = w.get(w.len() - rl.per_window as usize) else {
            return Err(rl.window);
        };
        return Err(rl.window.saturating_sub(now.duration_since(oldest)));
    }
    w.push_back(now);
    let n = w.len() as u32;
    drop(w);
    let mut st = sh.stats.lock();
    st.max_in_window = st.max_in_window.max(n);
    Ok(rl.per_window - n)
}

fn too_many(rl: &RateLimit, wait: Duration) -> Response {
    let mut r = match rl.body {
        ErrorBody::Json => json_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        ErrorBody::Text => respond(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            b"Too Many Requests".to_vec(),
        ),
        ErrorBody::Empty => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r
        }
    };
    // Round up: a client that waits exactly this long finds a free slot.
    let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    let value = match rl.retry_after {
        RetryAfter::Seconds => Some(secs.to_string()),
        RetryAfter::HttpDate => Some(httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(secs + 1),
        )),
        RetryAfter::Absent => None,
    };
    if let Some(v) = value {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&v).expect("ascii"),
        );
    }
    r
}

fn choose_fault(seed: u64, seq: u64, f: &Faults) -> Option<Fault> {
    if f.rate <= 0.0 || f.kinds.is_empty() {
        return None;
    }
    let h = mix(seed ^ mix(seq ^ 0xFA17_0000));
    let x = (h >> 11) as f64 / (1u64 << 53) as f64;
    (x < f.rate).then(|| f.kinds[(mix(h) % f.kinds.len() as u64) as usize])
}

async fn api(
    sh: Arc<Shared>,
    method: Method,
    path: String,
    query: String,
    auth: Auth,
    gzip_ok: bool,
) -> Response {
    {
        let mut st = sh.stats.lock();
        st.requests += 1;
        *st.by_path.entry(path.clone()).or_default() += 1;
        if auth != Auth::Ok {
            st.auth_failures += 1;
        }
    }
    if auth != Auth::Ok {
        let status =
            StatusCode::from_u16(sh.cfg.auth_failure_status).unwrap_or(StatusCode::UNAUTHORIZED);
        let msg = match (sh.cfg.auth_failure_telling, auth) {
            (true, Auth::WrongKey) => "Invalid API token",
            (true, _) => "Project not found",
            _ if status == StatusCode::FORBIDDEN => "Forbidden",
            _ => "Unauthorized",
        };
        return json_error(status, msg);
    }
    let (faults, rl, latency) = {
        let d = sh.dynamic.lock();
        (d.faults.clone(), d.rate_limit.clone(), d.latency)
    };
    let mut rl_headers = None;
    let send_rl = sh.cfg.rate_limit_headers;
    if let Some(rl) = &rl {
        match admit(&sh, rl) {
            Ok(remaining) => rl_headers = Some((rl.per_window, remaining)).filter(|_| send_rl),
            Err(wait) => {
                sh.stats.lock().rate_limited += 1;
                let mut r = too_many(rl, wait);
                add_rl_headers(&mut r, Some((rl.per_window, 0)).filter(|_| send_rl));
                return r;
            }
        }
    }
    let seq = sh.seq.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(me) = &sh.cfg.mutate_every {
        if me.requests > 0 && seq.is_multiple_of(me.requests) {
            let mut store = sh.store.lock();
            for s in Stream::ALL.into_iter().filter(|s| s.is_incremental()) {
                store.update(&sh.gen, s, me.updates, false);
                store.create(&sh.gen, s, me.creates);
                store.delete(&sh.gen, s, me.deletes);
            }
        }
    }
    let jitter = sh.cfg.latency_jitter.as_micros() as u64;
    let latency = if jitter > 0 {
        latency + Duration::from_micros(mix(sh.cfg.seed ^ seq.wrapping_mul(0x1A7E)) % jitter)
    } else {
        latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = choose_fault(sh.cfg.seed, seq, &faults);
    if let Some(f) = fault {
        *sh.stats
            .lock()
            .faults
            .entry(f.name().to_string())
            .or_default() += 1;
    }
    let mut r = match fault {
        Some(Fault::Hang) => {
            tokio::time::sleep(faults.hang).await;
            normal(&sh, &method, &path, &query, seq, gzip_ok)
        }
        Some(f @ (Fault::Status500 | Fault::Status502 | Fault::Status503 | Fault::Status504)) => {
            status_fault(f)
        }
        Some(f) => match route(&sh, &method, &path, &query, seq) {
            Ok(body) => body_fault(f, body),
            Err(r) => r,
        },
        None => normal(&sh, &method, &path, &query, seq, gzip_ok),
    };
    add_rl_headers(&mut r, rl_headers);
    r
}

fn add_rl_headers(r: &mut Response, v: Option<(u32, u32)>) {
    if let Some((limit, remaining)) = v {
        let h = r.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
}

fn normal(
    sh: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    seq: u64,
    gzip_ok: bool,
) -> Response {
    match route(sh, method, path, query, seq) {
        Ok(body) if gzip_ok && body.len() > 256 => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 6),
                flate2::Compression::fast(),
            );
            enc.write_all(&body).expect("in-memory write");
            let gz = enc.finish().expect("in-memory write");
            let mut r = respond(StatusCode::OK, "application/json; charset=utf-8", gz);
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            r
        }
        Ok(body) => respond(StatusCode::OK, "application/json; charset=utf-8", body),
        Err(r) => r,
    }
}

fn status_fault(f: Fault) -> Response {
    let (status, ct, body): (StatusCode, &'static str, &[u8]) = match f {
        Fault::Status500 => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", b"Internal Server Error"),
        Fault::Status502 => (
            StatusCode::BAD_GATEWAY,
            "text/html",
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        ),
        Fault::Status503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=UTF-8",
            b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p></body></html>",
        ),
        _ => (
            StatusCode::GATEWAY_TIMEOUT,
            "text/html",
            b"<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>",
        ),
    };
    respond(status, ct, body.to_vec())
}

fn body_fault(f: Fault, body: Vec<u8>) -> Response {
    const JSON: &str = "application/json; charset=utf-8";
    match f {
        Fault::ResetMidBody => {
            let full = body.len();
            let part = Bytes::from(body[..full / 2].to_vec());
            // Let the head and first part reach the client before the abort.
            let stream = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(part)]).chain(futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake-gleap: reset mid body"))
            }));
            let mut r = Response::new(Body::from_stream(stream));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
            // Announce the full length so the client sees a short read.
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(full));
            r
        }
        Fault::TruncatedJson => {
            let mut b = body;
            b.truncate(b.len() / 2);
            respond(StatusCode::OK, JSON, b)
        }
        Fault::Html200 => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>We'll be right back</h1><p>Gleap is undergoing maintenance.</p></body></html>".to_vec(),
        ),
        Fault::WrongShape => {
            let other: &[u8] = if body.first() == Some(&b'[') {
                b"{\"error\":\"Something went wrong\",\"code\":\"INTERNAL\"}"
            } else {
                b"[{\"error\":\"Something went wrong\"}]"
            };
            respond(StatusCode::OK, JSON, other.to_vec())
        }
        _ => respond(StatusCode::OK, JSON, Vec::new()),
    }
}

/// Routes an authenticated, admitted API request to its listing. Returns
/// the JSON body, or a finished error response.
fn route(
    sh: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    seq: u64,
) -> Result<Vec<u8>, Response> {
    let ttl = sh.cfg.list_cache;
    if ttl.is_zero() || method != Method::GET {
        return route_uncached(sh, method, path, raw_query, seq);
    }
    // A list cache: the same request within `ttl` gets the same body.
    let key = format!("{path}?{raw_query}");
    let now = Instant::now();
    if let Some((at, body)) = sh.list_cache.lock().get(&key) {
        if now.duration_since(*at) < ttl {
            return Ok(body.clone());
        }
    }
    let body = route_uncached(sh, method, path, raw_query, seq)?;
    let mut cache = sh.list_cache.lock();
    cache.retain(|_, (at, _)| now.duration_since(*at) < ttl);
    cache.insert(key, (now, body.clone()));
    Ok(body)
}

fn route_uncached(
    sh: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    seq: u64,
) -> Result<Vec<u8>, Response> {
    let p = path.trim_end_matches('/');
    let not_found = || json_error(StatusCode::NOT_FOUND, "Not Found");
    if method != Method::GET {
        return Err(not_found());
    }
    let cfg = &sh.cfg;
    let bad_request = |m: &str| json_error(StatusCode::BAD_REQUEST, m);
    let mut q = query::parse(raw_query, cfg.encoded_operators).map_err(|m| bad_request(&m))?;
    let gen = &sh.gen;
    let small = cfg.unpaginated_small_lists;
    let whole = |s: Stream| Scope {
        stream: s,
        lo: 0,
        hi: gen.base_count(s),
        parent: None,
    };
    let api_path = p.strip_prefix("/v3").ok_or_else(not_found)?;
    let listed = Stream::ALL.into_iter().find(|s| s.path() == Some(api_path));
    let (scope, cap, unpaginated) = match listed {
        Some(s) => {
            let cap = match s {
                Stream::Messages => 10_000,
                _ => 1000,
            };
            (whole(s), cap, small && s.is_small_list())
        }
        None => {
            // A child listing: `<prefix><parent id><suffix>`.
            let (child, id) = Stream::ALL
                .into_iter()
                .find_map(|s| {
                    let (prefix, suffix) = s.child_path()?;
                    let id = api_path.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    (!id.is_empty() && !id.contains('/')).then_some((s, id))
                })
                .ok_or_else(not_found)?;
            let parent = child.parent().expect("child streams have a parent");
            if cfg.is_missing(parent) {
                return Err(missing(cfg));
            }
            let pi = sh
                .store
                .lock()
                .lookup(gen, parent, id)
                .ok_or_else(not_found)?;
            let per = gen.per_parent(child);
            let (lo, hi) = if pi < gen.base_count(parent) {
                (pi * per, (pi + 1) * per)
            } else {
                (0, 0)
            };
            (
                Scope {
                    stream: child,
                    lo,
                    hi,
                    parent: Some(pi),
                },
                1000,
                false,
            )
        }
    };
    if cfg.is_missing(scope.stream) {
        return Err(missing(cfg));
    }
    if cfg.is_broken(scope.stream) {
        return Err(status_fault(Fault::Status503));
    }
    let cap = cfg.max_limit.map_or(cap, |m| cap.min(m));
    if let (Some(window), false) = (cfg.max_result_window, unpaginated) {
        let depth = q.skip + q.limit.unwrap_or(100).min(cap);
        if depth > window {
            return Err(bad_request(&format!(
                "Result window is too large, from + size must be less than or equal to: [{window}] but was [{depth}]. See the scroll api for a more efficient way to request large data sets."
            )));
        }
    }
    if cfg.over_limit == OverLimit::Refuse && !unpaginated && q.limit.is_some_and(|l| l > cap) {
        return Err(bad_request(&format!("limit must not exceed {cap}")));
    }
    let is_id = |f: &str| f == "_id" || f == "id";
    match cfg.id_range_filters {
        IdRangeFilters::Honour => {}
        IdRangeFilters::Refuse => {
            if let Some(r) = q.ranges.iter().find(|r| is_id(&r.field)) {
                return Err(bad_request(&format!(
                    "Invalid filter: {}{}",
                    r.field,
                    r.op.as_str()
                )));
            }
        }
        IdRangeFilters::Ignore => q.ranges.retain(|r| !is_id(&r.field)),
    }
    let messages_paginated = scope.stream == Stream::Messages && q.paginated;
    // Sorting: ignored everywhere, ignored on /messages (conversation order;
    // paginated: the cursor's order, the default below), or checked against
    // the documented fields.
    if cfg.ignore_sort {
        q.sort = None;
    } else if scope.stream == Stream::Messages && cfg.messages_sort_ignored {
        // Ids follow creation, so id order is createdAt order with ties by
        // id (never shuffled: there are no ties).
        q.sort = None;
    } else if let Some((f, _)) = &q.sort {
        let documented = matches!(f.as_str(), "updatedAt" | "createdAt")
            || (scope.stream == Stream::Tickets
                && matches!(f.as_str(), "priority" | "lastNotification" | "archivedAt"));
        if !documented {
            match cfg.undocumented_sort {
                UndocumentedSort::Honour => {}
                UndocumentedSort::Refuse => {
                    return Err(bad_request(&format!("Invalid sort field: {f}")))
                }
                UndocumentedSort::Ignore => q.sort = None,
            }
        }
    }
    if messages_paginated {
        // Cursor paging: newest first, `before` = id (or date) of the last item seen.
        if let Some(b) = q.before.take() {
            let field = if Gen::parse_id(&b).is_some() {
                "_id"
            } else if query::parse_date(&b).is_some() {
                "createdAt"
            } else {
                return Err(json_error(StatusCode::BAD_REQUEST, "Invalid cursor"));
            };
            q.cursor.push(query::RangeFilter {
                field: field.into(),
                op: query::Op::Lt,
                value: b,
            });
        }
    }
    let opts = ListOpts {
        default_limit: 100,
        cap,
        unpaginated,
        ignore_filters: cfg.ignore_filters,
        shuffle: (cfg.tie_order == TieOrder::Shuffled)
            .then(|| mix(cfg.seed ^ seq.wrapping_mul(0x9e37))),
        count_total: matches!(scope.stream, Stream::Tickets | Stream::CustomComponents),
        // Newest first, in the order of the cursor (`_id <`): the same as
        // createdAt descending with ties by id, which a shuffle cannot break.
        default_sort: messages_paginated.then(|| ("_id".to_string(), true)),
        archived_default: cfg.archived_default,
    };
    let page = {
        let mut store = sh.store.lock();
        list(gen, store.listed(), &scope, &q, &opts).map_err(|m| bad_request(&m))?
    };
    let mut w = Json::with_capacity(page.metas.len() * 2200 + 64);
    let items = |w: &mut Json, metas: &[RecMeta]| {
        w.begin_arr();
        for m in metas {
            gen.render(w, m, false);
        }
        w.end_arr();
    };
    match scope.stream {
        Stream::Tickets => {
            w.begin_obj();
            w.key("tickets");
            items(&mut w, &page.metas);
            if cfg.total_count {
                w.key("count");
                w.u64(page.metas.len() as u64);
                w.key("totalCount");
                w.u64(page.total);
            }
            w.end_obj();
        }
        Stream::Messages if messages_paginated => {
            w.begin_obj();
            w.key("items");
            items(&mut w, &page.metas);
            w.key("hasMore");
            w.bool(page.has_more);
            w.key("nextBefore");
            match page.metas.last().filter(|_| page.has_more) {
                Some(m) => w.ascii_str(&Gen::meta_id(m)),
                None => w.null(),
            }
            w.end_obj();
        }
        // `{totalCount, data}` when asked `withCount=true` (documented),
        // and wherever undocumented shapes come wrapped.
        Stream::CustomComponents
            if q.with_count || cfg.responses_shape != ResponsesShape::Array =>
        {
            w.begin_obj();
            w.key("totalCount");
            w.u64(page.total);
            w.key("data");
            items(&mut w, &page.metas);
            w.end_obj();
        }
        s if s.shape_undocumented() => match &cfg.responses_shape {
            ResponsesShape::Array => items(&mut w, &page.metas),
            ResponsesShape::Wrapped(k) => {
                w.begin_obj();
                w.key_escaped(k);
                items(&mut w, &page.metas);
                w.end_obj();
            }
        },
        _ => items(&mut w, &page.metas),
    }
    Ok(w.into_bytes())
}

/// A feature the project's plan lacks (`FakeConfig::missing_features`).
fn missing(cfg: &FakeConfig) -> Response {
    match StatusCode::from_u16(cfg.missing_status) {
        Ok(StatusCode::FORBIDDEN) => json_error(
            StatusCode::FORBIDDEN,
            "Your plan does not include this feature",
        ),
        _ => json_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Renders a page body without HTTP (no auth, faults or rate limit).
pub(crate) fn route_public(sh: &Shared, path: &str, query: &str) -> Result<Vec<u8>, u16> {
    route(sh, &Method::GET, path, query, 1).map_err(|r| r.status().as_u16())
}
