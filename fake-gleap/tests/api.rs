//! End-to-end tests of the fake over real HTTP, with a tiny raw HTTP/1.1
//! client (so faults such as a reset mid body are observed as sent).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use fake_gleap::*;
use serde_json::{json, Value};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the whole announced body arrived.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn raw_request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let read_ok = s.read_to_end(&mut buf).is_ok();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let rest = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
        complete: read_ok,
    };
    if let Some(len) = r
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        r.complete &= rest.len() >= len;
        r.body = rest[..len.min(rest.len())].to_vec();
    } else if r.header("transfer-encoding") == Some("chunked") {
        let mut i = 0;
        let mut done = false;
        while let Some(p) = rest[i..].windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&rest[i..i + p]).unwrap().trim(), 16)
                .unwrap();
            i += p + 2;
            if n == 0 {
                done = true;
                break;
            }
            let end = (i + n).min(rest.len());
            r.body.extend_from_slice(&rest[i..end]);
            i = end + 2;
            if i > rest.len() {
                break;
            }
        }
        r.complete &= done;
    } else {
        r.body = rest;
    }
    if r.header("content-encoding") == Some("gzip") && r.complete {
        let mut d = flate2::read::GzDecoder::new(&r.body[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        r.body = out;
    }
    r
}

fn get(f: &FakeGleap, target: &str) -> Resp {
    let cfg = f.config();
    let auth = format!("Bearer {}", cfg.api_key);
    raw_request(
        f.addr(),
        "GET",
        &format!("/v3{target}"),
        &[
            ("Authorization", &auth),
            ("Project", &cfg.project_id),
            ("Accept-Encoding", "gzip"),
        ],
    )
}

fn start(cfg: FakeConfig) -> FakeGleap {
    start_blocking(cfg).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn updated(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["updatedAt"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn auth_is_required() {
    let f = start(FakeConfig::default());
    let r = raw_request(f.addr(), "GET", "/v3/tickets", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        serde_json::json!({"statusCode":401,"message":"Unauthorized"})
    );
    let r = raw_request(
        f.addr(),
        "GET",
        "/v3/tickets",
        &[("Authorization", "Bearer fake-api-key")],
    );
    assert_eq!(r.status, 401, "project header is required too");
    let r = raw_request(
        f.addr(),
        "GET",
        "/v3/tickets",
        &[
            ("Authorization", "Bearer wrong"),
            ("Project", "fake-project"),
        ],
    );
    assert_eq!(r.status, 401);
    let r = raw_request(
        f.addr(),
        "GET",
        "/v3/tickets",
        &[
            ("Authorization", "Bearer fake-api-key"),
            ("Project", "other"),
        ],
    );
    assert_eq!(r.status, 401);
    assert_eq!(get(&f, "/tickets").status, 200);
    assert_eq!(f.stats().auth_failures, 4);

    let f = start(FakeConfig {
        auth_failure_status: 403,
        ..FakeConfig::default()
    });
    let r = raw_request(f.addr(), "GET", "/v3/sessions", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["statusCode"], 403);
}

#[test]
fn endpoint_shapes() {
    let f = start(FakeConfig::default());
    let t = get(&f, "/tickets").json();
    assert_eq!(
        t["tickets"].as_array().unwrap().len(),
        100,
        "default limit 100"
    );
    assert_eq!(t["count"], 100);
    let total = t["totalCount"].as_u64().unwrap();
    assert!(
        total < 250 && total > 200,
        "archived and spam hidden by default: {total}"
    );
    let tk = &t["tickets"][0];
    assert_eq!(tk["_id"], tk["id"]);
    assert_eq!(tk["bugId"], 1);
    assert_eq!(tk["updatedAt"], "2024-01-01T00:00:00.000Z");
    assert_eq!(tk["id"].as_str().unwrap().len(), 24);
    for path in [
        "/sessions",
        "/messages",
        "/teams",
        "/engagement/surveys",
        "/message-templates",
    ] {
        let r = get(&f, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.json().is_array(), "{path}");
    }
    assert_eq!(get(&f, "/teams").json().as_array().unwrap().len(), 4);
    assert_eq!(
        get(&f, "/message-templates")
            .json()
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let surveys = get(&f, "/engagement/surveys").json();
    let sid = surveys[0]["id"].as_str().unwrap().to_string();
    let resp = get(&f, &format!("/engagement/surveys/{sid}/responses")).json();
    assert_eq!(resp.as_array().unwrap().len(), 20);
    assert_eq!(resp[0]["survey"], sid.as_str());
    let m = get(&f, "/messages?paginated=true&limit=10").json();
    assert_eq!(m["items"].as_array().unwrap().len(), 10);
    assert_eq!(m["hasMore"], true);
    assert!(m["nextBefore"].is_string());
    assert_eq!(get(&f, "/nope").status, 404);
    assert_eq!(
        get(&f, "/engagement/surveys/000000000000000000000000/responses").status,
        404
    );
    assert_eq!(raw_request(f.addr(), "GET", "/other", &[]).status, 404);

    let f = start(FakeConfig {
        responses_shape: ResponsesShape::Wrapped("responses".into()),
        ..FakeConfig::default()
    });
    let sid = get(&f, "/engagement/surveys").json()[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = get(&f, &format!("/engagement/surveys/{sid}/responses")).json();
    assert_eq!(resp["responses"].as_array().unwrap().len(), 20);
}

#[test]
fn limits_are_capped() {
    let f = start(FakeConfig {
        tickets: 1500,
        messages: 10_050,
        teams: 150,
        archived_default: ArchivedDefault::Include,
        ..FakeConfig::default()
    });
    let t = get(&f, "/tickets?limit=5000").json();
    assert_eq!(t["count"], 1000);
    assert_eq!(t["totalCount"], 1500);
    let m = get(&f, "/messages?limit=20000&sort=updatedAt").json();
    assert_eq!(m.as_array().unwrap().len(), 10_000);
    assert_eq!(get(&f, "/teams").json().as_array().unwrap().len(), 100);
    assert_eq!(
        get(&f, "/teams?limit=1000&skip=140")
            .json()
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let f = start(FakeConfig {
        teams: 150,
        unpaginated_small_lists: true,
        ..FakeConfig::default()
    });
    assert_eq!(
        get(&f, "/teams?limit=10&skip=5")
            .json()
            .as_array()
            .unwrap()
            .len(),
        150
    );
}

#[test]
fn keyset_operators() {
    let f = start(FakeConfig {
        archived_default: ArchivedDefault::Include,
        ..FakeConfig::default()
    });
    // Record i has updatedAt = 2024-01-01T00:00 + i minutes.
    let r = get(
        &f,
        "/tickets?updatedAt%3E=2024-01-01T01:00:00.000Z&sort=updatedAt&limit=3",
    )
    .json();
    assert_eq!(
        updated(&r["tickets"]),
        [
            "2024-01-01T01:00:00.000Z",
            "2024-01-01T01:01:00.000Z",
            "2024-01-01T01:02:00.000Z"
        ]
    );
    assert_eq!(r["totalCount"], 250 - 60);
    // Percent-encoded key, strict operator, other offset format.
    let r = get(
        &f,
        "/tickets?updatedAt%3E=2024-01-01T02:00:00Z&sort=updatedAt&limit=1",
    )
    .json();
    assert_eq!(updated(&r["tickets"]), ["2024-01-01T02:00:00.000Z"]);
    let r = get(
        &f,
        "/tickets?updatedAt%3E2024-01-01T01:00:00.000Z&sort=updatedAt&limit=1",
    )
    .json();
    assert_eq!(updated(&r["tickets"]), ["2024-01-01T01:01:00.000Z"]);
    let r = get(&f, "/tickets?updatedAt%3E=2024-01-01T01:00:00.000%2B00:00&updatedAt%3C2024-01-01T01:03:00.000Z&sort=updatedAt").json();
    assert_eq!(r["count"], 3);
    let r = get(&f, "/tickets?updatedAt%3E=2024-01-01T01:00:00.000Z&updatedAt%3C=2024-01-01T01:03:00.000Z&sort=-updatedAt").json();
    assert_eq!(
        updated(&r["tickets"]),
        [
            "2024-01-01T01:03:00.000Z",
            "2024-01-01T01:02:00.000Z",
            "2024-01-01T01:01:00.000Z",
            "2024-01-01T01:00:00.000Z"
        ]
    );
    // Raw operators, as Gleap documents them (hyper alone refuses them).
    let r = get(
        &f,
        "/tickets?updatedAt>=2024-01-01T01:00:00.000Z&updatedAt<2024-01-01T01:03:00.000Z",
    );
    assert_eq!(r.json()["count"], 3);
    assert_eq!(get(&f, "/tickets?updatedAt%3E=yesterday").status, 400);
    // Unencoded '+' is a space for the server: unparsable.
    assert_eq!(
        get(&f, "/tickets?updatedAt%3E=2024-01-01T01:00:00+00:00").status,
        400
    );
    // Sessions and messages honour the same keyset.
    let s = get(
        &f,
        "/sessions?updatedAt%3E=2024-01-01T00:10:00.000Z&sort=updatedAt&limit=2",
    )
    .json();
    assert_eq!(
        updated(&s),
        ["2024-01-01T00:10:00.000Z", "2024-01-01T00:11:00.000Z"]
    );
    // _id ranges compare as strings.
    let all = get(&f, "/sessions?limit=1000").json();
    let id5 = all[5]["id"].as_str().unwrap();
    let r = get(&f, &format!("/sessions?_id%3E{id5}&limit=2")).json();
    assert_eq!(
        ids(&r),
        ids(&Value::Array(all.as_array().unwrap()[6..8].to_vec()))
    );
}

#[test]
fn exact_filters() {
    let f = start(FakeConfig {
        archived_default: ArchivedDefault::Include,
        ..FakeConfig::default()
    });
    let r = get(&f, "/tickets?status=OPEN&limit=1000").json();
    let n_open = r["count"].as_u64().unwrap();
    assert!(n_open > 0);
    assert!(r["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "OPEN"));
    assert_eq!(r["totalCount"], n_open);
    let r = get(&f, "/tickets?type=BUG,FEATURE_REQUEST&limit=1000").json();
    assert!(r["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["type"] == "BUG" || t["type"] == "FEATURE_REQUEST"));
    let arch = get(&f, "/tickets?archived=true&limit=1000").json();
    assert!(arch["count"].as_u64().unwrap() > 0);
    assert!(arch["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["archived"] == true));
    let tid = get(&f, "/messages?limit=1").json()[0]["ticket"].clone();
    let tid = tid.as_str().or(tid["_id"].as_str()).map(str::to_string);
    if let Some(tid) = tid {
        let msgs = get(&f, &format!("/messages?ticket={tid}&limit=1000")).json();
        assert!(!msgs.as_array().unwrap().is_empty());
        for m in msgs.as_array().unwrap() {
            let t = &m["ticket"];
            assert!(t == tid.as_str() || t["_id"] == tid.as_str());
        }
    }

    // Default: archived and spam hidden unless asked.
    let f = start(FakeConfig::default());
    let all = get(&f, "/tickets?limit=1000").json();
    assert!(all["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["archived"] == false && t["isSpam"] == false));
    let with_archived = get(&f, "/tickets?limit=1000&ignoreArchived=true").json();
    assert!(with_archived["count"].as_u64() > all["count"].as_u64());
    assert!(get(&f, "/tickets?limit=1000&isSpam=true").json()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["isSpam"] == true));

    let f = start(FakeConfig {
        ignore_filters: true,
        ..FakeConfig::default()
    });
    let r = get(&f, "/sessions?updatedAt%3E=2030-01-01T00:00:00.000Z").json();
    assert_eq!(r.as_array().unwrap().len(), 100, "filters ignored");
}

#[test]
fn million_tickets_keyset_pages() {
    let f = start(FakeConfig {
        tickets: 1_000_000,
        tie_group: 3,
        ..FakeConfig::default()
    });
    let snap_len = 1_000_000;
    // Walk a few pages from the middle with the keyset pattern a tap uses.
    let mut since = "2024-03-01T00:00:00.000Z".to_string();
    let mut seen = std::collections::HashSet::new();
    let mut last_total = None;
    for _ in 0..3 {
        let r = get(
            &f,
            &format!("/tickets?updatedAt%3E={since}&sort=updatedAt&limit=1000"),
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["count"], 1000);
        let u = updated(&v["tickets"]);
        assert!(u.windows(2).all(|w| w[0] <= w[1]));
        assert!(u[0] >= since);
        for t in v["tickets"].as_array().unwrap() {
            seen.insert(t["id"].as_str().unwrap().to_string());
        }
        let total = v["totalCount"].as_u64().unwrap();
        assert!(total < snap_len);
        if let Some(prev) = last_total {
            assert!(total <= prev);
        }
        last_total = Some(total);
        since = u.last().unwrap().clone();
    }
    // Overlapping at tie boundaries (>=) but never more than 3000 distinct.
    assert!(seen.len() > 2900 && seen.len() <= 3000);
    // The last page.
    // Base record i has updatedAt = base + (i / 3) minutes: the last one is
    // 333,333 minutes after 2024-01-01.
    let last = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap()
        + chrono::Duration::minutes(333_333);
    let since = (last - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let v = get(
        &f,
        &format!("/tickets?updatedAt%3E={since}&sort=updatedAt&limit=1000"),
    )
    .json();
    let t = v["tickets"].as_array().unwrap();
    assert!(t.len() > 20 && t.len() <= 33, "{}", t.len());
    assert_eq!(t.last().unwrap()["bugId"], 1_000_000);
    assert_eq!(v["totalCount"].as_u64().unwrap() as usize, t.len());
    assert_eq!(f.stats().requests, 4);
}

#[test]
fn mutations_move_records_to_the_end() {
    let f = start(FakeConfig {
        archived_default: ArchivedDefault::Include,
        ..FakeConfig::default()
    });
    let before = f.snapshot(Stream::Tickets);
    assert_eq!(before.len(), 250);
    let up = f.update(Stream::Tickets, 3);
    let bulk = f.bulk_update(Stream::Tickets, 4);
    let created = f.create(Stream::Tickets, 2);
    let deleted = f.delete(Stream::Tickets, 5);
    assert_eq!(
        (up.len(), bulk.len(), created.len(), deleted.len()),
        (3, 4, 2, 5)
    );
    let max_id = before.iter().map(|r| r.id.clone()).max().unwrap();
    assert!(created.iter().all(|c| *c > max_id));
    let after = f.snapshot(Stream::Tickets);
    assert_eq!(after.len(), 250 + 2 - 5);
    assert!(after.iter().all(|r| !deleted.contains(&r.id)));
    let last_base = "2024-01-01T04:09:00.000Z".to_string();
    for id in up.iter().chain(&bulk).chain(&created) {
        if deleted.contains(id) {
            continue;
        }
        let rec = after.iter().find(|r| &r.id == id).unwrap();
        assert!(rec.updated_at > last_base, "{rec:?}");
    }
    let bulk_ts: std::collections::HashSet<_> = after
        .iter()
        .filter(|r| bulk.contains(&r.id))
        .map(|r| r.updated_at.clone())
        .collect();
    assert!(bulk_ts.len() <= 1);
    // The API agrees: the moved records come last in updatedAt order.
    let v = get(
        &f,
        &format!("/tickets?updatedAt%3E{last_base}&sort=updatedAt&limit=1000"),
    )
    .json();
    let got: Vec<String> = ids(&v["tickets"]);
    let mut want: Vec<String> = up
        .iter()
        .chain(&bulk)
        .chain(&created)
        .filter(|i| !deleted.contains(i))
        .cloned()
        .collect();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want);
    assert_eq!(v["totalCount"].as_u64().unwrap() as usize, want.len());
    let full = get(&f, "/tickets?sort=updatedAt&limit=1000").json();
    assert_eq!(full["count"].as_u64().unwrap() as usize, after.len());
    let tail: Vec<String> = ids(&full["tickets"]).split_off(after.len() - got.len());
    assert_eq!(tail, got);
    // Updated content changed version but kept the id.
    let t = full["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == up[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(t["_id"], up[0].as_str());
}

#[test]
fn deleted_survey_answers_404() {
    let f = start(FakeConfig::default());
    let surveys = f.snapshot(Stream::Surveys);
    let sid = surveys[2].id.clone();
    assert_eq!(
        get(&f, &format!("/engagement/surveys/{sid}/responses")).status,
        200
    );
    let n_resp = f.snapshot(Stream::SurveyResponses).len();
    f.delete_survey(&sid);
    let r = get(&f, &format!("/engagement/surveys/{sid}/responses"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"statusCode":404,"message":"Not Found"})
    );
    assert_eq!(f.snapshot(Stream::SurveyResponses).len(), n_resp - 20);
    assert_eq!(
        get(&f, "/engagement/surveys")
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // New responses land on live surveys and are listed under them.
    let created = f.create(Stream::SurveyResponses, 3);
    let snap = f.snapshot(Stream::SurveyResponses);
    for c in &created {
        let rec = snap.iter().find(|r| &r.id == c).unwrap();
        let sv = rec.survey_id.clone().unwrap();
        let list = get(
            &f,
            &format!("/engagement/surveys/{sv}/responses?limit=1000"),
        )
        .json();
        assert!(ids(&list).contains(c));
    }
}

#[test]
fn rate_limit_and_retry_after_variants() {
    for (ra, body) in [
        (RetryAfter::Seconds, ErrorBody::Json),
        (RetryAfter::HttpDate, ErrorBody::Text),
        (RetryAfter::Absent, ErrorBody::Empty),
    ] {
        let f = start(FakeConfig {
            rate_limit: Some(RateLimit {
                per_window: 3,
                window: Duration::from_secs(60),
                retry_after: ra,
                body,
            }),
            ..FakeConfig::default()
        });
        for k in 0..3u32 {
            let r = get(&f, "/teams");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
            assert_eq!(
                r.header("x-ratelimit-remaining"),
                Some((2 - k).to_string().as_str())
            );
        }
        let r = get(&f, "/teams");
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        match ra {
            RetryAfter::Seconds => {
                let s: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&s));
            }
            RetryAfter::HttpDate => {
                let d = httpdate::parse_http_date(r.header("retry-after").unwrap()).unwrap();
                assert!(d > std::time::SystemTime::now());
            }
            RetryAfter::Absent => assert!(r.header("retry-after").is_none()),
        }
        match body {
            ErrorBody::Json => assert_eq!(r.json()["statusCode"], 429),
            ErrorBody::Text => assert_eq!(r.body, b"Too Many Requests"),
            ErrorBody::Empty => assert!(r.body.is_empty()),
        }
        let st = f.stats();
        assert_eq!((st.rate_limited, st.max_in_window, st.requests), (1, 3, 4));
    }
    // A short window frees slots again. The third request is refused only
    // if it comes within the window of the first: a machine that held this
    // thread up longer than that gets another go (a fresh fake); a wait of
    // more than the window only frees the slots more surely.
    let window = Duration::from_millis(300);
    for attempt in 1.. {
        let f = start(FakeConfig {
            rate_limit: Some(RateLimit {
                per_window: 2,
                window,
                ..RateLimit::default()
            }),
            ..FakeConfig::default()
        });
        let t0 = std::time::Instant::now();
        assert_eq!(get(&f, "/teams").status, 200);
        assert_eq!(get(&f, "/teams").status, 200);
        let third = get(&f, "/teams").status;
        if t0.elapsed() >= window {
            assert!(attempt < 10, "three requests never fit in {window:?}");
            continue;
        }
        assert_eq!(third, 429);
        std::thread::sleep(window + Duration::from_millis(50));
        assert_eq!(get(&f, "/teams").status, 200);
        f.set_rate_limit(None);
        assert!(get(&f, "/teams").header("x-ratelimit-limit").is_none());
        break;
    }
}

#[test]
fn every_fault_kind_is_observable() {
    let f = start(FakeConfig::default());
    let one = |k: Fault| {
        f.set_faults(Faults {
            rate: 1.0,
            kinds: vec![k],
            hang: Duration::from_millis(300),
        });
    };
    for (k, status) in [
        (Fault::Status500, 500),
        (Fault::Status502, 502),
        (Fault::Status503, 503),
        (Fault::Status504, 504),
    ] {
        one(k);
        let r = get(&f, "/sessions");
        assert_eq!(r.status, status);
        assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    }
    one(Fault::Hang);
    let t0 = std::time::Instant::now();
    let r = get(&f, "/sessions");
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(r.json().is_array());
    one(Fault::ResetMidBody);
    let r = get(&f, "/sessions");
    assert_eq!(r.status, 200);
    assert!(!r.complete, "body must be cut off");
    assert!(!r.body.is_empty());
    one(Fault::TruncatedJson);
    let r = get(&f, "/sessions");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    one(Fault::Html200);
    let r = get(&f, "/sessions");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    one(Fault::WrongShape);
    let r = get(&f, "/sessions");
    assert!(r.json().is_object());
    let r = get(&f, "/tickets");
    assert!(r.json().is_array());
    one(Fault::EmptyBody200);
    let r = get(&f, "/sessions");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let st = f.stats();
    for k in Fault::ALL {
        assert!(st.faults.get(k.name()).copied().unwrap_or(0) >= 1, "{k}");
    }
    // A partial rate hits roughly that share of requests.
    f.set_faults(Faults {
        rate: 0.3,
        ..Faults::default()
    });
    f.reset_stats();
    for _ in 0..100 {
        get(&f, "/teams");
    }
    let hit: u64 = f.stats().faults.values().sum();
    assert!((15..=50).contains(&hit), "{hit}");
}

#[test]
fn same_seed_same_bytes() {
    let cfg = FakeConfig {
        odd_records: true,
        ..FakeConfig::default()
    };
    let a = start(cfg.clone());
    let b = start(cfg);
    for p in [
        "/tickets?limit=1000&ignoreArchived=true",
        "/sessions?limit=1000",
        "/messages?limit=1000",
    ] {
        assert_eq!(get(&a, p).body, get(&b, p).body, "{p}");
    }
    let c = start(FakeConfig {
        seed: 7,
        ..FakeConfig::default()
    });
    assert_ne!(get(&a, "/sessions").body, get(&c, "/sessions").body);
}

#[test]
fn messages_cursor_walk_covers_everything() {
    let f = start(FakeConfig::default());
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = match &before {
            Some(b) => format!("/messages?paginated=true&limit=70&before={b}"),
            None => "/messages?paginated=true&limit=70".to_string(),
        };
        let v = get(&f, &q).json();
        seen.extend(ids(&v["items"]));
        if v["hasMore"] == false {
            assert!(v["nextBefore"].is_null());
            break;
        }
        before = Some(v["nextBefore"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
}

#[test]
fn shuffled_ties_differ_between_requests() {
    let f = start(FakeConfig {
        tie_group: 50,
        tie_order: TieOrder::Shuffled,
        ..FakeConfig::default()
    });
    let a = ids(&get(&f, "/sessions?sort=updatedAt&limit=50").json());
    let b = ids(&get(&f, "/sessions?sort=updatedAt&limit=50").json());
    assert_ne!(a, b);
    let (mut sa, mut sb) = (a.clone(), b.clone());
    sa.sort();
    sb.sort();
    assert_eq!(sa, sb, "same tie group, other order");
    // Across a page boundary inside a tie group, records can be skipped.
    let f = start(FakeConfig {
        tie_group: 50,
        ..FakeConfig::default()
    });
    let a = ids(&get(&f, "/sessions?sort=updatedAt&limit=50").json());
    assert_eq!(a, ids(&get(&f, "/sessions?sort=updatedAt&limit=50").json()));
}

#[test]
fn mutate_every_keeps_data_moving() {
    let f = start(FakeConfig {
        mutate_every: Some(MutateEvery {
            requests: 2,
            updates: 3,
            creates: 1,
            deletes: 1,
        }),
        ..FakeConfig::default()
    });
    for _ in 0..4 {
        assert_eq!(get(&f, "/teams").status, 200);
    }
    assert_eq!(f.snapshot(Stream::Sessions).len(), 120);
    assert_eq!(
        f.snapshot(Stream::Teams).len(),
        4,
        "teams are not incremental"
    );
    assert!(f
        .snapshot(Stream::Messages)
        .iter()
        .any(|r| r.updated_at.as_str() > "2024-01-01T05:00:00.000Z"));
}

#[test]
fn control_plane() {
    let f = start(FakeConfig::default());
    let a = f.addr();
    let r = raw_request(a, "GET", "/_fake/health", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));
    let r = raw_request(
        a,
        "POST",
        "/_fake/mutate?stream=sessions&update=2&bulk_update=1&create=3&delete=1",
        &[],
    );
    let v = r.json();
    assert_eq!(v["updated"].as_array().unwrap().len(), 3);
    assert_eq!(v["created"].as_array().unwrap().len(), 3);
    assert_eq!(v["deleted"].as_array().unwrap().len(), 1);
    let r = raw_request(a, "GET", "/_fake/snapshot/sessions", &[]);
    let lines: Vec<Value> = r
        .body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 122);
    assert!(lines[0]["id"].is_string() && lines[0]["updatedAt"].is_string());
    let r = raw_request(a, "POST", "/_fake/faults?rate=1&kinds=503", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(get(&f, "/teams").status, 503);
    raw_request(a, "POST", "/_fake/faults?rate=0", &[]);
    let st = raw_request(a, "GET", "/_fake/stats", &[]).json();
    assert_eq!(st["requests"], 1);
    assert_eq!(st["faults"]["503"], 1);
    assert_eq!(st["by_path"]["/v3/teams"], 1);
}

#[tokio::test]
async fn async_start_serves() {
    let f = fake_gleap::start(FakeConfig::default()).await.unwrap();
    assert!(f.url().starts_with("http://127.0.0.1:") && f.url().ends_with("/v3"));
    let addr = f.addr();
    let r = tokio::task::spawn_blocking(move || raw_request(addr, "GET", "/_fake/health", &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

// ------------------------------------------------- unknowns of the API

/// All tickets with their archived / spam flags, read from a server that
/// ignores those parameters (same seed, so the same tickets).
fn ticket_flags(cfg: &FakeConfig) -> Vec<(String, bool, bool)> {
    let f = start(FakeConfig {
        archived_default: ArchivedDefault::Ignored,
        ..cfg.clone()
    });
    let v = get(&f, "/tickets?limit=1000").json();
    let out: Vec<(String, bool, bool)> = v["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["archived"].as_bool().unwrap(),
                t["isSpam"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(out.len() as u64, cfg.tickets);
    out
}

#[test]
fn archived_meanings() {
    let base = FakeConfig::default();
    let all = ticket_flags(&base);
    let n_arch = all.iter().filter(|t| t.1).count();
    let n_spam = all.iter().filter(|t| t.2).count();
    assert!(
        n_arch >= 3 && n_spam >= 1,
        "{n_arch} archived, {n_spam} spam"
    );
    type Want = fn(bool, bool) -> bool;
    let cases: [(ArchivedDefault, &str, Want); 28] = {
        use ArchivedDefault::*;
        [
            (Ignored, "", |_, _| true),
            (Ignored, "archived=true", |_, _| true),
            (Ignored, "archived=false&isSpam=false", |_, _| true),
            (Ignored, "ignoreArchived=true&archived=true", |_, _| true),
            (Ignored, "isSpam=true", |_, _| true),
            (Ignored, "ignoreArchived=true", |_, _| true),
            (Ignored, "status=OPEN&archived=true", |_, _| true),
            (Include, "", |_, _| true),
            (Include, "archived=true", |a, _| a),
            (Include, "archived=false", |a, _| !a),
            (Include, "ignoreArchived=true", |_, _| true),
            (Include, "isSpam=true", |_, s| s),
            (Include, "archived=true&isSpam=false", |a, s| a && !s),
            (Exclude, "", |a, s| !a && !s),
            (Exclude, "archived=true", |a, s| a && !s),
            (Exclude, "ignoreArchived=true", |_, s| !s),
            (Exclude, "ignoreArchived=true&archived=true", |a, s| a && !s),
            (Exclude, "isSpam=true", |a, s| !a && s),
            (Exclude, "ignoreArchived=true&isSpam=true,false", |_, _| {
                true
            }),
            (WebApp, "", |a, s| !a && !s),
            (WebApp, "archived=true", |a, s| !a && !s),
            (WebApp, "archived=true&isSpam=true", |a, s| !a && s),
            (WebApp, "ignoreArchived=true", |_, s| !s),
            (
                WebApp,
                "ignoreArchived=true&archived=true&isSpam=false",
                |a, s| a && !s,
            ),
            (WebApp, "ignoreArchived=true&archived=false", |a, s| {
                !a && !s
            }),
            (WebApp, "ignoreArchived=true&isSpam=true", |_, s| s),
            (WebApp, "ignoreArchived=false&archived=true", |a, s| {
                !a && !s
            }),
            (WebApp, "ignoreArchived=true&isSpam=false,true", |_, _| true),
        ]
    };
    for meaning in [
        ArchivedDefault::Ignored,
        ArchivedDefault::Include,
        ArchivedDefault::Exclude,
        ArchivedDefault::WebApp,
    ] {
        let f = start(FakeConfig {
            archived_default: meaning,
            ..base.clone()
        });
        for (m, q, want) in cases.iter().filter(|c| c.0 == meaning) {
            let v = get(&f, &format!("/tickets?limit=1000&{q}")).json();
            let mut got = ids(&v["tickets"]);
            got.sort();
            let want: Vec<String> = all
                .iter()
                .filter(|t| want(t.1, t.2))
                .filter(|t| {
                    // `status=OPEN` still filters (checked on the response).
                    !q.contains("status=")
                        || v["tickets"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x["id"] == t.0.as_str())
                })
                .map(|t| t.0.clone())
                .collect();
            assert_eq!(got, want, "{m:?} {q:?}");
            assert_eq!(v["totalCount"], want.len(), "{m:?} {q:?}");
            // totalCount agrees with small pages too.
            let p = get(&f, &format!("/tickets?limit=7&skip=3&{q}")).json();
            assert_eq!(p["totalCount"], want.len(), "{m:?} {q:?} paged");
        }
        // The snapshot is the truth whatever the meaning.
        assert_eq!(f.snapshot(Stream::Tickets).len(), 250);
    }
}

#[test]
fn undocumented_sorts() {
    let f = start(FakeConfig::default());
    let asc = ids(&get(&f, "/sessions?limit=1000").json());
    let mut desc = asc.clone();
    desc.reverse();
    assert_eq!(ids(&get(&f, "/sessions?limit=1000&sort=-_id").json()), desc);

    let f = start(FakeConfig {
        undocumented_sort: UndocumentedSort::Refuse,
        ..FakeConfig::default()
    });
    for (path, sort) in [
        ("/sessions", "_id"),
        ("/sessions", "-id"),
        ("/tickets", "_id"),
        ("/messages", "-_id"),
        ("/sessions", "priority"),
        ("/teams", "name"),
    ] {
        let r = get(&f, &format!("{path}?sort={sort}"));
        assert_eq!(r.status, 400, "{path} {sort}");
        let field = sort.trim_start_matches('-');
        assert_eq!(
            r.json(),
            serde_json::json!({"statusCode":400,"message":format!("Invalid sort field: {field}")})
        );
    }
    for (path, sort) in [
        ("/sessions", "updatedAt"),
        ("/sessions", "-createdAt"),
        ("/messages", "-createdAt"),
        ("/engagement/surveys", "updatedAt"),
        ("/tickets", "-priority"),
        ("/tickets", "lastNotification"),
        ("/tickets", "-archivedAt"),
    ] {
        assert_eq!(
            get(&f, &format!("{path}?sort={sort}")).status,
            200,
            "{path} {sort}"
        );
    }

    let f = start(FakeConfig {
        undocumented_sort: UndocumentedSort::Ignore,
        ..FakeConfig::default()
    });
    assert_eq!(ids(&get(&f, "/sessions?limit=1000&sort=-_id").json()), asc);
    assert_eq!(ids(&get(&f, "/sessions?limit=1000&sort=-id").json()), asc);
    assert_eq!(
        ids(&get(&f, "/sessions?limit=1000&sort=-updatedAt").json()),
        desc,
        "documented sorts still apply"
    );
}

#[test]
fn messages_can_ignore_sort() {
    let f = start(FakeConfig {
        messages_sort_ignored: true,
        ..FakeConfig::default()
    });
    // Updated messages move to the end in updatedAt order, not in createdAt order.
    let moved = f.update(Stream::Messages, 5);
    let mut by_created = ids(&get(&f, "/messages?limit=1000&sort=createdAt").json());
    for q in [
        "",
        "&sort=-updatedAt",
        "&sort=updatedAt",
        "&sort=-createdAt",
        "&sort=-_id",
    ] {
        let v = get(&f, &format!("/messages?limit=1000{q}")).json();
        let created: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["createdAt"].as_str().unwrap())
            .collect();
        assert!(created.windows(2).all(|w| w[0] <= w[1]), "{q}");
        assert_eq!(ids(&v), by_created, "{q}");
    }
    let mut sorted = by_created.clone();
    sorted.sort();
    assert_eq!(by_created, sorted, "ties by id");
    assert!(moved.iter().all(|id| by_created.contains(id)));
    // Filters still apply.
    let v = get(
        &f,
        "/messages?limit=1000&sort=-updatedAt&createdAt%3E=2023-12-02T01:00:00.000Z",
    )
    .json();
    let n = v.as_array().unwrap().len();
    assert_eq!(n, 180);
    by_created.retain(|id| ids(&v).contains(id));
    assert_eq!(ids(&v), by_created);
    // Ties of createdAt come by id even where ties are shuffled.
    let g = start(FakeConfig {
        messages_sort_ignored: true,
        tie_group: 7,
        tie_created: true,
        tie_order: TieOrder::Shuffled,
        ..FakeConfig::default()
    });
    let a = ids(&get(&g, "/messages?limit=1000&sort=-createdAt").json());
    let mut a_sorted = a.clone();
    a_sorted.sort();
    assert_eq!(a, a_sorted);
    // Other endpoints keep honouring sort.
    let s = ids(&get(&f, "/sessions?limit=1000&sort=-updatedAt").json());
    let mut s_sorted = s.clone();
    s_sorted.sort();
    s_sorted.reverse();
    assert_eq!(s, s_sorted);
}

#[test]
fn encoded_operators_per_mode() {
    // Session i has updatedAt = 2024-01-01T00:00 + i minutes: 60 of 120 from 01:00.
    let raw = "/sessions?updatedAt>=2024-01-01T01:00:00.000Z&limit=1000";
    let enc = "/sessions?updatedAt%3E=2024-01-01T01:00:00.000Z&limit=1000";
    let enc2 = "/sessions?updatedAt%3e%3D2024-01-01T01:00:00.000Z&limit=1000";
    let strict = "/sessions?updatedAt%3E2024-01-01T01:00:00.000Z&limit=1000";
    let len = |r: Resp| {
        assert_eq!(r.status, 200);
        r.json().as_array().unwrap().len()
    };
    for mode in [
        EncodedOperators::Decode,
        EncodedOperators::Refuse,
        EncodedOperators::Ignore,
        EncodedOperators::Literal,
    ] {
        let f = start(FakeConfig {
            encoded_operators: mode,
            ..FakeConfig::default()
        });
        assert_eq!(len(get(&f, raw)), 60, "{mode:?}: raw operators always work");
        assert_eq!(
            len(get(
                &f,
                "/sessions?updatedAt<2024-01-01T00:10:00.000Z&limit=1000"
            )),
            10,
            "{mode:?}"
        );
        assert_eq!(len(get(&f, "/sessions?limit=1000")), 120, "{mode:?}");
        match mode {
            EncodedOperators::Decode => {
                assert_eq!(len(get(&f, enc)), 60);
                assert_eq!(len(get(&f, enc2)), 60);
                assert_eq!(len(get(&f, strict)), 59);
            }
            EncodedOperators::Refuse => {
                for (q, name) in [
                    (enc, "updatedAt%3E"),
                    (enc2, "updatedAt%3e%3D"),
                    (strict, "updatedAt%3E"),
                ] {
                    let r = get(&f, q);
                    assert_eq!(r.status, 400, "{q}");
                    assert_eq!(
                        r.json()["message"],
                        format!("Invalid query parameter: {name}")
                    );
                }
            }
            EncodedOperators::Ignore => {
                for q in [enc, enc2, strict] {
                    assert_eq!(len(get(&f, q)), 120, "{q}");
                }
            }
            EncodedOperators::Literal => {
                for q in [enc, enc2, strict] {
                    assert_eq!(len(get(&f, q)), 0, "{q}");
                }
                let t = get(
                    &f,
                    "/tickets?updatedAt%3C=2024-01-01T01:00:00.000Z&ignoreArchived=true",
                )
                .json();
                assert_eq!(
                    (t["count"].clone(), t["totalCount"].clone()),
                    (0.into(), 0.into())
                );
                // Exact filters still answer.
                let open = get(&f, "/tickets?status=OPEN&limit=1000").json();
                assert!(open["count"].as_u64().unwrap() > 0);
            }
        }
    }
}

#[test]
fn id_range_filters_per_mode() {
    let f = start(FakeConfig::default());
    let all = ids(&get(&f, "/sessions?limit=1000").json());
    let q = format!("/sessions?_id%3E{}&limit=1000", all[99]);
    let q_raw = format!("/sessions?_id>={}&limit=1000", all[99]);
    assert_eq!(ids(&get(&f, &q).json()), all[100..].to_vec());
    assert_eq!(ids(&get(&f, &q_raw).json()), all[99..].to_vec());

    let f = start(FakeConfig {
        id_range_filters: IdRangeFilters::Refuse,
        ..FakeConfig::default()
    });
    let r = get(&f, &q);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Invalid filter: _id>");
    let r = get(&f, &format!("/tickets?id%3C={}", all[3]));
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, "Invalid filter: id<=".into())
    );
    assert_eq!(
        get(&f, "/sessions?updatedAt%3E=2024-01-01T01:00:00.000Z").status,
        200
    );
    // The server's own cursor on /messages is not a client range filter.
    let m = get(&f, "/messages?paginated=true&limit=100").json();
    let before = m["nextBefore"].as_str().unwrap();
    let r = get(
        &f,
        &format!("/messages?paginated=true&limit=100&before={before}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 100);

    let f = start(FakeConfig {
        id_range_filters: IdRangeFilters::Ignore,
        ..FakeConfig::default()
    });
    assert_eq!(ids(&get(&f, &q).json()), all);
    assert_eq!(ids(&get(&f, &q_raw).json()), all);
    let r = get(
        &f,
        "/sessions?updatedAt%3E=2024-01-01T01:00:00.000Z&limit=1000",
    );
    assert_eq!(
        r.json().as_array().unwrap().len(),
        60,
        "date ranges still apply"
    );
}

#[test]
fn over_limit_clamped_or_refused() {
    let f = start(FakeConfig {
        max_limit: Some(100),
        over_limit: OverLimit::Refuse,
        ..FakeConfig::default()
    });
    for path in ["/sessions", "/tickets", "/messages", "/teams"] {
        let r = get(&f, &format!("{path}?limit=1000"));
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(
            r.json(),
            serde_json::json!({"statusCode":400,"message":"limit must not exceed 100"})
        );
        assert_eq!(get(&f, &format!("{path}?limit=100")).status, 200, "{path}");
        assert_eq!(get(&f, path).status, 200, "{path}");
    }
    assert_eq!(
        get(&f, "/sessions?limit=100")
            .json()
            .as_array()
            .unwrap()
            .len(),
        100
    );

    // Refuse with only the documented caps.
    let f = start(FakeConfig {
        over_limit: OverLimit::Refuse,
        ..FakeConfig::default()
    });
    assert_eq!(get(&f, "/tickets?limit=1000").status, 200);
    assert_eq!(
        get(&f, "/tickets?limit=1001").json()["message"],
        "limit must not exceed 1000"
    );
    assert_eq!(get(&f, "/messages?limit=10000").status, 200);
    assert_eq!(get(&f, "/messages?limit=10001").status, 400);

    // Clamp (default) with the undocumented cap: served at 100, silently.
    let f = start(FakeConfig {
        max_limit: Some(100),
        ..FakeConfig::default()
    });
    let r = get(&f, "/sessions?limit=1000");
    assert_eq!((r.status, r.json().as_array().unwrap().len()), (200, 100));
}

#[test]
fn tie_groups_can_share_created_at() {
    let cfg = FakeConfig {
        tie_group: 5,
        tie_created: true,
        ..FakeConfig::default()
    };
    let f = start(cfg.clone());
    let v = get(&f, "/sessions?limit=1000&sort=createdAt").json();
    let rows: Vec<(String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["createdAt"].as_str().unwrap().to_string(),
                s["updatedAt"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 120);
    for (k, g) in rows.chunks(5).enumerate() {
        assert!(
            g.iter().all(|r| r.1 == g[0].1 && r.2 == g[0].2),
            "group {k}"
        );
        assert!(g.iter().all(|r| r.1 <= r.2));
        assert!(
            g.windows(2).all(|w| w[0].0 < w[1].0),
            "distinct ids in index order"
        );
        if k > 0 {
            assert!(rows[k * 5 - 1].1 < g[0].1, "groups differ");
        }
    }
    // Without the knob, createdAt differs inside a tie group.
    let f = start(FakeConfig {
        tie_created: false,
        ..cfg
    });
    let v = get(&f, "/sessions?limit=5&sort=createdAt").json();
    assert_ne!(v[0]["createdAt"], v[1]["createdAt"]);
    assert_eq!(v[0]["updatedAt"], v[1]["updatedAt"]);
}

#[test]
fn date_header_can_be_left_out() {
    let f = start(FakeConfig::default());
    assert!(get(&f, "/teams").header("date").is_some());
    for offset in [0, 60_000] {
        let f = start(FakeConfig {
            date_header: false,
            clock_offset_ms: offset,
            ..FakeConfig::default()
        });
        let r = get(&f, "/teams");
        assert_eq!(r.status, 200);
        assert!(r.header("date").is_none(), "{:?}", r.headers);
        assert!(get(&f, "/nope").header("date").is_none());
        // Faults still behave on this serving path.
        f.set_faults(Faults {
            rate: 1.0,
            kinds: vec![Fault::ResetMidBody],
            ..Faults::default()
        });
        let r = get(&f, "/sessions");
        assert_eq!(r.status, 200);
        assert!(!r.complete);
    }
}

#[test]
fn rate_limit_headers_can_be_left_out() {
    let f = start(FakeConfig {
        rate_limit: Some(RateLimit {
            per_window: 2,
            ..RateLimit::default()
        }),
        rate_limit_headers: false,
        ..FakeConfig::default()
    });
    let r = get(&f, "/teams");
    assert_eq!(r.status, 200);
    assert!(r.header("x-ratelimit-limit").is_none());
    assert!(r.header("x-ratelimit-remaining").is_none());
    get(&f, "/teams");
    let r = get(&f, "/teams");
    assert_eq!(r.status, 429);
    assert!(r.header("x-ratelimit-remaining").is_none());
    assert!(r.header("retry-after").is_some());
}

#[test]
fn total_count_can_be_left_out() {
    let f = start(FakeConfig {
        total_count: false,
        ..FakeConfig::default()
    });
    let v = get(&f, "/tickets?limit=3").json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["tickets"]);
    assert_eq!(v["tickets"].as_array().unwrap().len(), 3);
}

#[test]
fn responses_wrapped_under_any_key() {
    for key in ["data", "responses", "items"] {
        let f = start(FakeConfig {
            responses_shape: ResponsesShape::Wrapped(key.into()),
            ..FakeConfig::default()
        });
        let sid = f.snapshot(Stream::Surveys)[0].id.clone();
        let v = get(&f, &format!("/engagement/surveys/{sid}/responses?limit=7")).json();
        assert_eq!(v.as_object().unwrap().len(), 1, "{key}");
        assert_eq!(v[key].as_array().unwrap().len(), 7, "{key}");
    }
}

/// A client that must work on every mode: no range filters, no sort, pages
/// of 100 by skip, archived and spam asked for both ways; waits out 429s.
fn get_patiently(f: &FakeGleap, target: &str) -> Value {
    for _ in 0..20 {
        let r = get(f, target);
        if r.status == 429 {
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        assert_eq!(
            r.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        return r.json();
    }
    panic!("{target}: still rate limited");
}

fn list_all(f: &FakeGleap, path: &str, extra: &str, key: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for skip in (0..).step_by(100) {
        let v = get_patiently(f, &format!("{path}?limit=100&skip={skip}{extra}"));
        let items = match key {
            Some(k) => v[k].clone(),
            None if v.is_array() => v,
            // A wrapped array under whatever key.
            None => v.as_object().unwrap().values().next().unwrap().clone(),
        };
        let got = ids(&items);
        let n = got.len();
        out.extend(got);
        if n < 100 {
            break;
        }
        if out.len() > 10_000 {
            break; // unpaginated: the same whole list again
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_mode_applies_starts_and_serves_every_record() {
    let mut names = std::collections::HashSet::new();
    for m in MODES {
        assert!(names.insert(m.name), "duplicate mode {}", m.name);
        assert_eq!(mode(m.name).unwrap().name, m.name);
        assert!(!m.about.is_empty());
    }
    for required in [
        "archived-ignored",
        "archived-include",
        "archived-exclude",
        "archived-webapp",
        "id-sort-refused",
        "id-sort-ignored",
        "messages-sort-ignored",
        "sort-ignored",
        "filters-ignored",
        "encoded-operators-refused",
        "encoded-operators-ignored",
        "encoded-operators-literal",
        "id-filters-refused",
        "id-filters-ignored",
        "limit-refused",
        "silent-cap",
        "ties-shuffled",
        "ties-share-created",
        "no-date-header",
        "no-ratelimit-headers",
        "no-total-count",
        "responses-wrapped",
        "retry-after-absent",
    ] {
        assert!(mode(required).is_some(), "{required}");
    }
    assert!(mode("nope").is_none());
    let mut cfg = FakeConfig::default();
    let e = apply_modes(&mut cfg, "silent-cap,nope").unwrap_err();
    assert!(
        e.contains("\"nope\"") && e.contains("archived-webapp"),
        "{e}"
    );

    let base = FakeConfig::default();
    let truth = |f: &FakeGleap, s: Stream| -> Vec<String> {
        f.snapshot(s).into_iter().map(|r| r.id).collect()
    };
    // A client that pages by `skip` alone cannot go past a search index's
    // paging depth: that mode is read by keyset in its own test below.
    for m in MODES.iter().filter(|m| m.name != "deep-paging-capped") {
        let mut cfg = base.clone();
        (m.apply)(&mut cfg);
        let f = start(cfg);
        let mut tickets = list_all(
            &f,
            "/tickets",
            "&ignoreArchived=true&isSpam=true",
            Some("tickets"),
        );
        tickets.extend(list_all(
            &f,
            "/tickets",
            "&ignoreArchived=true&isSpam=false",
            Some("tickets"),
        ));
        tickets.sort();
        tickets.dedup();
        assert_eq!(tickets, truth(&f, Stream::Tickets), "{}: tickets", m.name);
        for (path, s) in [
            ("/sessions", Stream::Sessions),
            ("/messages", Stream::Messages),
            ("/teams", Stream::Teams),
            ("/engagement/surveys", Stream::Surveys),
            ("/message-templates", Stream::MessageTemplates),
        ] {
            assert_eq!(
                list_all(&f, path, "", None),
                truth(&f, s),
                "{}: {path}",
                m.name
            );
        }
        let mut responses = Vec::new();
        for sv in f.snapshot(Stream::Surveys) {
            responses.extend(list_all(
                &f,
                &format!("/engagement/surveys/{}/responses", sv.id),
                "",
                None,
            ));
        }
        responses.sort();
        assert_eq!(
            responses,
            truth(&f, Stream::SurveyResponses),
            "{}: responses",
            m.name
        );
        // The documented cursor walk of /messages works too.
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let q = match &before {
                Some(b) => format!("/messages?paginated=true&limit=100&before={b}"),
                None => "/messages?paginated=true&limit=100".to_string(),
            };
            let v = get_patiently(&f, &q);
            seen.extend(ids(&v["items"]));
            assert!(seen.len() <= 300, "{}: cursor walk loops", m.name);
            match v["nextBefore"].as_str() {
                Some(b) => before = Some(b.to_string()),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, truth(&f, Stream::Messages), "{}: cursor walk", m.name);
    }
}

/// The binary: `--list-modes`, `--mode` (after the other flags; unknown
/// names refused with the valid ones) and the new flags.
#[test]
fn cli_modes_and_flags() {
    let bin = env!("CARGO_BIN_EXE_fake-gleap");
    let out = std::process::Command::new(bin)
        .arg("--list-modes")
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    for m in MODES {
        assert!(listed.lines().any(|l| l.starts_with(m.name)), "{}", m.name);
    }
    let out = std::process::Command::new(bin)
        .args(["--mode", "silent-cap,nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("\"nope\"") && err.contains("archived-webapp"),
        "{err}"
    );
    for bad in [
        ["--archived-default", "sometimes"],
        ["--encoded-operators", "maybe"],
        ["--over-limit", "x"],
    ] {
        let out = std::process::Command::new(bin).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }

    let dir = std::env::temp_dir().join(format!("fake-gleap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("url");
    /// Stops the server this test started, even if an assertion fails.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(bin)
        .args(["--port", "0", "--ready-file"])
        .arg(&ready)
        .args([
            "--archived-default",
            "include",
            "--encoded-operators",
            "refuse",
            "--no-total-count",
            "--mode",
            "archived-webapp,no-date-header,limit-refused",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Kill(child);
    let t0 = std::time::Instant::now();
    while !ready.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&ready).unwrap();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/v3")
        .parse()
        .unwrap();
    let h = [
        ("Authorization", "Bearer fake-api-key"),
        ("Project", "fake-project"),
    ];
    let r = raw_request(addr, "GET", "/v3/tickets?archived=true&limit=100", &h);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.status, 200);
    assert!(r.header("date").is_none());
    let v = r.json();
    assert!(v.get("totalCount").is_none());
    let t = v["tickets"].as_array().unwrap();
    assert!(
        !t.is_empty() && t.iter().all(|t| t["archived"] == false),
        "webapp after include"
    );
}

/// Past the paging depth a list answers 400 "Result window is too large";
/// a keyset walk (`updatedAt>=` the last stamp read) never goes deep and
/// reads every record.
#[test]
fn deep_paging_is_refused_past_the_window_and_keyset_walks_read_everything() {
    let mut cfg = FakeConfig::default();
    (mode("deep-paging-capped").unwrap().apply)(&mut cfg);
    let f = start(cfg);
    let r = get(&f, "/sessions?limit=50&skip=50");
    assert_eq!(r.status, 200);
    let r = get(&f, "/sessions?limit=50&skip=51");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("Result window is too large"));
    let mut seen: Vec<String> = Vec::new();
    let mut from = String::from("1970-01-01T00:00:00.000Z");
    loop {
        let page = get(
            &f,
            &format!("/sessions?sort=updatedAt&limit=50&updatedAt>={from}"),
        )
        .json();
        let items = page.as_array().unwrap();
        let fresh: Vec<String> = ids(&page)
            .into_iter()
            .filter(|i| !seen.contains(i))
            .collect();
        if fresh.is_empty() {
            break;
        }
        seen.extend(fresh);
        from = items.last().unwrap()["updatedAt"]
            .as_str()
            .unwrap()
            .to_string();
    }
    seen.sort();
    let truth: Vec<String> = f
        .snapshot(Stream::Sessions)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(seen, truth);
}

/// A lagging index: an update shows in the lists only after its delay (the
/// old version meanwhile), and updates show out of the order written.
#[test]
fn a_lagging_index_lists_updates_late_and_out_of_order() {
    let lag = Duration::from_millis(1500);
    let listed = |f: &FakeGleap| -> std::collections::HashMap<String, String> {
        get(f, "/sessions?limit=1000")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["updatedAt"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // The lists are read over and over from the updates on, until every
    // update shows: seeing some late, and some out of order, needs a
    // listing while updates are still pending, which a machine that held
    // this thread up for the whole bound never takes; it gets another go
    // (a fresh fake).
    for attempt in 1.. {
        let f = start(FakeConfig {
            index_lag: lag,
            ..FakeConfig::default()
        });
        let updated = f.update(Stream::Sessions, 40);
        let written = std::time::Instant::now();
        let truth: std::collections::HashMap<String, String> = f
            .snapshot(Stream::Sessions)
            .into_iter()
            .map(|r| (r.id, r.updated_at))
            .collect();
        let (mut late, mut out_of_order) = (false, false);
        loop {
            let asked = written.elapsed();
            let now = listed(&f);
            let mut stamps: Vec<(&String, bool)> = updated
                .iter()
                .map(|id| (&truth[id], now[id] == truth[id]))
                .collect();
            if stamps.iter().all(|(_, shown)| *shown) {
                break;
            }
            // Asked after the bound, every update shows (the fake counts
            // whole milliseconds: a few more of margin).
            assert!(
                asked < lag + Duration::from_millis(10),
                "an update still hidden {asked:?} after it"
            );
            late = true;
            // Out of order: some update shown while an earlier-stamped one
            // is not.
            stamps.sort();
            let first_hidden = stamps.iter().position(|(_, shown)| !shown);
            let last_shown = stamps.iter().rposition(|(_, shown)| *shown);
            out_of_order |= matches!((first_hidden, last_shown), (Some(h), Some(s)) if h < s);
            std::thread::sleep(Duration::from_millis(20));
        }
        if late && out_of_order {
            break;
        }
        assert!(
            attempt < 10,
            "updates never showed late and out of order (late: {late})"
        );
    }
}

/// A list cache answers an identical request with the same body until it
/// expires; a request that differs (another limit) is answered afresh.
#[test]
fn a_list_cache_answers_identical_requests_with_the_same_body() {
    let cache = Duration::from_millis(800);
    // The second request is answered from the cache only if it comes
    // within the cache's life of the first: a machine that held this
    // thread up longer than that gets another go (a fresh fake); a wait of
    // more than its life only expires it more surely.
    for attempt in 1.. {
        let f = start(FakeConfig {
            list_cache: cache,
            ..FakeConfig::default()
        });
        let t0 = std::time::Instant::now();
        let first = get(&f, "/sessions?sort=-updatedAt&limit=1").json();
        let updated = f.update(Stream::Sessions, 1);
        let cached = get(&f, "/sessions?sort=-updatedAt&limit=1").json();
        if t0.elapsed() >= cache {
            assert!(attempt < 10, "two requests never fit in {cache:?}");
            continue;
        }
        assert_eq!(cached, first, "the same request, from the cache");
        let fresh = get(&f, "/sessions?sort=-updatedAt&limit=2").json();
        assert_eq!(
            fresh[0]["id"],
            json!(updated[0]),
            "another request is fresh"
        );
        std::thread::sleep(cache + Duration::from_millis(100));
        let expired = get(&f, "/sessions?sort=-updatedAt&limit=1").json();
        assert_eq!(expired[0]["id"], json!(updated[0]), "the cache expired");
        break;
    }
}
