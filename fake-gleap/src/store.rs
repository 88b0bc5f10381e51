//! The mutable overlay over the generated base records, and listing.
//!
//! Base records live only as formulas (see `data.rs`). The overlay holds the
//! few records that were updated, created or deleted at run time: a map by
//! index plus an ordered set by (updatedAt, index). Listing merges the base
//! index range (skipping overlay indices) with the overlay.
//!
//! Base records have updatedAt, createdAt and id all non-decreasing in their
//! index, so any range filter on those fields is a binary search over the
//! base index range, and any sort on them is a walk in index order. Only
//! exact-match filters and ranges/sorts on other fields scan linearly.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use serde::Serialize;
use serde_json::Value;

use crate::config::{ArchivedDefault, Stream, STREAM_COUNT};
use crate::data::{Gen, RecMeta, Rng};
use crate::query::{is_date_field, parse_date, Op, Query, RangeFilter};
use crate::render::{iso, Json};

/// A record as the API currently holds it, for checking what a tap emitted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RecordRef {
    pub id: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    pub survey_id: Option<String>,
    /// A child stream's record: its parent's id (a survey response's survey,
    /// an activity log's ticket, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub updated_ms: i64,
    pub created_ms: i64,
    pub version: u32,
    pub deleted: bool,
    pub parent: Option<u64>,
    pub parent_created_ms: i64,
}

impl Entry {
    fn meta(&self, stream: Stream, index: u64) -> RecMeta {
        RecMeta {
            stream,
            index,
            version: self.version,
            updated_ms: self.updated_ms,
            created_ms: self.created_ms,
            parent: self.parent,
            parent_created_ms: self.parent_created_ms,
        }
    }
}

#[derive(Default)]
pub(crate) struct Overlay {
    /// Every index that differs from its base record (updated, created or deleted).
    pub entries: HashMap<u64, Entry>,
    /// Live overlay records ordered by (updatedAt, index).
    pub order: BTreeSet<(i64, u64)>,
    /// Number of records created at run time (indices base..base+created).
    pub created: u64,
}

pub(crate) struct Store {
    pub ov: Vec<Overlay>,
    /// Highest updatedAt ever issued: mutations never go below it, so
    /// updated records always sort after every base record.
    pub max_issued_ms: i64,
    pub max_created_ms: i64,
    /// The API's clock relative to this machine's (`FakeConfig::clock_offset_ms`).
    pub clock_offset_ms: i64,
    rng: Rng,
    /// The lists' own view, when they lag behind the writes.
    lagging: Option<Box<Lagging>>,
}

/// A lagging search index (`FakeConfig::index_lag`): the lists read a view
/// of their own, which each write reaches after its own random delay, so
/// not in the order written. Until then the view holds the record's
/// previous version (or, for a new record, nothing).
struct Lagging {
    view: Store,
    bound_ms: i64,
    /// Writes not shown yet: (shown from, write number, stream, index,
    /// entry, records created in the stream by then).
    pending: Vec<(i64, u64, Stream, u64, Entry, u64)>,
    /// The write number of each record's version in the view: an older
    /// write shown after a newer one does not undo it.
    shown: HashMap<(usize, u64), u64>,
    writes: u64,
}

fn id_string(m: &RecMeta) -> String {
    String::from_utf8(Gen::meta_id(m).to_vec()).expect("ascii id")
}

impl Store {
    /// Now, on the API's clock.
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.clock_offset_ms
    }

    pub fn new(gen: &Gen) -> Self {
        let (u, c) = gen.max_base_times();
        Store {
            ov: (0..STREAM_COUNT).map(|_| Overlay::default()).collect(),
            max_issued_ms: u,
            max_created_ms: c,
            clock_offset_ms: 0,
            rng: Rng::new(gen.seed ^ 0x6d75_7461_7465),
            lagging: None,
        }
    }

    /// Lists lag behind the writes by up to `bound` from now on.
    pub fn lag_lists(&mut self, gen: &Gen, bound: std::time::Duration) {
        let mut view = Store::new(gen);
        view.clock_offset_ms = self.clock_offset_ms;
        self.lagging = Some(Box::new(Lagging {
            view,
            bound_ms: bound.as_millis() as i64,
            pending: Vec::new(),
            shown: HashMap::new(),
            writes: 0,
        }));
    }

    /// What the lists show now: this store, or the lagging view with every
    /// write whose delay has passed.
    pub fn listed(&mut self) -> &Store {
        let now = self.now_ms();
        if self.lagging.is_none() {
            return self;
        }
        let lag = self.lagging.as_deref_mut().expect("checked");
        let mut due: Vec<_> = Vec::new();
        lag.pending.retain(|p| {
            if p.0 <= now {
                due.push(*p);
                false
            } else {
                true
            }
        });
        due.sort_by_key(|p| (p.0, p.1));
        for (_, write, s, i, e, created) in due {
            let ov = &mut lag.view.ov[s.idx()];
            ov.created = ov.created.max(created);
            let shown = lag.shown.entry((s.idx(), i)).or_insert(0);
            if write > *shown {
                *shown = write;
                lag.view.put(s, i, e);
            }
        }
        &lag.view
    }

    /// Current metadata of record `i`, or None if deleted / nonexistent.
    pub fn meta(&self, gen: &Gen, s: Stream, i: u64) -> Option<RecMeta> {
        match self.ov[s.idx()].entries.get(&i) {
            Some(e) if e.deleted => None,
            Some(e) => Some(e.meta(s, i)),
            None if i < gen.base_count(s) => Some(gen.base_meta(s, i)),
            None => None,
        }
    }

    /// Index of the live record with this id.
    pub fn lookup(&self, gen: &Gen, s: Stream, id: &str) -> Option<u64> {
        let (code, idx) = Gen::parse_id(id)?;
        if code != s.code() {
            return None;
        }
        let m = self.meta(gen, s, idx)?;
        (Gen::meta_id(&m) == id.as_bytes()).then_some(idx)
    }

    fn total_indices(&self, gen: &Gen, s: Stream) -> u64 {
        gen.base_count(s) + self.ov[s.idx()].created
    }

    /// Whether a child record's parent is live (a record of any other
    /// stream has none, and is reachable).
    fn parent_live(&self, gen: &Gen, m: &RecMeta) -> bool {
        match m.stream.parent() {
            None => true,
            Some(p) => m.parent.is_some_and(|i| self.meta(gen, p, i).is_some()),
        }
    }

    fn pick_live(&mut self, gen: &Gen, s: Stream, taken: &HashSet<u64>) -> Option<u64> {
        let n = self.total_indices(gen, s);
        if n == 0 {
            return None;
        }
        for _ in 0..64 {
            let i = self.rng.below(n);
            if !taken.contains(&i) && self.reachable(gen, s, i) {
                return Some(i);
            }
        }
        // Dense deletions: fall back to a scan from a random start.
        let start = self.rng.below(n);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| !taken.contains(&i) && self.reachable(gen, s, i))
    }

    /// A live record whose parent (if any) is live too.
    fn reachable(&self, gen: &Gen, s: Stream, i: u64) -> bool {
        self.meta(gen, s, i)
            .is_some_and(|m| self.parent_live(gen, &m))
    }

    fn next_ts(&mut self) -> i64 {
        let t = self.now_ms().max(self.max_issued_ms + 1);
        self.max_issued_ms = t;
        t
    }

    fn put(&mut self, s: Stream, i: u64, e: Entry) {
        let ov = &mut self.ov[s.idx()];
        if let Some(old) = ov.entries.insert(i, e) {
            ov.order.remove(&(old.updated_ms, i));
        }
        if !e.deleted {
            ov.order.insert((e.updated_ms, i));
        }
        let created = ov.created;
        let now = self.now_ms();
        if let Some(lag) = self.lagging.as_deref_mut() {
            let delay = self.rng.below(lag.bound_ms as u64 + 1) as i64;
            lag.writes += 1;
            lag.pending
                .push((now + delay, lag.writes, s, i, e, created));
        }
    }

    /// Gives `n` random live records a new updatedAt: each its own
    /// (increasing) one, or with `bulk` all the same one.
    /// Records without `updatedAt` (`Stream::has_updated_at`) never change.
    pub fn update(&mut self, gen: &Gen, s: Stream, n: u64, bulk: bool) -> Vec<String> {
        if !s.has_updated_at() {
            return Vec::new();
        }
        let mut taken = HashSet::new();
        let mut out = Vec::new();
        let bulk_ts = if bulk { Some(self.next_ts()) } else { None };
        for _ in 0..n {
            let Some(i) = self.pick_live(gen, s, &taken) else {
                break;
            };
            taken.insert(i);
            let ts = bulk_ts.unwrap_or_else(|| self.next_ts());
            out.push(self.touch(gen, s, i, ts));
        }
        out
    }

    /// Gives the live record with this id a new updatedAt.
    pub fn update_id(&mut self, gen: &Gen, s: Stream, id: &str) -> bool {
        let Some(i) = self.lookup(gen, s, id).filter(|_| s.has_updated_at()) else {
            return false;
        };
        let ts = self.next_ts();
        self.touch(gen, s, i, ts);
        true
    }

    /// A new version of live record `i`, stamped `ts`; returns its id. A
    /// record whose changes show on its parent (`Stream::touches_parent`)
    /// gives the parent that stamp too.
    fn touch(&mut self, gen: &Gen, s: Stream, i: u64, ts: i64) -> String {
        let m = self.meta(gen, s, i).expect("live");
        let e = Entry {
            updated_ms: ts,
            created_ms: m.created_ms,
            version: m.version + 1,
            deleted: false,
            parent: m.parent,
            parent_created_ms: m.parent_created_ms,
        };
        self.put(s, i, e);
        self.touch_parent(gen, &m, ts);
        id_string(&e.meta(s, i))
    }

    /// A change to `m` shows on its parent when `Stream::touches_parent`:
    /// the parent gets the stamp `ts` (its `updatedAt`).
    fn touch_parent(&mut self, gen: &Gen, m: &RecMeta, ts: i64) {
        if !m.stream.touches_parent() {
            return;
        }
        let (Some(p), Some(pi)) = (m.stream.parent(), m.parent) else {
            return;
        };
        if self.meta(gen, p, pi).is_some() {
            self.touch(gen, p, pi, ts);
        }
    }

    /// Creates `n` records with ids greater than every existing id.
    pub fn create(&mut self, gen: &Gen, s: Stream, n: u64) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (parent, parent_created_ms) = match s.parent() {
                Some(p) => match self.pick_live(gen, p, &HashSet::new()) {
                    Some(pi) => (Some(pi), self.meta(gen, p, pi).expect("live").created_ms),
                    None => break,
                },
                None => (None, 0),
            };
            let ts = self.next_ts();
            let created = self.now_ms().max(self.max_created_ms).min(ts);
            self.max_created_ms = created;
            let i = self.total_indices(gen, s);
            self.ov[s.idx()].created += 1;
            let e = Entry {
                updated_ms: ts,
                created_ms: created,
                version: 0,
                deleted: false,
                parent,
                parent_created_ms,
            };
            self.put(s, i, e);
            self.touch_parent(gen, &e.meta(s, i), ts);
            out.push(id_string(&e.meta(s, i)));
        }
        out
    }

    fn delete_index(&mut self, gen: &Gen, s: Stream, i: u64) -> Option<String> {
        let m = self.meta(gen, s, i)?;
        let e = Entry {
            deleted: true,
            updated_ms: m.updated_ms,
            created_ms: m.created_ms,
            version: m.version,
            parent: m.parent,
            parent_created_ms: m.parent_created_ms,
        };
        self.put(s, i, e);
        Some(id_string(&m))
    }

    pub fn delete(&mut self, gen: &Gen, s: Stream, n: u64) -> Vec<String> {
        let mut out = Vec::new();
        let taken = HashSet::new();
        for _ in 0..n {
            let Some(i) = self.pick_live(gen, s, &taken) else {
                break;
            };
            out.extend(self.delete_index(gen, s, i));
        }
        out
    }

    pub fn delete_id(&mut self, gen: &Gen, s: Stream, id: &str) -> bool {
        match self.lookup(gen, s, id) {
            Some(i) => self.delete_index(gen, s, i).is_some(),
            None => false,
        }
    }

    /// Every live record of a stream, sorted by id. Records of a child
    /// stream whose parent was deleted (responses of a deleted survey) are
    /// unreachable through the API and so left out. `updated_at` is the
    /// record's `updatedAt`, or its `createdAt` where it carries no
    /// `updatedAt` (`Stream::has_updated_at`).
    pub fn snapshot(&self, gen: &Gen, s: Stream) -> Vec<RecordRef> {
        let ov = &self.ov[s.idx()];
        let mut out = Vec::new();
        let mut push = |m: RecMeta| {
            if !self.parent_live(gen, &m) {
                return;
            }
            let parent_id =
                Gen::parent_id(&m).map(|id| String::from_utf8(id.to_vec()).expect("ascii id"));
            out.push(RecordRef {
                id: id_string(&m),
                updated_at: iso(if s.has_updated_at() {
                    m.updated_ms
                } else {
                    m.created_ms
                }),
                survey_id: parent_id.clone().filter(|_| s == Stream::SurveyResponses),
                parent_id,
            });
        };
        for i in 0..gen.base_count(s) {
            if !ov.entries.contains_key(&i) {
                push(gen.base_meta(s, i));
            }
        }
        for (&i, e) in &ov.entries {
            if !e.deleted {
                push(e.meta(s, i));
            }
        }
        out.sort();
        out
    }
}

// ------------------------------------------------------------------ listing

/// Which records a listing covers.
pub(crate) struct Scope {
    pub stream: Stream,
    /// Base index range.
    pub lo: u64,
    pub hi: u64,
    /// For a child stream: only the records of this parent.
    pub parent: Option<u64>,
}

pub(crate) struct ListOpts {
    pub default_limit: u64,
    pub cap: u64,
    pub unpaginated: bool,
    pub ignore_filters: bool,
    /// Seed for shuffling ties (`TieOrder::Shuffled`), fresh per request.
    pub shuffle: Option<u64>,
    pub count_total: bool,
    pub default_sort: Option<(String, bool)>,
    pub archived_default: ArchivedDefault,
}

pub(crate) struct Page {
    pub metas: Vec<RecMeta>,
    pub total: u64,
    pub has_more: bool,
}

/// Key kinds that are monotone in the base index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Index,
    Updated,
    Created,
}

fn kind_of(field: &str) -> Option<Kind> {
    match field {
        "updatedAt" => Some(Kind::Updated),
        "createdAt" => Some(Kind::Created),
        // Ids are time-ordered and follow index order.
        "_id" | "id" => Some(Kind::Index),
        _ => None,
    }
}

fn primary(kind: Kind, m: &RecMeta) -> i64 {
    match kind {
        Kind::Index => m.index as i64,
        Kind::Updated => m.updated_ms,
        Kind::Created => m.created_ms,
    }
}

/// A range filter on an indexable field, with its parsed bound.
enum Bound2 {
    Ms(Kind, Op, i64),
    Id(Op, String),
}

impl Bound2 {
    fn holds(&self, m: &RecMeta) -> bool {
        match self {
            Bound2::Ms(k, op, v) => op.holds(primary(*k, m).cmp(v)),
            Bound2::Id(op, v) => op.holds(Gen::meta_id(m).as_slice().cmp(v.as_bytes())),
        }
    }
    fn op(&self) -> Op {
        match self {
            Bound2::Ms(_, op, _) | Bound2::Id(op, _) => *op,
        }
    }
}

/// First index in `lo..hi` where `f` is true, for `f` false-then-true.
fn first_true(mut lo: u64, mut hi: u64, f: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if f(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Mask over the 4 ticket classes (bit0 archived, bit1 spam) that pass.
fn class_mask(archived: u8, spam: u8) -> u8 {
    // `archived`/`spam`: bit0 = false allowed, bit1 = true allowed.
    let mut mask = 0;
    for c in 0..4u8 {
        let a = 1 << (c & 1);
        let s = 1 << ((c >> 1) & 1);
        if archived & a != 0 && spam & s != 0 {
            mask |= 1 << c;
        }
    }
    mask
}

fn bool_set(vals: &[String]) -> u8 {
    vals.iter().fold(0, |acc, v| match v.as_str() {
        "false" => acc | 1,
        "true" => acc | 2,
        _ => acc,
    })
}

/// Lists records of `scope` per query `q`.
pub(crate) fn list(
    gen: &Gen,
    store: &Store,
    scope: &Scope,
    q: &Query,
    o: &ListOpts,
) -> Result<Page, String> {
    // `ignore_filters` plays a server that ignores the range operators
    // (`field>=`, `<`, ...), the part of the query syntax the API documents
    // least; exact-match filters (`archived=true`) are documented and kept.
    let mut ranges = if o.ignore_filters {
        Vec::new()
    } else {
        q.ranges.clone()
    };
    ranges.extend(q.cursor.iter().cloned());
    let mut exact = q.exact.clone();
    // A field name no record can have (an undecoded `updatedAt%3E`, see
    // `EncodedOperators::Literal`) matches nothing: answer without a scan.
    if exact.iter().any(|(f, _)| f.contains(['%', '<', '>'])) {
        return Ok(Page {
            metas: Vec::new(),
            total: 0,
            has_more: false,
        });
    }
    // Tickets: archived / spam are served from a cheap class hash.
    let mut mask = 0xf;
    if scope.stream == Stream::Tickets {
        let take = |exact: &mut Vec<(String, Vec<String>)>, f: &str| -> Option<u8> {
            let pos = exact.iter().position(|(k, _)| k == f)?;
            Some(bool_set(&exact.remove(pos).1))
        };
        // Sets of allowed values: bit0 = false, bit1 = true.
        const FALSE: u8 = 1;
        const BOTH: u8 = 3;
        let archived = take(&mut exact, "archived");
        let spam = take(&mut exact, "isSpam");
        let (archived, spam) = match o.archived_default {
            ArchivedDefault::Ignored => (BOTH, BOTH),
            ArchivedDefault::Include => (archived.unwrap_or(BOTH), spam.unwrap_or(BOTH)),
            ArchivedDefault::Exclude => (
                archived.unwrap_or(if q.ignore_archived { BOTH } else { FALSE }),
                spam.unwrap_or(FALSE),
            ),
            ArchivedDefault::WebApp => (
                if q.ignore_archived {
                    archived.unwrap_or(BOTH)
                } else {
                    FALSE
                },
                spam.unwrap_or(FALSE),
            ),
        };
        mask = class_mask(archived, spam);
    }
    let sort = q.sort.clone().or_else(|| o.default_sort.clone());
    // Move ranges on indexable fields into parsed bounds.
    let mut bounds = Vec::new();
    let mut other_ranges: Vec<RangeFilter> = Vec::new();
    for r in ranges.drain(..) {
        match kind_of(&r.field) {
            Some(Kind::Index) => bounds.push(Bound2::Id(r.op, r.value)),
            Some(k) => {
                let v = parse_date(&r.value)
                    .ok_or_else(|| format!("Invalid date for {}: {:?}", r.field, r.value))?;
                bounds.push(Bound2::Ms(k, r.op, v));
            }
            None => {
                if is_date_field(&r.field) && parse_date(&r.value).is_none() {
                    return Err(format!("Invalid date for {}: {:?}", r.field, r.value));
                }
                other_ranges.push(r);
            }
        }
    }
    let (limit, skip) = if o.unpaginated {
        (u64::MAX, 0)
    } else {
        (q.limit.unwrap_or(o.default_limit).min(o.cap), q.skip)
    };
    let sort_kind = match &sort {
        None => Some((Kind::Index, false)),
        Some((f, desc)) => kind_of(f).map(|k| (k, *desc)),
    };
    let ov = &store.ov[scope.stream.idx()];
    let class_ok =
        |m: &RecMeta| mask == 0xf || mask & (1 << gen.ticket_class(m.index, m.version)) != 0;
    let in_scope = |e: &Entry| scope.parent.is_none() || e.parent == scope.parent;

    if let (Some((kind, desc)), true, true) = (sort_kind, exact.is_empty(), other_ranges.is_empty())
    {
        // ---- fast path: base index interval + overlay, merged.
        let (mut bs, mut be) = (scope.lo, scope.hi.max(scope.lo));
        for b in &bounds {
            let holds = |i: u64| b.holds(&gen.base_meta(scope.stream, i));
            if b.op().is_lower() {
                bs = bs.max(first_true(bs, be, holds));
            } else {
                be = be.min(first_true(bs, be, |i| !holds(i)));
            }
            be = be.max(bs);
        }
        let mut items: Vec<(i64, RecMeta)> = if kind == Kind::Updated {
            let mut lo = Bound::Unbounded;
            let mut hi = Bound::Unbounded;
            for b in &bounds {
                if let Bound2::Ms(Kind::Updated, op, v) = b {
                    match op {
                        Op::Gte => lo = Bound::Included((*v, 0)),
                        Op::Gt => lo = Bound::Excluded((*v, u64::MAX)),
                        Op::Lte => hi = Bound::Included((*v, u64::MAX)),
                        Op::Lt => hi = Bound::Excluded((*v, 0)),
                    }
                }
            }
            // Bounds may be contradictory (several ranges on one field):
            // BTreeSet::range panics on an inverted range, filtering does not.
            let inverted = match (&lo, &hi) {
                (
                    Bound::Included(a) | Bound::Excluded(a),
                    Bound::Included(b) | Bound::Excluded(b),
                ) => a > b,
                _ => false,
            };
            let iter: Box<dyn Iterator<Item = &(i64, u64)>> = if inverted {
                Box::new(ov.order.iter())
            } else {
                Box::new(ov.order.range((lo, hi)))
            };
            iter.filter_map(|&(_, i)| {
                let e = ov.entries.get(&i)?;
                let m = e.meta(scope.stream, i);
                (in_scope(e) && class_ok(&m) && bounds.iter().all(|b| b.holds(&m)))
                    .then_some((m.updated_ms, m))
            })
            .collect()
        } else {
            let mut v: Vec<(i64, RecMeta)> = ov
                .entries
                .iter()
                .filter(|(_, e)| !e.deleted && in_scope(e))
                .map(|(&i, e)| e.meta(scope.stream, i))
                .filter(|m| class_ok(m) && bounds.iter().all(|b| b.holds(m)))
                .map(|m| (primary(kind, &m), m))
                .collect();
            v.sort_by_key(|(p, m)| (*p, m.index));
            v
        };
        if desc {
            items.reverse();
        }
        let total = if o.count_total {
            let base = if mask == 0xf {
                be - bs
            } else {
                gen.count_classes(bs, be, mask)
            };
            let shadowed = ov
                .entries
                .keys()
                .filter(|&&i| {
                    i >= bs && i < be && (mask == 0xf || mask & (1 << gen.ticket_class(i, 0)) != 0)
                })
                .count() as u64;
            base - shadowed + items.len() as u64
        } else {
            0
        };
        let check_overlay = !ov.entries.is_empty();
        let base_ok = |i: u64| -> Option<(i64, RecMeta)> {
            if check_overlay && ov.entries.contains_key(&i) {
                return None;
            }
            if mask != 0xf && mask & (1 << gen.ticket_class(i, 0)) == 0 {
                return None;
            }
            let m = gen.base_meta(scope.stream, i);
            Some((primary(kind, &m), m))
        };
        let base_iter: Box<dyn Iterator<Item = (i64, RecMeta)>> = if desc {
            Box::new((bs..be).rev().filter_map(base_ok))
        } else {
            Box::new((bs..be).filter_map(base_ok))
        };
        let merged = Merge {
            a: base_iter.peekable(),
            b: items.into_iter().peekable(),
            desc,
        };
        let (metas, has_more) = page(merged, skip, limit, o.shuffle);
        return Ok(Page {
            metas,
            total,
            has_more,
        });
    }

    // ---- general path: scan everything in scope, evaluate on rendered values.
    let mut cands: Vec<RecMeta> = (scope.lo..scope.hi)
        .filter(|i| !ov.entries.contains_key(i))
        .map(|i| gen.base_meta(scope.stream, i))
        .collect();
    cands.extend(
        ov.entries
            .iter()
            .filter(|(_, e)| !e.deleted && in_scope(e))
            .map(|(&i, e)| e.meta(scope.stream, i)),
    );
    cands.retain(|m| class_ok(m) && bounds.iter().all(|b| b.holds(m)));
    let sort_field = sort
        .as_ref()
        .filter(|(f, _)| kind_of(f).is_none())
        .map(|(f, _)| f.clone());
    let mut rows: Vec<(RecMeta, Option<Value>)> = Vec::with_capacity(cands.len());
    for m in cands {
        let v = if !exact.is_empty() || !other_ranges.is_empty() || sort_field.is_some() {
            let mut w = Json::with_capacity(2048);
            gen.render(&mut w, &m, true);
            Some(serde_json::from_slice::<Value>(&w.buf).map_err(|e| e.to_string())?)
        } else {
            None
        };
        if let Some(v) = &v {
            if !exact
                .iter()
                .all(|(f, vals)| lookup(v, f).is_some_and(|x| value_matches(x, vals)))
            {
                continue;
            }
            if !other_ranges
                .iter()
                .all(|r| lookup(v, &r.field).is_some_and(|x| range_matches(x, r)))
            {
                continue;
            }
        }
        rows.push((m, v));
    }
    let (kind, desc) = match (&sort, sort_kind) {
        (_, Some(k)) => k,
        (Some((_, d)), None) => (Kind::Index, *d),
        (None, None) => (Kind::Index, false),
    };
    let cmp = |a: &(RecMeta, Option<Value>), b: &(RecMeta, Option<Value>)| -> Ordering {
        match &sort_field {
            Some(f) => cmp_values(
                a.1.as_ref().and_then(|v| lookup(v, f)),
                b.1.as_ref().and_then(|v| lookup(v, f)),
            ),
            None => primary(kind, &a.0).cmp(&primary(kind, &b.0)),
        }
    };
    rows.sort_by(|a, b| cmp(a, b).then(a.0.index.cmp(&b.0.index)));
    if desc {
        rows.reverse();
    }
    // Group ids so the pager can shuffle ties.
    let mut grouped = Vec::with_capacity(rows.len());
    let mut g = 0i64;
    for k in 0..rows.len() {
        if k > 0 && cmp(&rows[k - 1], &rows[k]) != Ordering::Equal {
            g += 1;
        }
        grouped.push((g, rows[k].0));
    }
    let total = grouped.len() as u64;
    let (metas, has_more) = page(grouped.into_iter(), skip, limit, o.shuffle);
    Ok(Page {
        metas,
        total,
        has_more,
    })
}

/// Merges two sorted streams of (primary key, record).
struct Merge<A: Iterator<Item = (i64, RecMeta)>, B: Iterator<Item = (i64, RecMeta)>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
    desc: bool,
}

impl<A: Iterator<Item = (i64, RecMeta)>, B: Iterator<Item = (i64, RecMeta)>> Iterator
    for Merge<A, B>
{
    type Item = (i64, RecMeta);
    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) => {
                let o = (x.0, x.1.index).cmp(&(y.0, y.1.index));
                if self.desc {
                    o == Ordering::Greater
                } else {
                    o == Ordering::Less
                }
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

/// Applies skip/limit to a sorted stream; with `shuffle`, every run of equal
/// keys is permuted at random first (the whole run is read, so a tie group
/// that straddles the page boundary is shuffled as a whole).
fn page(
    mut it: impl Iterator<Item = (i64, RecMeta)>,
    skip: u64,
    limit: u64,
    shuffle: Option<u64>,
) -> (Vec<RecMeta>, bool) {
    let mut out = Vec::with_capacity(limit.min(10_000) as usize);
    let Some(seed) = shuffle else {
        let mut it = it.skip(skip.min(usize::MAX as u64) as usize);
        for (_, m) in it.by_ref() {
            if out.len() as u64 >= limit {
                return (out, true);
            }
            out.push(m);
        }
        return (out, false);
    };
    let mut rng = Rng::new(seed);
    let mut pos = 0u64;
    let mut group: Vec<RecMeta> = Vec::new();
    let mut key = None;
    let end = skip.saturating_add(limit);
    let mut flush = |group: &mut Vec<RecMeta>, out: &mut Vec<RecMeta>, pos: &mut u64| {
        for k in (1..group.len()).rev() {
            let j = rng.below(k as u64 + 1) as usize;
            group.swap(k, j);
        }
        for m in group.drain(..) {
            if *pos >= skip && *pos < end {
                out.push(m);
            }
            *pos += 1;
        }
    };
    loop {
        let next = it.next();
        if next.as_ref().map(|x| x.0) != key && !group.is_empty() {
            flush(&mut group, &mut out, &mut pos);
            if pos >= end {
                return (out, next.is_some());
            }
        }
        match next {
            Some((k, m)) => {
                key = Some(k);
                group.push(m);
            }
            None => return (out, false),
        }
    }
}

/// Looks up a (dotted) field path in a rendered record.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    path.split('.').try_fold(v, |cur, p| cur.get(p))
}

/// MongoDB-like equality: arrays match if any element does, populated
/// references match on their `_id`.
fn value_matches(v: &Value, wanted: &[String]) -> bool {
    match v {
        Value::String(s) => wanted.iter().any(|w| w == s),
        Value::Bool(b) => wanted
            .iter()
            .any(|w| w == if *b { "true" } else { "false" }),
        Value::Number(n) => wanted.iter().any(|w| w.parse::<f64>().ok() == n.as_f64()),
        Value::Null => wanted.iter().any(|w| w == "null"),
        Value::Array(a) => a.iter().any(|x| value_matches(x, wanted)),
        Value::Object(o) => o.get("_id").is_some_and(|x| value_matches(x, wanted)),
    }
}

fn range_matches(v: &Value, r: &RangeFilter) -> bool {
    let ord = match v {
        Value::Number(n) => match (n.as_f64(), r.value.parse::<f64>()) {
            (Some(a), Ok(b)) => a.partial_cmp(&b),
            _ => None,
        },
        Value::String(s) => match (parse_date(s), parse_date(&r.value)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(r.value.as_str())),
        },
        _ => None,
    };
    ord.is_some_and(|o| r.op.holds(o))
}

/// Total order for sorting on arbitrary fields: missing/null first, then
/// numbers, strings, booleans (roughly MongoDB's BSON order).
fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Number(_)) => 1,
            Some(Value::String(_)) => 2,
            Some(Value::Object(_)) => 3,
            Some(Value::Array(_)) => 4,
            Some(Value::Bool(_)) => 5,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}
