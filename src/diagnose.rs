//! `--test=api`: what this server does where Gleap's docs are silent.
//!
//! A handful of requests per endpoint test each assumption of
//! `assumptions.rs` and print, per endpoint and assumption, what this server
//! does and what a sync will do about it, as a Markdown table to paste into
//! a bug report. The key is never printed. A sync does not need this: it
//! finds out the same things by itself as it goes.

use std::io::Write;

use crate::assumptions::{Assumption, Fact};
use crate::client::{Cancel, Client, FetchError};
use crate::config::Config;
use crate::conform::{Conformer, Meta};
use crate::error::Error;
use crate::metrics::StreamStats;
use crate::pager::query::{Op, Query};
use crate::scan;
use crate::streams::{self, ParentIds, StreamDef};

/// What one assumption was found to be on one endpoint.
struct Finding {
    endpoint: String,
    assumption: Assumption,
    fact: Fact,
    /// What was seen, in a few words.
    seen: String,
    /// What a sync does, where it depends on more than the fact.
    does: Option<String>,
}

/// One probe's answer.
enum Answer {
    Page(Probe),
    Refused(String),
}

struct Probe {
    metas: Vec<Meta>,
    len: usize,
    total: Option<u64>,
    /// `array` or `object`.
    shape: &'static str,
}

impl Probe {
    fn times(&self) -> Vec<i64> {
        self.metas.iter().filter_map(|m| m.updated_ms).collect()
    }
}

struct Prober {
    client: std::sync::Arc<Client>,
    stats: StreamStats,
    findings: Vec<Finding>,
}

impl Prober {
    async fn ask(&self, def: &'static StreamDef, path: &str, q: &Query) -> Result<Answer, Error> {
        let answer = self.ask_raw(def, path, q).await;
        Self::answer(path, answer)
    }

    async fn ask_raw(
        &self,
        def: &'static StreamDef,
        path: &str,
        q: &Query,
    ) -> Result<Probe, FetchError> {
        let mut conformer = Conformer::new(def, &[]);
        conformer.wants_created = true;
        self.client
            .get(&self.stats, path, &q.encode(), |body| {
                let shape = if body.trim_start().starts_with('[') {
                    "array"
                } else {
                    "object"
                };
                let mut metas = Vec::new();
                let info = scan::each_record(body, def, |r| {
                    if let Some(m) = r.and_then(|r| conformer.meta(r)) {
                        metas.push(m);
                    }
                })?;
                Ok(Probe {
                    metas,
                    len: info.len,
                    total: info.total,
                    shape,
                })
            })
            .await
    }

    fn answer(path: &str, answer: Result<Probe, FetchError>) -> Result<Answer, Error> {
        match answer {
            Ok(p) => Ok(Answer::Page(p)),
            Err(FetchError::BadRequest(why)) => Ok(Answer::Refused(why)),
            Err(FetchError::NotFound) => Err(Error::Api(format!(
                "GET {path} answered 404: check \"api_url\""
            ))),
            Err(FetchError::Forbidden(why)) => Err(Error::Auth(why)),
            Err(FetchError::Fatal(e)) => Err(e),
            Err(FetchError::Cancelled | FetchError::Replan) => {
                Err(Error::Internal("the diagnosis was interrupted".into()))
            }
        }
    }

    /// The first request to an endpoint: as [`Prober::ask`], but an optional
    /// stream's 403 or 404 (a feature the project's plan lacks) is a
    /// finding, and `None`: there is nothing more to probe there.
    async fn reach(
        &mut self,
        def: &'static StreamDef,
        path: &str,
        q: &Query,
    ) -> Result<Option<Answer>, Error> {
        if !def.optional {
            return self.ask(def, path, q).await.map(Some);
        }
        let status = match self.ask_raw(def, path, q).await {
            Err(FetchError::NotFound) => 404,
            Err(FetchError::Forbidden(_)) => 403,
            other => return Self::answer(path, other).map(Some),
        };
        self.found(
            path,
            Assumption::Feature,
            Fact::Unavailable,
            format!("answered {status}: stream {} is skipped", def.name),
        );
        Ok(None)
    }

    fn found(
        &mut self,
        endpoint: &str,
        assumption: Assumption,
        fact: Fact,
        seen: impl Into<String>,
    ) {
        self.findings.push(Finding {
            endpoint: endpoint.to_string(),
            assumption,
            fact,
            seen: seen.into(),
            does: None,
        });
    }

    /// Probes one endpoint read by replication key.
    async fn endpoint(&mut self, def: &'static StreamDef, path: &str) -> Result<(), Error> {
        let rk = def.replication_key.expect("diagnosed endpoints have one");
        let shown = path.to_string();
        let limit = def.max_page_size.min(1000) as usize;
        // The plain listing, a full page of it.
        let Some(first) = self.reach(def, path, &Query::new(&[]).limit(limit)).await? else {
            return Ok(());
        };
        let (plain, limit) = match first {
            Answer::Page(p) => {
                self.found(
                    &shown,
                    Assumption::LimitAccepted,
                    Fact::Holds,
                    format!("limit={limit} accepted"),
                );
                (p, limit)
            }
            Answer::Refused(why) => {
                self.found(
                    &shown,
                    Assumption::LimitAccepted,
                    Fact::Refused,
                    format!("limit={limit}: {why}"),
                );
                match self.ask(def, path, &Query::new(&[]).limit(100)).await? {
                    Answer::Page(p) => (p, 100),
                    Answer::Refused(why) => return Err(Error::Api(why)),
                }
            }
        };
        self.found(
            &shown,
            Assumption::ResponseShape,
            Fact::Holds,
            if plain.shape == "array" {
                "an array"
            } else {
                "an object wrapping the array"
            },
        );
        self.found(
            &shown,
            Assumption::PageSize,
            if plain.len < limit && plain.len >= 10 {
                Fact::Unknown
            } else {
                Fact::Holds
            },
            format!(
                "{} records for limit={limit}{}",
                plain.len,
                if plain.len < limit && plain.len >= 10 {
                    " (all there are, or a cap: the tap asks once more)"
                } else {
                    ""
                }
            ),
        );
        if def.total_field.is_some() {
            let (fact, seen) = match plain.total {
                Some(t) => (Fact::Holds, format!("totalCount {t}")),
                None => (Fact::Ignored, "no totalCount".to_string()),
            };
            self.found(&shown, Assumption::TotalCount, fact, seen);
        }
        let Some(first) = plain.metas.iter().find(|m| m.updated_ms.is_some()).cloned() else {
            self.found(
                &shown,
                Assumption::SortByUpdatedAt,
                Fact::Unknown,
                "no records to test with",
            );
            return Ok(());
        };
        let at = first.updated_ms.expect("found with one");

        // The sort: ascending against one record descending.
        // Enough records to span more than one group sharing an `updatedAt`.
        let asc = self
            .ask(def, path, &Query::new(&[]).sort(rk, false).limit(50))
            .await?;
        let desc = self
            .ask(def, path, &Query::new(&[]).sort(rk, true).limit(1))
            .await?;
        let (fact, seen) = match (&asc, &desc) {
            (Answer::Refused(why), _) | (_, Answer::Refused(why)) => (Fact::Refused, why.clone()),
            (Answer::Page(a), Answer::Page(d)) => {
                let times = a.times();
                let ordered = times.windows(2).all(|p| p[0] <= p[1]);
                let distinct = times.first() != times.last();
                match (d.metas.first(), distinct) {
                    (_, false) => (
                        Fact::Unknown,
                        "fewer than two distinct values to compare".into(),
                    ),
                    (Some(r), true)
                        if ordered
                            && r.updated_ms >= times.iter().copied().max()
                            && a.metas.first().map(|m| &m.id) != Some(&r.id) =>
                    {
                        (
                            Fact::Holds,
                            "ascending and descending start at opposite ends".into(),
                        )
                    }
                    _ => (
                        Fact::Ignored,
                        "sort=updatedAt and sort=-updatedAt give the same order".into(),
                    ),
                }
            }
        };
        self.found(&shown, Assumption::SortByUpdatedAt, fact, seen);

        // The range filters: exactly the first record's `updatedAt`.
        let exact = Query::new(&[])
            .at(rk, Op::Ge, at)
            .at(rk, Op::Lt, at + 1)
            .limit(limit);
        let exact_answer = self.ask(def, path, &exact).await?;
        let (fact, seen) = match &exact_answer {
            Answer::Refused(why) => (Fact::Refused, why.clone()),
            Answer::Page(p) if p.len == 0 => (
                Fact::Misread,
                "a filter on a record's own updatedAt found nothing".into(),
            ),
            Answer::Page(p) if p.times().iter().all(|&t| t == at) => (
                Fact::Holds,
                format!("{} record(s) at exactly that instant", p.len),
            ),
            Answer::Page(_) => (Fact::Ignored, "records outside the range came back".into()),
        };
        let ties: Option<Vec<String>> = match (&exact_answer, fact) {
            (Answer::Page(p), Fact::Holds) if p.len > 1 => {
                Some(p.metas.iter().map(|m| m.id.clone()).collect())
            }
            _ => None,
        };
        self.found(&shown, Assumption::RangeFilters, fact, seen);

        // createdAt and _id ranges, on the same record.
        if let Some(created) = first.created_ms {
            let q = Query::new(&[])
                .at("createdAt", Op::Ge, created)
                .at("createdAt", Op::Lt, created + 1)
                .limit(limit);
            let (fact, seen) = match self.ask(def, path, &q).await? {
                Answer::Refused(why) => (Fact::Refused, why),
                Answer::Page(p) if p.len == 0 => (
                    Fact::Misread,
                    "a filter on a record's own createdAt found nothing".into(),
                ),
                Answer::Page(p) if p.metas.iter().all(|m| m.created_ms == Some(created)) => (
                    Fact::Holds,
                    if p.len > 1 {
                        format!(
                            "only that instant came back ({} records share that createdAt)",
                            p.len
                        )
                    } else {
                        "only that instant came back".into()
                    },
                ),
                Answer::Page(_) => (Fact::Ignored, "records outside the range came back".into()),
            };
            self.found(&shown, Assumption::CreatedAtFilters, fact, seen);
        }
        let q = Query::new(&[])
            .with("_id", Op::Ge, first.id.clone())
            .with("_id", Op::Le, first.id.clone())
            .limit(limit);
        let (fact, seen) = match self.ask(def, path, &q).await? {
            Answer::Refused(why) => (Fact::Refused, why),
            Answer::Page(p) if p.len == 0 => (
                Fact::Misread,
                "a filter on a record's own _id found nothing".into(),
            ),
            Answer::Page(p) if p.metas.iter().all(|m| m.id == first.id) => {
                (Fact::Holds, "only that record came back".into())
            }
            Answer::Page(_) => (Fact::Ignored, "other records came back".into()),
        };
        self.found(&shown, Assumption::IdFilters, fact, seen);

        // `skip`: the second record of a page of two is the first of `skip=1`.
        let two = self.ask(def, path, &Query::new(&[]).limit(2)).await?;
        let one = self
            .ask(def, path, &Query::new(&[]).limit(1).skip(1))
            .await?;
        let (mut fact, mut seen) = match (two, one) {
            (Answer::Page(t), Answer::Page(o)) if t.metas.len() == 2 => {
                if o.metas.first().map(|m| &m.id) == Some(&t.metas[1].id) {
                    (
                        Fact::Holds,
                        "skip=1 starts at the second record".to_string(),
                    )
                } else {
                    (
                        Fact::Ignored,
                        "skip=1 does not start at the second record".to_string(),
                    )
                }
            }
            (Answer::Refused(why), _) | (_, Answer::Refused(why)) => (Fact::Refused, why),
            _ => (Fact::Unknown, "fewer than two records".to_string()),
        };
        // Records sharing one `updatedAt`, sorted by it, asked for again:
        // the same order? (MongoDB leaves the order of ties open.)
        if ties.is_some() {
            let sorted = exact.clone().sort(rk, false);
            let mut first_order: Option<Vec<String>> = None;
            for _ in 0..4 {
                if let Answer::Page(p) = self.ask(def, path, &sorted).await? {
                    let order: Vec<String> = p.metas.iter().map(|m| m.id.clone()).collect();
                    let Some(first_order) = &first_order else {
                        first_order = Some(order);
                        continue;
                    };
                    if order != *first_order {
                        fact = Fact::Ignored;
                        seen = format!("{seen}; records sharing one updatedAt come back in another order from request to request");
                        break;
                    }
                }
            }
        }
        self.found(&shown, Assumption::Skip, fact, seen);

        // Paging depth: a search index refuses `skip + limit` past 10,000
        // by default ("Result window is too large").
        const DEEP: usize = 10_000;
        let (fact, seen) = match self
            .ask(def, path, &Query::new(&[]).limit(1).skip(DEEP))
            .await?
        {
            Answer::Refused(why) => (Fact::Refused, format!("skip={DEEP}: {why}")),
            Answer::Page(_) => (Fact::Holds, format!("skip={DEEP} answered")),
        };
        self.found(&shown, Assumption::DeepSkip, fact, seen);

        // What the plain listing hides, and whether the web app's queries list it.
        for (i, hidden) in def.hidden.iter().enumerate() {
            let bit = 1u8 << i;
            let in_plain = plain.metas.iter().any(|m| m.flags & bit != 0);
            let mut seen = format!(
                "the plain listing shows {} with {} true",
                if in_plain { "records" } else { "no record" },
                hidden.flag
            );
            // The web app's query, then the same without `ignoreArchived`.
            let alone: Vec<(&str, &str)> = hidden
                .query
                .iter()
                .copied()
                .filter(|(k, _)| *k != "ignoreArchived")
                .collect();
            let mut fact = Fact::Holds;
            for (i, query) in [hidden.query, &alone[..]].into_iter().enumerate() {
                let q = Query::new(&[]).limit(5);
                let q = query.iter().fold(q, |q, (k, v)| q.with(k, Op::Eq, *v));
                let said = match self.ask(def, path, &q).await? {
                    Answer::Refused(why) => {
                        fact = Fact::Refused;
                        format!("refused ({why})")
                    }
                    Answer::Page(p) => {
                        let listed = p.metas.iter().filter(|m| m.flags & bit != 0).count();
                        if i == 0 && listed < p.metas.len() {
                            fact = Fact::Ignored;
                        }
                        format!("{listed} such and {} other", p.metas.len() - listed)
                    }
                };
                seen.push_str(&format!(
                    "; {} lists {said}",
                    q.without(|k, _| k == "limit").encode()
                ));
            }
            self.found(&shown, Assumption::HiddenRecords, fact, seen);
            self.findings.last_mut().expect("just found").does = Some(if in_plain {
                format!(
                    "reads them with the plain listing: no walk of {}",
                    Query::new(hidden.query).encode()
                )
            } else {
                format!(
                    "reads them with {}, under a bookmark of their own",
                    Query::new(hidden.query).encode()
                )
            });
        }
        // The sort a sync does not use, for the record.
        // Descending, so that a server ignoring it (and answering in its
        // natural order, often ascending ids) shows.
        let (fact, seen) = match self
            .ask(def, path, &Query::new(&[]).sort("_id", true).limit(5))
            .await?
        {
            Answer::Refused(why) => (Fact::Refused, why),
            Answer::Page(p) if p.metas.len() < 2 => {
                (Fact::Unknown, "fewer than two records".to_string())
            }
            Answer::Page(p) if p.metas.windows(2).all(|w| w[0].id > w[1].id) => (
                Fact::Holds,
                "sort=-_id answered in descending id order".to_string(),
            ),
            Answer::Page(_) => (
                Fact::Ignored,
                "sort=-_id answered, not in descending id order".to_string(),
            ),
        };
        self.found(&shown, Assumption::SortById, fact, seen);
        Ok(())
    }
}

/// Runs the diagnosis and prints the table.
pub async fn api(config: &Config, out: &mut dyn Write) -> Result<(), Error> {
    let (_cancel_tx, cancel) = Cancel::new();
    let client = Client::new(config, cancel)?;
    let mut p = Prober {
        client: client.clone(),
        stats: StreamStats::new("diagnosis"),
        findings: Vec::new(),
    };
    // Streams read by replication key: sort, filters, ties... Per-parent
    // streams (`ParentIds::ChangedSince`) are not: each parent's list is
    // read whole, by offset (below).
    let per_parent = |d: &StreamDef| d.parent.is_some_and(|p| p.ids == ParentIds::ChangedSince);
    for def in streams::STREAMS
        .iter()
        .filter(|d| d.replication_key.is_some() && !per_parent(d))
    {
        match def.parent {
            None => p.endpoint(def, def.path).await?,
            Some(parent) => {
                let parent = streams::find(parent.stream).expect("registry parents exist");
                let Some(Answer::Page(list)) = p
                    .reach(parent, parent.path, &Query::new(&[]).limit(100))
                    .await?
                else {
                    continue;
                };
                // The parent with the most to test with: the first with records.
                for m in list.metas.iter().take(5) {
                    let path = def.path.replace("{parent_id}", &m.id);
                    let before = p.findings.len();
                    p.endpoint(def, &path).await?;
                    let tested = p.findings[before..].iter().any(|f| {
                        matches!(f.assumption, Assumption::RangeFilters | Assumption::Feature)
                    });
                    if tested {
                        break;
                    }
                    p.findings.truncate(before);
                }
            }
        }
    }
    // Lists without a replication key, and each parent's list of a
    // per-parent stream, are read by offset: `limit` and `skip`.
    for def in streams::STREAMS
        .iter()
        .filter(|d| d.replication_key.is_none() || per_parent(d))
    {
        let path = match def.parent {
            None => def.path.to_string(),
            Some(parent) => {
                let parent = streams::find(parent.stream).expect("registry parents exist");
                let Answer::Page(list) = p
                    .ask(parent, parent.path, &Query::new(&[]).limit(1))
                    .await?
                else {
                    continue;
                };
                let Some(m) = list.metas.first() else {
                    continue;
                };
                def.path.replace("{parent_id}", &m.id)
            }
        };
        if let Some(Answer::Page(one)) = p.reach(def, &path, &Query::new(&[]).limit(1)).await? {
            let (fact, seen) = if one.len > 1 {
                (
                    Fact::Ignored,
                    format!(
                        "limit=1 answered with {} records: the list comes whole",
                        one.len
                    ),
                )
            } else {
                (
                    Fact::Holds,
                    format!("limit=1 answered with {} record(s)", one.len),
                )
            };
            p.found(&path, Assumption::Skip, fact, seen);
        }
    }
    let learned = client.learned();
    for a in [
        Assumption::DateHeader,
        Assumption::RateLimitHeaders,
        Assumption::RetryAfter,
    ] {
        let fact = learned.global(a);
        let mut seen = match (a, fact) {
            (Assumption::RetryAfter, Fact::Unknown) => "no 429 during the diagnosis".to_string(),
            (_, Fact::Holds) => "present".to_string(),
            (_, Fact::Ignored) => "absent".to_string(),
            _ => "not seen".to_string(),
        };
        if let (Assumption::DateHeader, Some(date)) = (a, client.server_date_ms()) {
            // Whole seconds, sent after the request left: a second either way is noise.
            let skew = (date - chrono::Utc::now().timestamp_millis()) / 1000;
            seen.push_str(&match skew {
                s if s > 1 => format!("; the API's clock is about {s} s ahead of this machine's"),
                s if s < -1 => format!("; the API's clock is about {} s behind this machine's", -s),
                _ => "; the API's clock agrees with this machine's".to_string(),
            });
        }
        p.found("every response", a, fact, seen);
    }
    // How late a list shows a write, and whether it answers from a cache,
    // only a write would tell: the diagnosis writes nothing, and a sync
    // assumes neither (`pager/settle.rs`).
    for a in [Assumption::ListsShowWritesAtOnce, Assumption::NoListCache] {
        p.findings.push(Finding {
            endpoint: "every list".into(),
            assumption: a,
            fact: Fact::Unknown,
            seen: "not tested: only a write to the project would show it".into(),
            does: Some(a.fallback().to_string()),
        });
    }
    let mut text = String::new();
    text.push_str(&format!(
        "# tap-gleap {} --test=api\n\nAPI: {} ({} requests, {})\n\n",
        env!("CARGO_PKG_VERSION"),
        config.api_url,
        p.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        crate::timefmt::format_ms(chrono::Utc::now()),
    ));
    text.push_str(
        "| endpoint | assumption | on this server | what a sync does |\n|:--|:--|:--|:--|\n",
    );
    for f in &p.findings {
        let verdict = match f.fact {
            Fact::Holds => "holds".to_string(),
            Fact::Unknown => "not decided".to_string(),
            Fact::Ignored => "does not hold (ignored)".to_string(),
            Fact::Refused => "does not hold (refused)".to_string(),
            Fact::Misread => "does not hold (matches nothing)".to_string(),
            Fact::Unavailable => "does not hold (unavailable)".to_string(),
        };
        let does = match (f.fact, f.assumption, &f.does) {
            (_, _, Some(does)) => does.as_str(),
            (_, Assumption::SortById, _) => f.assumption.fallback(),
            (Fact::Holds | Fact::Unknown, _, _) => "relies on it",
            _ => f.assumption.fallback(),
        };
        text.push_str(&format!(
            "| {} | {} | {}: {} | {} |\n",
            f.endpoint,
            f.assumption.what(),
            verdict,
            f.seen.replace('|', "\\|"),
            does
        ));
    }
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Output(format!("cannot write to stdout: {e}")))
}
