//! Deterministic record generation from (seed, stream, index, version).
//!
//! Nothing per record is stored: every record is rendered on demand from a
//! small per-record random generator, so millions of records cost no memory.
//! The only per-record state lives in the store's overlay (mutated, created
//! and deleted records), which hands `RecMeta` to the renderer.

use std::sync::{LazyLock, OnceLock};

use crate::config::{FakeConfig, Stream, STREAM_COUNT};
use crate::render::Json;

const DAY_MS: i64 = 86_400_000;
/// ObjectId stream code for documents that are referenced but not listed
/// (a ticket's `latestComment`); above every stream's code.
const CODE_COMMENTS: u8 = 0x70;
/// Block size for the ticket class prefix counts (see `Gen::count_classes`).
const BLOCK: u64 = 1024;

/// splitmix64 finaliser: a cheap, well mixed hash.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Small deterministic random generator (splitmix64).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed))
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    /// True with probability `pct` percent.
    #[inline]
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    #[inline]
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// What the store knows about one record: enough to render it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecMeta {
    pub stream: Stream,
    pub index: u64,
    /// 0 for the base record; bumped by every update so content changes.
    pub version: u32,
    pub updated_ms: i64,
    pub created_ms: i64,
    /// Index of the parent record of a child stream's record (a survey
    /// response's survey, an activity log's ticket...).
    pub parent: Option<u64>,
    /// createdAt of that parent (its id encodes it).
    pub parent_created_ms: i64,
}

/// How an odd record (`odd_records`) encodes its dates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Odd {
    No,
    EpochMs,
    NoTz,
}

/// The immutable generator: counts, time layout and seed.
pub(crate) struct Gen {
    pub seed: u64,
    pub base_ms: i64,
    pub step_ms: i64,
    pub time_shape: crate::config::TimeShape,
    pub tie_group: u64,
    /// Tie groups share createdAt too (`FakeConfig::tie_created`).
    pub tie_created: bool,
    pub odd_records: bool,
    pub undocumented_fields: bool,
    pub project_id: String,
    pub base: [u64; STREAM_COUNT],
    /// Base records per parent, of each child stream.
    pub per_parent: [u64; STREAM_COUNT],
    class_prefix: OnceLock<Vec<[u32; 4]>>,
}

pub(crate) type Id = [u8; 24];

impl Gen {
    pub fn new(cfg: &FakeConfig) -> Self {
        let mut base = [0; STREAM_COUNT];
        let mut per_parent = [0; STREAM_COUNT];
        for s in Stream::ALL {
            base[s.idx()] = cfg.base_count(s);
            per_parent[s.idx()] = cfg.per_parent(s);
        }
        Gen {
            seed: cfg.seed,
            base_ms: cfg.base_time.timestamp_millis(),
            step_ms: cfg.step_ms.max(0),
            time_shape: cfg.time_shape,
            tie_group: cfg.tie_group.max(1),
            tie_created: cfg.tie_created,
            odd_records: cfg.odd_records,
            undocumented_fields: cfg.undocumented_fields,
            project_id: cfg.project_id.clone(),
            base,
            per_parent,
            class_prefix: OnceLock::new(),
        }
    }

    pub fn base_count(&self, s: Stream) -> u64 {
        self.base[s.idx()]
    }

    /// updatedAt of base record `i`: non-decreasing in `i`, so a range query
    /// on updatedAt over base records is a binary search.
    #[inline]
    pub fn base_updated(&self, i: u64) -> i64 {
        self.base_ms + self.time_shape.offset_ms(i / self.tie_group, self.step_ms)
    }

    /// createdAt of base record `i`: non-decreasing in `i` (ids encode it and
    /// must follow index order) and never after its updatedAt. With
    /// `tie_created`, one value per tie group.
    #[inline]
    pub fn base_created(&self, i: u64) -> i64 {
        let spread = if self.tie_created {
            ((i / self.tie_group) as i128 * self.step_ms as i128 / 2) as i64
        } else {
            (i as i128 * self.step_ms as i128 / (2 * self.tie_group as i128)) as i64
        };
        (self.base_ms - 30 * DAY_MS + spread).min(self.base_updated(i))
    }

    /// Base records of a child stream per parent record.
    pub fn per_parent(&self, s: Stream) -> u64 {
        self.per_parent[s.idx()]
    }

    /// The index whose place in time base record `i` of `s` takes. A
    /// survey response's is its own (they spread over time like the other
    /// streams); the other child streams' records are as old as their parent
    /// (its last change added them: a ticket's activity logs, a contact's
    /// events), so that they never lie ahead of it.
    fn time_index(&self, s: Stream, i: u64) -> u64 {
        match self.per_parent(s) {
            0 => i,
            _ if s == Stream::SurveyResponses => i,
            per => i / per,
        }
    }

    pub fn base_meta(&self, stream: Stream, i: u64) -> RecMeta {
        let per = self.per_parent(stream);
        let parent = (stream.parent().is_some() && per > 0).then(|| i / per);
        let t = self.time_index(stream, i);
        RecMeta {
            stream,
            index: i,
            version: 0,
            updated_ms: self.base_updated(t),
            created_ms: self.base_created(t),
            parent,
            parent_created_ms: parent.map_or(0, |p| self.base_created(p)),
        }
    }

    /// The id of a child record's parent.
    pub fn parent_id(m: &RecMeta) -> Option<Id> {
        let parent = m.stream.parent()?;
        Some(Gen::id(parent.code(), m.parent?, m.parent_created_ms))
    }

    /// How many users (team members) references draw from: the team
    /// members listed, or (when none are) 16 that are named but not listed.
    fn users(&self) -> u64 {
        match self.base_count(Stream::TeamMembers) {
            0 => FIRST.len() as u64,
            n => n,
        }
    }

    /// Largest updatedAt / createdAt of any base record.
    pub fn max_base_times(&self) -> (i64, i64) {
        let mut u = i64::MIN;
        let mut c = i64::MIN;
        for s in Stream::ALL {
            let n = self.base_count(s);
            if n > 0 {
                let t = self.time_index(s, n - 1);
                u = u.max(self.base_updated(t));
                c = c.max(self.base_created(t));
            }
        }
        (u, c)
    }

    /// A MongoDB-like ObjectId: 8 hex of creation seconds, 2 hex stream code,
    /// 14 hex index. So id order == creation order == index order.
    pub fn id(code: u8, index: u64, created_ms: i64) -> Id {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let secs = (created_ms.div_euclid(1000)).clamp(0, u32::MAX as i64) as u64;
        let mut out = [b'0'; 24];
        for k in 0..8 {
            out[k] = HEX[((secs >> (28 - 4 * k)) & 15) as usize];
        }
        out[8] = HEX[(code >> 4) as usize];
        out[9] = HEX[(code & 15) as usize];
        for k in 0..14 {
            out[10 + k] = HEX[((index >> (52 - 4 * k)) & 15) as usize];
        }
        out
    }

    pub fn meta_id(m: &RecMeta) -> Id {
        Gen::id(m.stream.code(), m.index, m.created_ms)
    }

    /// Splits an id into (stream code, index); the time part is checked by
    /// the caller against the record it names.
    pub fn parse_id(s: &str) -> Option<(u8, u64)> {
        if s.len() != 24
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let code = u8::from_str_radix(&s[8..10], 16).ok()?;
        let index = u64::from_str_radix(&s[10..24], 16).ok()?;
        Some((code, index))
    }

    pub fn base_id(&self, stream: Stream, i: u64) -> Id {
        Gen::id(
            stream.code(),
            i,
            self.base_created(self.time_index(stream, i)),
        )
    }

    /// User `u`: team member `u` (`GET /projects/users`).
    fn user_id(&self, u: u64) -> Id {
        self.base_id(Stream::TeamMembers, u)
    }

    /// Archived / spam class of a ticket: bit 0 archived, bit 1 spam. A
    /// separate hash so counting needs no full render.
    #[inline]
    pub fn ticket_class(&self, index: u64, version: u32) -> u8 {
        let h = mix(self.seed
            ^ mix(index.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ ((version as u64) << 40) ^ 0xC1A5));
        let archived = h % 1000 < 50; // ~5%
        let spam = (h >> 20) % 1000 < 20; // ~2%
        archived as u8 | ((spam as u8) << 1)
    }

    /// Prefix counts of ticket classes per block of `BLOCK` base indices,
    /// built on first use, so totalCount under the default archived/spam
    /// filter costs O(blocks) instead of O(tickets).
    fn class_prefix(&self) -> &[[u32; 4]] {
        self.class_prefix.get_or_init(|| {
            let n = self.base_count(Stream::Tickets);
            let blocks = n.div_ceil(BLOCK) as usize;
            let mut out = Vec::with_capacity(blocks + 1);
            let mut acc = [0u32; 4];
            out.push(acc);
            for b in 0..blocks as u64 {
                for i in b * BLOCK..((b + 1) * BLOCK).min(n) {
                    acc[self.ticket_class(i, 0) as usize] += 1;
                }
                out.push(acc);
            }
            out
        })
    }

    /// Number of base tickets in `lo..hi` whose class is in `mask` (bit per class).
    pub fn count_classes(&self, lo: u64, hi: u64, mask: u8) -> u64 {
        if lo >= hi {
            return 0;
        }
        let pre = self.class_prefix();
        let sum = |a: &[u32; 4]| -> u64 {
            (0..4)
                .filter(|c| mask & (1 << c) != 0)
                .map(|c| a[c] as u64)
                .sum()
        };
        let scan = |a: u64, b: u64| -> u64 {
            (a..b)
                .filter(|&i| mask & (1 << self.ticket_class(i, 0)) != 0)
                .count() as u64
        };
        let bl = lo.div_ceil(BLOCK);
        let bh = hi / BLOCK;
        if bl >= bh {
            return scan(lo, hi);
        }
        scan(lo, bl * BLOCK) + sum(&pre[bh as usize]) - sum(&pre[bl as usize])
            + scan(bh * BLOCK, hi)
    }

    fn odd(&self, m: &RecMeta) -> (Odd, bool, bool) {
        if !self.odd_records {
            return (Odd::No, false, false);
        }
        let h = mix(self.seed ^ mix(m.index ^ ((m.stream.code() as u64) << 56) ^ 0x0DD));
        let odd = h % 1000 < 20; // ~2%
        let no_id = (h >> 16) % 1000 < 5; // ~0.5%
        let kind = if !odd {
            Odd::No
        } else if (h >> 32) & 1 == 0 {
            Odd::EpochMs
        } else {
            Odd::NoTz
        };
        (kind, odd, no_id)
    }

    /// Renders one record as a JSON object. `canonical` turns odd encodings
    /// off (used when the server itself evaluates filters on field values).
    pub fn render(&self, w: &mut Json, m: &RecMeta, canonical: bool) {
        let (odd, populate, no_id) = if canonical {
            (Odd::No, false, false)
        } else {
            self.odd(m)
        };
        let mut r = Rng::new(
            self.seed
                ^ mix(m.index ^ ((m.stream.code() as u64) << 56))
                ^ mix((m.version as u64) ^ 0x5eed_0000),
        );
        let mut c = Ctx {
            g: self,
            w,
            r: &mut r,
            odd,
            populate,
        };
        c.w.begin_obj();
        let id = Gen::meta_id(m);
        c.w.key("_id");
        c.w.ascii_str(&id);
        if !no_id {
            c.w.key("id");
            c.w.ascii_str(&id);
        }
        match m.stream {
            Stream::Tickets => c.ticket(m),
            Stream::Sessions => c.session(m),
            Stream::Messages => c.message(m),
            Stream::Teams => c.team(m),
            Stream::Surveys => c.survey(m),
            Stream::SurveyResponses => c.response(m),
            Stream::MessageTemplates => c.template(m),
            Stream::TeamMembers => c.team_member(m),
            Stream::HelpcenterCollections => c.collection(m),
            Stream::HelpcenterArticles => c.article(m),
            Stream::HelpcenterRedirects => c.redirect(m),
            Stream::News => c.outbound(m),
            Stream::CustomComponents => c.custom_component(m),
            Stream::TicketActivityLogs => c.activity_log(m),
            Stream::SessionActivities => c.session_activity(m),
            Stream::SessionEvents => c.session_event(m),
            s if Stream::ENGAGEMENT.contains(&s) => c.outbound(m),
            _ => unreachable!("every stream renders"),
        }
        if self.undocumented_fields {
            c.undocumented(m);
        }
        if populate {
            // Fields no schema names: the API may add them at any time.
            c.w.key("x_experimentalFlags");
            c.w.begin_obj();
            c.w.key("rollout");
            c.w.u64(c.r.below(100));
            c.w.key("cohort");
            c.w.str("β-testers");
            c.w.end_obj();
            c.w.key("legacyRef");
            c.w.null();
        }
        c.w.end_obj();
    }
}

// ---------------------------------------------------------------- vocabulary

const FIRST: &[&str] = &[
    "Anna", "Lukas", "Sofia", "Mateo", "Mia", "Noah", "Emma", "Jonas", "Léa", "Yuki", "Chloé",
    "Oğuz", "Zoë", "Ravi", "Ingrid", "Sven",
];
const LAST: &[&str] = &[
    "Schmidt",
    "Müller",
    "García",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Novak",
    "O'Brien",
    "Kowalski",
    "Jensen",
    "Silva",
    "Nguyen",
    "Smith",
    "Østergaard",
];
/// The names as they appear in email addresses: lower case, letters only
/// (O'Brien is obrien@...), derived once from the lists above.
static FIRST_EMAIL: LazyLock<Vec<String>> = LazyLock::new(|| email_names(FIRST));
static LAST_EMAIL: LazyLock<Vec<String>> = LazyLock::new(|| email_names(LAST));

fn email_names(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            n.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect()
        })
        .collect()
}

const SUBJECTS: &[&str] = &[
    "Checkout button",
    "Login page",
    "Dark mode",
    "CSV export",
    "Push notifications",
    "Search results",
    "Profile picture upload",
    "Invoice PDF",
    "Onboarding tour",
    "Android app",
    "Password reset email",
    "Dashboard chart",
    "Zahlungsseite",
    "Bouton « Payer »",
    "支払いボタン",
];
const PROBLEMS: &[&str] = &[
    "does not respond",
    "crashes on submit",
    "is very slow",
    "shows the wrong currency",
    "would be great to have",
    "is missing a translation",
    "looks broken on Safari",
    "returns an error 500",
    "needs an API",
    "freezes after the update",
    "funktioniert nicht mehr",
    "ne s'affiche pas 😕",
];
const SENTENCES: &[&str] = &[
    "Steps to reproduce: open the app, go to settings and tap \"Save\".",
    "It worked yesterday.\nToday it doesn't.",
    "Customer says: \"this is blocking our launch 🚀\"",
    "Path: C:\\Users\\anna\\Downloads\\report.csv",
    "Happens on iOS 17.2 and Android 14.",
    "Die Überweisung schlägt fehl – bitte dringend prüfen.",
    "L'export ne contient que 100 lignes.",
    "決済ページでエラーが発生しました。",
    "Não consigo fazer login desde ontem.",
    "Ошибка при загрузке файла.",
    "Tab\tseparated\tvalues are ignored.",
    "Expected 42, got -1.",
];
const TAGS: &[&str] = &[
    "billing",
    "ios",
    "android",
    "web",
    "urgent",
    "vip",
    "onboarding",
    "api",
    "ux",
    "performance",
    "größe",
];
const TICKET_TYPES: &[&str] = &[
    "BUG",
    "BUG",
    "BUG",
    "FEATURE_REQUEST",
    "FEATURE_REQUEST",
    "INQUIRY",
    "INQUIRY",
    "CRASH",
];
const TICKET_STATUS: &[&str] = &["OPEN", "OPEN", "INPROGRESS", "DONE", "CLOSED"];
const PRIORITY: &[&str] = &["LOW", "MEDIUM", "MEDIUM", "HIGH"];
const SENTIMENT: &[&str] = &["positive", "negative", "neutral"];
const CHANNELS: &[&str] = &[
    "widget",
    "email",
    "intercom",
    "whatsapp",
    "api",
    "messenger",
];
const LANGS: &[&str] = &["en", "de", "fr", "es", "ja", "pt-BR"];
const CITIES: &[&str] = &[
    "Berlin, Germany",
    "Wien, Österreich",
    "Paris, France",
    "Tokyo, Japan",
    "São Paulo, Brazil",
    "Austin, USA",
];
const PLANS: &[&str] = &["free", "starter", "pro", "enterprise"];
const PLATFORMS: &[&str] = &["web", "iOS", "Android"];
const DEVICES: &[&str] = &["desktop", "mobile", "tablet"];
const COMPANIES: &[&str] = &[
    "Acme Inc.",
    "Globex GmbH",
    "Initech",
    "Umbrella \"Corp\"",
    "Société Générale de Test",
    "株式会社テスト",
];
const MSG_TYPES: &[&str] = &[
    "TEXT",
    "TEXT",
    "TEXT",
    "BOT",
    "NOTE",
    "ATTACHMENT",
    "SYSTEM",
];
const MSG_STATUS: &[&str] = &["sent", "delivered", "read", "failed"];
const TEAM_NAMES: &[&str] = &[
    "Support",
    "Engineering",
    "Billing",
    "Customer Success",
    "Tier 2",
    "Nachtschicht",
];
const ASSIGN: &[&str] = &["random", "balanced", "manual", "circular"];
const SURVEY_TYPES: &[&str] = &["SURVEY", "NPS", "CSAT", "CES"];
const SURVEY_STATUS: &[&str] = &["active", "draft", "paused", "archived"];
const ROLES: &[&str] = &["owner", "admin", "manager", "agent", "agent", "agent"];
const COLLECTIONS: &[(&str, &str)] = &[
    ("Getting started", "Erste Schritte"),
    ("Billing & invoices", "Abrechnung & Rechnungen"),
    ("Integrations", "Integrationen"),
    ("Troubleshooting", "Fehlerbehebung"),
    ("Mobile apps", "Mobile Apps"),
    ("Security \"and\" privacy", "Sicherheit & Datenschutz"),
];
const OUTBOUND_STATUS: &[&str] = &["live", "live", "draft", "paused", "ended"];
const AUDIENCES: &[&str] = &["all", "users", "leads", "segment"];
const FREQUENCY: &[&str] = &["once", "recurring", "everytime"];
const MATCH_TYPES: &[&str] = &["exact", "prefix", "regex"];
const COMPONENT_TYPES: &[&str] = &["button", "form", "card", "iframe"];
const ACTIVITY_LOG_TYPES: &[&str] = &[
    "STATUS_CHANGED",
    "ASSIGNED",
    "PRIORITY_CHANGED",
    "TAG_ADDED",
    "COMMENT_ADDED",
    "MERGED",
];
const SESSION_ACTIVITY_TYPES: &[&str] = &["PAGE_VIEW", "FEEDBACK", "CONVERSATION", "EMAIL_OPENED"];
const EVENTS: &[&str] = &[
    "signed_up",
    "purchased",
    "invited_member",
    "exported_csv",
    "upgraded",
];

struct Ctx<'a> {
    g: &'a Gen,
    w: &'a mut Json,
    r: &'a mut Rng,
    odd: Odd,
    populate: bool,
}

impl Ctx<'_> {
    fn date(&mut self, key: &str, ms: i64) {
        self.w.key(key);
        match self.odd {
            Odd::No => self.w.date(ms),
            Odd::EpochMs => self.w.i64(ms),
            Odd::NoTz => self.w.date_no_tz(ms),
        }
    }

    /// A date, null (pct_null) or missing (pct_missing).
    fn opt_date(&mut self, key: &str, ms: i64, pct_null: u64, pct_missing: u64) {
        let x = self.r.below(100);
        if x < pct_missing {
            return;
        }
        if x < pct_missing + pct_null {
            self.w.key(key);
            self.w.null();
        } else {
            self.date(key, ms);
        }
    }

    fn timestamps(&mut self, m: &RecMeta) {
        self.date("createdAt", m.created_ms);
        self.date("updatedAt", m.updated_ms);
    }

    fn kstr(&mut self, k: &str, v: &str) {
        self.w.key(k);
        self.w.str(v);
    }

    fn kbool(&mut self, k: &str, pct_true: u64) -> bool {
        let v = self.r.pct(pct_true);
        self.w.key(k);
        self.w.bool(v);
        v
    }

    fn kint(&mut self, k: &str, max: u64) {
        let v = self.r.below(max);
        self.w.key(k);
        self.w.u64(v);
    }

    fn kid(&mut self, k: &str, id: &Id) {
        self.w.key(k);
        self.w.ascii_str(id);
    }

    fn title(&mut self) {
        let s = *self.r.pick(SUBJECTS);
        let p = *self.r.pick(PROBLEMS);
        self.w.str_parts(&[s, " ", p]);
    }

    fn text(&mut self, sentences: u64) {
        let n = 1 + self.r.below(sentences);
        let mut parts: [&str; 8] = [""; 8];
        let mut k = 0;
        for i in 0..n.min(4) as usize {
            if i > 0 {
                parts[k] = " ";
                k += 1;
            }
            parts[k] = *self.r.pick(SENTENCES);
            k += 1;
        }
        self.w.str_parts(&parts[..k]);
    }

    fn hex(&mut self, len: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        let mut x = self.r.next();
        for (k, b) in buf.iter_mut().enumerate().take(len) {
            if k % 16 == 0 && k > 0 {
                x = self.r.next();
            }
            *b = HEX[(x & 15) as usize];
            x >>= 4;
        }
        self.w.ascii_str(&buf[..len]);
    }

    fn tags(&mut self, key: &str) {
        self.w.key(key);
        self.w.begin_arr();
        for _ in 0..self.r.below(4) {
            let t = *self.r.pick(TAGS);
            self.w.str(t);
        }
        self.w.end_arr();
    }

    /// A user reference: bare id, populated object, null, or missing.
    fn user_ref(&mut self, key: &str, pct_id: u64, pct_pop: u64, pct_null: u64) {
        let x = self.r.below(100);
        let u = self.r.below(self.g.users());
        if x < pct_id && !self.populate {
            let id = self.g.user_id(u);
            self.kid(key, &id);
        } else if x < pct_id + pct_pop || (x < pct_id && self.populate) {
            self.w.key(key);
            self.user_obj(u);
        } else if x < pct_id + pct_pop + pct_null {
            self.w.key(key);
            self.w.null();
        }
    }

    fn user_obj(&mut self, u: u64) {
        let id = self.g.user_id(u);
        let first = FIRST[u as usize % FIRST.len()];
        let last = LAST[u as usize % LAST.len()];
        self.w.begin_obj();
        self.kid("_id", &id);
        self.w.key("email");
        self.w.str_parts(&[
            &FIRST_EMAIL[u as usize % FIRST.len()],
            ".",
            &LAST_EMAIL[u as usize % LAST.len()],
            "@example.com",
        ]);
        self.kstr("firstName", first);
        self.kstr("lastName", last);
        self.w.key("profileImageUrl");
        self.w.null();
        self.w.end_obj();
    }

    /// A reference to a record of a listed stream (base records only).
    fn stream_ref(&mut self, key: &str, s: Stream, pct_id: u64, pct_pop: u64, pct_null: u64) {
        let n = self.g.base_count(s);
        let x = self.r.below(100);
        if n == 0 {
            if x < pct_id + pct_pop + pct_null {
                self.w.key(key);
                self.w.null();
            }
            return;
        }
        let i = self.r.below(n);
        let id = self.g.base_id(s, i);
        if x < pct_id && !self.populate {
            self.kid(key, &id);
        } else if x < pct_id + pct_pop {
            self.w.key(key);
            self.w.begin_obj();
            self.kid("_id", &id);
            self.kid("id", &id);
            match s {
                Stream::Sessions => {
                    let fi = self.r.below(FIRST.len() as u64) as usize;
                    let l = *self.r.pick(LAST);
                    self.w.key("name");
                    self.w.str_parts(&[FIRST[fi], " ", l]);
                    self.w.key("email");
                    self.w.str_parts(&[&FIRST_EMAIL[fi], "@customer.example"]);
                    self.w.key("userId");
                    self.w.str_parts(&["user-", itoa::Buffer::new().format(i)]);
                }
                Stream::Teams => {
                    let t = *self.r.pick(TEAM_NAMES);
                    self.kstr("name", t);
                }
                Stream::Tickets => {
                    self.w.key("bugId");
                    self.w.u64(i + 1);
                    self.w.key("title");
                    self.title();
                }
                _ => {}
            }
            self.w.end_obj();
        } else if x < pct_id + pct_pop + pct_null {
            self.w.key(key);
            self.w.null();
        } else if self.populate {
            self.kid(key, &id);
        }
    }

    /// TipTap-like rich text document, as Gleap stores message content.
    fn doc(&mut self) {
        self.w.begin_obj();
        self.kstr("type", "doc");
        self.w.key("content");
        self.w.begin_arr();
        for _ in 0..1 + self.r.below(2) {
            self.w.begin_obj();
            self.kstr("type", "paragraph");
            self.w.key("content");
            self.w.begin_arr();
            self.w.begin_obj();
            self.kstr("type", "text");
            self.w.key("text");
            self.text(2);
            self.w.end_obj();
            self.w.end_arr();
            self.w.end_obj();
        }
        self.w.end_arr();
        self.w.end_obj();
    }

    fn form_data(&mut self) {
        self.w.key("formData");
        if self.r.pct(5) {
            self.w.null();
            return;
        }
        self.w.begin_obj();
        self.w.key("description");
        self.text(3);
        if self.r.pct(60) {
            self.w.key("pageUrl");
            let mut b = itoa::Buffer::new();
            let p = b.format(self.r.below(500));
            self.w.str_parts(&[
                "https://app.example.com/projects/",
                p,
                "?tab=settings&q=a%20b",
            ]);
        }
        self.w.key("rating");
        self.w.u64(1 + self.r.below(5));
        self.w.key("steps");
        self.w.begin_arr();
        for _ in 0..self.r.below(3) {
            self.text(1);
        }
        self.w.end_arr();
        self.w.key("extra");
        self.w.begin_obj();
        self.w.key("nested");
        self.w.begin_arr();
        self.w.u64(self.r.below(10));
        self.w.begin_obj();
        self.w.key("ok");
        self.w.bool(self.r.pct(50));
        self.w.key("nothing");
        self.w.null();
        self.w.end_obj();
        self.w.end_arr();
        self.w.end_obj();
        self.w.end_obj();
    }

    fn custom_data(&mut self, key: &str) {
        self.w.key(key);
        let x = self.r.below(100);
        if x < 10 {
            self.w.null();
            return;
        }
        self.w.begin_obj();
        if x >= 20 {
            let p = *self.r.pick(PLANS);
            self.kstr("plan", p);
            self.w.key("accountId");
            self.w
                .str_parts(&["acc_", itoa::Buffer::new().format(self.r.below(100_000))]);
            self.w.key("seats");
            self.w.u64(self.r.below(250));
            self.w.key("mrr");
            self.w.tenths(self.r.below(100_000) as i64);
            self.w.key("flags");
            self.w.begin_obj();
            self.w.key("beta");
            self.w.bool(self.r.pct(30));
            self.w.key("regions");
            self.w.begin_arr();
            self.w.str("eu-central-1");
            if self.r.pct(50) {
                self.w.str("us-east-1");
            }
            self.w.end_arr();
            self.w.end_obj();
            self.w.key("note");
            self.text(1);
        }
        self.w.end_obj();
    }

    fn meta_data(&mut self) {
        self.w.key("metaData");
        self.w.begin_obj();
        let b = *self
            .r
            .pick(&["Chrome 120.0", "Safari 17.2", "Firefox 121.0", "Edge 120.0"]);
        self.kstr("browser", b);
        let os = *self.r.pick(&[
            "macOS 14.2",
            "Windows 11",
            "iOS 17.2",
            "Android 14",
            "Ubuntu 22.04",
        ]);
        self.kstr("system", os);
        self.w.key("screen");
        self.w.begin_obj();
        self.w.key("width");
        self.w.u64(*self.r.pick(&[390, 1280, 1440, 1920, 2560]));
        self.w.key("height");
        self.w.u64(*self.r.pick(&[844, 800, 900, 1080, 1440]));
        self.w.key("pixelRatio");
        self.w.tenths(*self.r.pick(&[10i64, 20, 30]));
        self.w.end_obj();
        let l = *self.r.pick(LANGS);
        self.kstr("language", l);
        self.kstr("sdkVersion", "13.2.1");
        self.w.key("networkRequests");
        self.w.begin_arr();
        for _ in 0..self.r.below(3) {
            self.w.begin_obj();
            self.kstr("url", "https://api.example.com/v1/orders?limit=10");
            self.w.key("status");
            self.w.u64(*self.r.pick(&[200, 201, 404, 500]));
            self.w.key("durationMs");
            self.w.u64(self.r.below(3000));
            self.w.end_obj();
        }
        self.w.end_arr();
        self.w.end_obj();
    }

    fn ticket(&mut self, m: &RecMeta) {
        let class = self.g.ticket_class(m.index, m.version);
        self.w.key("bugId");
        self.w.u64(m.index + 1);
        self.w.key("title");
        if self.r.pct(3) {
            self.w.null();
        } else {
            self.title();
        }
        self.w.key("description");
        if self.r.pct(8) {
            self.w.null();
        } else {
            self.text(4);
        }
        let t = *self.r.pick(TICKET_TYPES);
        self.kstr("type", t);
        let status = *self.r.pick(TICKET_STATUS);
        self.kstr("status", status);
        let p = *self.r.pick(PRIORITY);
        self.kstr("priority", p);
        if self.r.pct(85) {
            let s = *self.r.pick(SENTIMENT);
            self.kstr("sentiment", s);
        } else {
            self.w.key("sentiment");
            self.w.null();
        }
        self.timestamps(m);
        let age = (m.updated_ms - m.created_ms).max(0);
        self.w.key("closedAt");
        if status == "DONE" || status == "CLOSED" {
            let at = m.created_ms + age / 2;
            match self.odd {
                Odd::No => self.w.date(at),
                Odd::EpochMs => self.w.i64(at),
                Odd::NoTz => self.w.date_no_tz(at),
            }
        } else {
            self.w.null();
        }
        let due = m.created_ms + (1 + self.r.below(30) as i64) * DAY_MS;
        self.opt_date("dueDate", due, 50, 30);
        self.user_ref("processingUser", 40, 30, 25);
        self.stream_ref("processingTeam", Stream::Teams, 40, 20, 20);
        self.stream_ref("session", Stream::Sessions, 60, 35, 5);
        self.tags("tags");
        self.w.key("archived");
        self.w.bool(class & 1 != 0);
        self.w.key("isSpam");
        self.w.bool(class & 2 != 0);
        self.kbool("conversationClosed", 30);
        self.w.key("conversationRating");
        if self.r.pct(30) {
            let v = *self.r.pick(&["1", "2", "3", "4", "5"]);
            self.w.str(v);
        } else {
            self.w.null();
        }
        self.kbool("hasAgentReply", 60);
        self.kint("upvotesCount", 40);
        self.kint("duplicatesCount", 4);
        self.w.key("score");
        self.w.tenths(self.r.below(1000) as i64);
        let ch = *self.r.pick(CHANNELS);
        self.kstr("channel", ch);
        self.w.key("aiSummary");
        if self.r.pct(50) {
            self.text(2);
        } else {
            self.w.null();
        }
        self.w.key("shareToken");
        self.hex(32);
        self.form_data();
        self.custom_data("customData");
        self.meta_data();
        self.kbool("slaBreached", 10);
        let snoozed = self.kbool("snoozed", 8);
        self.w.key("snoozedUntil");
        if snoozed {
            self.w.date(m.updated_ms + 3 * DAY_MS);
        } else {
            self.w.null();
        }
        let fa = m.created_ms + age / 4;
        self.opt_date("firstAssignmentAt", fa, 40, 10);
        self.kint("notificationsUnread", 5);
        // Not in the connector's table: tests how a tap copes with drift.
        let x = self.r.below(100);
        if x < 70 {
            self.w.key("latestComment");
            self.w.begin_obj();
            let cid = Gen::id(CODE_COMMENTS, m.index, m.updated_ms);
            self.kid("_id", &cid);
            let ty = *self.r.pick(MSG_TYPES);
            self.kstr("type", ty);
            self.w.key("data");
            self.w.begin_obj();
            self.w.key("content");
            self.doc();
            self.w.end_obj();
            self.w.key("createdAt");
            self.w.date(m.updated_ms);
            self.user_ref("user", 0, 80, 20);
            self.w.end_obj();
        } else if x < 80 {
            self.w.key("latestComment");
            self.w.null();
        }
        let g = self.g;
        self.kstr("project", &g.project_id);
        self.w.key("__v");
        self.w.u64(m.version as u64 + self.r.below(3));
    }

    fn session(&mut self, m: &RecMeta) {
        let fi = self.r.below(FIRST.len() as u64) as usize;
        let f = FIRST[fi];
        let l = *self.r.pick(LAST);
        self.w.key("gleapId");
        self.hex(24);
        self.w.key("gleapHash");
        self.hex(40);
        self.w.key("userId");
        if self.r.pct(15) {
            self.w.null();
        } else {
            self.w
                .str_parts(&["user-", itoa::Buffer::new().format(m.index)]);
        }
        self.w.key("name");
        self.w.str_parts(&[f, " ", l]);
        self.w.key("email");
        if self.r.pct(10) {
            self.w.null();
        } else {
            let mut b = itoa::Buffer::new();
            let n = b.format(m.index);
            self.w
                .str_parts(&[&FIRST_EMAIL[fi], ".", n, "@customer.example"]);
        }
        self.w.key("phone");
        if self.r.pct(60) {
            self.w.null();
        } else {
            self.w.str_parts(&[
                "+49 151 ",
                itoa::Buffer::new().format(1_000_000 + self.r.below(8_999_999)),
            ]);
        }
        let lang = *self.r.pick(LANGS);
        self.kstr("lang", lang);
        if self.r.pct(80) {
            let c = *self.r.pick(CITIES);
            self.kstr("location", c);
        }
        self.w.key("avatar");
        if self.r.pct(50) {
            self.w.null();
        } else {
            self.w.str_parts(&[
                "https://cdn.example.com/avatars/",
                itoa::Buffer::new().format(m.index),
                ".png",
            ]);
        }
        if self.r.pct(70) {
            let ci = self.r.below(COMPANIES.len() as u64);
            self.w.key("companyId");
            self.w.str_parts(&["comp-", itoa::Buffer::new().format(ci)]);
            self.kstr("companyName", COMPANIES[ci as usize]);
        }
        let d = *self.r.pick(DEVICES);
        self.kstr("deviceType", d);
        let p = *self.r.pick(PLATFORMS);
        self.kstr("platform", p);
        let pl = *self.r.pick(PLANS);
        self.kstr("plan", pl);
        self.w.key("value");
        self.w.tenths(self.r.below(50_000) as i64);
        self.kint("sla", 48);
        self.kint("sessions", 500);
        self.kbool("blocked", 2);
        self.kbool("unsubscribed", 10);
        self.kbool("emailOnly", 15);
        self.date("firstActivity", m.created_ms);
        let last = m.updated_ms - self.r.below(DAY_MS as u64) as i64;
        self.date("lastActivity", last.max(m.created_ms));
        self.opt_date("lastHeardFrom", last.max(m.created_ms), 30, 10);
        self.kstr("lastPageView", "/dashboard/projects?view=\"grid\"");
        self.kint("countFeedbackReports", 20);
        self.kint("countFeedbackComments", 50);
        self.tags("tags");
        self.custom_data("customData");
        self.w.key("eventData");
        self.w.begin_obj();
        self.w.key("lastEvent");
        let ev = *self
            .r
            .pick(&["signed_up", "purchased", "invited_member", "exported_csv"]);
        self.w.str(ev);
        self.w.key("count");
        self.w.u64(self.r.below(1000));
        self.w.end_obj();
        self.timestamps(m);
        self.w.key("__v");
        self.w.u64(0);
    }

    fn message(&mut self, m: &RecMeta) {
        self.stream_ref("ticket", Stream::Tickets, 85, 5, 10);
        let ty = *self.r.pick(MSG_TYPES);
        self.kstr("type", ty);
        let st = *self.r.pick(MSG_STATUS);
        self.kstr("status", st);
        let bot = self.kbool("bot", 20);
        self.kbool("isNote", 10);
        self.kbool("kaiChat", 10);
        let outbound = self.kbool("outbound", 15);
        self.kbool("sendToChannel", 30);
        self.kbool("sessionNotificationsUnread", 20);
        self.timestamps(m);
        self.w.key("data");
        self.w.begin_obj();
        self.w.key("content");
        self.doc();
        self.w.end_obj();
        self.w.key("translatedData");
        if self.r.pct(20) {
            self.w.begin_obj();
            self.w.key("de");
            self.doc();
            self.w.end_obj();
        } else {
            self.w.null();
        }
        self.w.key("comment");
        if self.r.pct(30) {
            self.text(2);
        } else {
            self.w.null();
        }
        if self.r.pct(20) {
            self.w.key("rating");
            let v = *self.r.pick(&["good", "bad", "neutral"]);
            self.w.str(v);
        }
        if bot {
            self.w.key("user");
            self.w.null();
        } else {
            self.user_ref("user", 50, 40, 10);
        }
        self.stream_ref("session", Stream::Sessions, 60, 30, 10);
        if self.r.pct(30) {
            self.w.key("emailId");
            self.w.str_parts(&[
                "<",
                itoa::Buffer::new().format(self.r.next() >> 20),
                "@mail.example.com>",
            ]);
        }
        self.w.key("messageRef");
        self.hex(24);
        if self.r.pct(20) && m.index > 0 {
            let prev = self.g.base_id(Stream::Messages, self.r.below(m.index));
            self.kid("replyTo", &prev);
        }
        if outbound {
            self.w.key("outboundTemplate");
            let n = self.g.base_count(Stream::MessageTemplates);
            if n > 0 {
                let id = self.g.base_id(Stream::MessageTemplates, self.r.below(n));
                self.w.ascii_str(&id);
            } else {
                self.w.null();
            }
            self.w.key("outboundSubject");
            self.title();
        }
        self.w.key("attachments");
        self.w.begin_arr();
        if self.r.pct(15) {
            self.w.begin_obj();
            self.kstr("name", "screenshot 1.png");
            self.kstr("url", "https://cdn.example.com/att/abc.png");
            self.kstr("type", "image/png");
            self.w.key("size");
            self.w.u64(self.r.below(2_000_000));
            self.w.end_obj();
        }
        self.w.end_arr();
        self.w.key("actions");
        self.w.begin_arr();
        if bot {
            self.w.begin_obj();
            self.kstr("title", "Talk to a human");
            self.kstr("action", "handoff");
            self.w.end_obj();
        }
        self.w.end_arr();
        self.w.key("channel");
        self.w.begin_obj();
        let ch = *self.r.pick(CHANNELS);
        self.kstr("type", ch);
        self.w.key("meta");
        self.w.begin_obj();
        self.w.key("threadId");
        self.hex(16);
        self.w.end_obj();
        self.w.end_obj();
        self.w.key("aiData");
        if self.r.pct(25) {
            self.w.begin_obj();
            self.w.key("confidence");
            self.w.tenths(self.r.below(10) as i64);
            self.w.key("sources");
            self.w.begin_arr();
            self.w.str("help-center/getting-started");
            self.w.end_arr();
            self.w.end_obj();
        } else {
            self.w.null();
        }
        self.w.key("__v");
        self.w.u64(0);
    }

    fn team(&mut self, m: &RecMeta) {
        let name = TEAM_NAMES[m.index as usize % TEAM_NAMES.len()];
        if m.index as usize >= TEAM_NAMES.len() {
            self.w.key("name");
            self.w
                .str_parts(&[name, " ", itoa::Buffer::new().format(m.index)]);
        } else {
            self.kstr("name", name);
        }
        let a = *self.r.pick(ASSIGN);
        self.kstr("assignmentMethod", a);
        self.w.key("members");
        self.w.begin_arr();
        for _ in 0..1 + self.r.below(5) {
            let u = self.r.below(self.g.users());
            let id = self.g.user_id(u);
            self.w.ascii_str(&id);
        }
        self.w.end_arr();
        self.kbool("selectOnlyOnlineMembers", 50);
        let lim = self.kbool("limitTicketAmount", 40);
        self.w.key("ticketAmount");
        if lim {
            self.w.u64(5 + self.r.below(20));
        } else {
            self.w.null();
        }
        self.timestamps(m);
        self.w.key("__v");
        self.w.u64(0);
    }

    fn survey(&mut self, m: &RecMeta) {
        self.w.key("name");
        self.w.str_parts(&[
            "Survey #",
            itoa::Buffer::new().format(m.index + 1),
            " – Zufriedenheit",
        ]);
        let t = *self.r.pick(SURVEY_TYPES);
        self.kstr("type", t);
        let s = *self.r.pick(SURVEY_STATUS);
        self.kstr("status", s);
        self.timestamps(m);
        self.w.key("config");
        self.w.begin_obj();
        self.w.key("questions");
        self.w.begin_arr();
        for q in 0..1 + self.r.below(3) {
            self.w.begin_obj();
            self.w.key("key");
            self.w.str_parts(&["q", itoa::Buffer::new().format(q)]);
            self.kstr("type", if q == 0 { "rating" } else { "text" });
            self.kstr("title", "How likely are you to recommend us? \"0-10\"");
            self.w.end_obj();
        }
        self.w.end_arr();
        self.w.key("targeting");
        self.w.begin_obj();
        self.kstr("audience", "all");
        self.w.key("frequencyDays");
        self.w.u64(self.r.below(90));
        self.w.end_obj();
        self.w.end_obj();
    }

    fn response(&mut self, m: &RecMeta) {
        self.parent_ref("survey", m);
        self.stream_ref("session", Stream::Sessions, 70, 20, 10);
        self.timestamps(m);
        self.w.key("responses");
        self.w.begin_obj();
        self.w.key("q0");
        self.w.u64(self.r.below(11));
        if self.r.pct(60) {
            self.w.key("q1");
            self.text(2);
        }
        self.w.end_obj();
        self.kbool("read", 40);
    }

    fn template(&mut self, m: &RecMeta) {
        self.w.key("name");
        self.w
            .str_parts(&["Template ", itoa::Buffer::new().format(m.index + 1)]);
        self.w.key("title");
        self.title();
        self.w.key("content");
        self.doc();
        self.timestamps(m);
    }

    /// Fields no schema of the tap names (`undocumented_fields`): those the
    /// spec and client code show and a guessed schema misses, on every
    /// record; a few on one record in ten (`linkedIssue`, which is a
    /// tracker's key but a plain number on one ticket in fifty: its type
    /// changes) or in a hundred (`escalation`). Which records carry them
    /// follows the index, so the first ticket with `linkedIssue` comes
    /// before the first with a number in it. Drawn from a generator of
    /// their own: the other fields' values do not change.
    fn undocumented(&mut self, m: &RecMeta) {
        let i = m.index;
        let mut r =
            Rng::new(self.g.seed ^ mix(i ^ ((m.stream.code() as u64) << 56) ^ 0x0F1E_1D50_0000));
        let mut b = itoa::Buffer::new();
        match m.stream {
            Stream::Tickets => {
                self.w.key("attachments");
                self.w.begin_arr();
                for k in 0..r.below(3) {
                    self.w.begin_obj();
                    self.w.key("url");
                    self.w
                        .str_parts(&["https://files.example.com/", b.format(i * 10 + k), ".png"]);
                    self.kstr("name", "screenshot.png");
                    self.kstr("type", "image/png");
                    self.w.end_obj();
                }
                self.w.end_arr();
                if i % 10 == 3 {
                    self.w.key("linkedIssue");
                    if i % 50 == 23 {
                        self.w.u64(10_000 + i);
                    } else {
                        self.w.str_parts(&["GLEAP-", b.format(i)]);
                    }
                }
                if i % 100 == 99 {
                    self.w.key("escalation");
                    self.w.begin_obj();
                    self.w.key("level");
                    self.w.u64(1 + r.below(3));
                    self.kstr("reason", "VIP customer");
                    self.w.end_obj();
                }
            }
            Stream::Sessions => {
                self.project();
                if i % 10 == 7 {
                    let reason = *r.pick(&["too many emails", "not relevant", "other"]);
                    self.kstr("unsubscribeReason", reason);
                }
            }
            Stream::Messages | Stream::Teams => self.project(),
            Stream::Surveys => {
                self.project();
                let f = *r.pick(&["survey", "nps", "csat"]);
                self.kstr("format", f);
            }
            Stream::MessageTemplates => {
                self.project();
                let t = *r.pick(&["chat", "email"]);
                self.kstr("type", t);
                let l = *r.pick(&["en", "de", "fr"]);
                self.kstr("lang", l);
            }
            Stream::HelpcenterCollections => {
                self.w.key("lexorank");
                self.w.str_parts(&["0|hzzzzz:", b.format(i)]);
            }
            _ => {}
        }
    }

    /// The parent's id under `key` (a survey response's `survey`, an
    /// activity log's `ticket`...).
    fn parent_ref(&mut self, key: &str, m: &RecMeta) {
        match Gen::parent_id(m) {
            Some(id) => self.kid(key, &id),
            None => {
                self.w.key(key);
                self.w.null();
            }
        }
    }

    fn project(&mut self) {
        let g = self.g;
        self.kstr("project", &g.project_id);
    }

    /// A language map: `{"en": ..., "de": ...}` (German now and then).
    fn lang_map(&mut self, key: &str, en: &[&str], de: &[&str]) {
        self.w.key(key);
        self.w.begin_obj();
        self.w.key("en");
        self.w.str_parts(en);
        if self.r.pct(60) {
            self.w.key("de");
            self.w.str_parts(de);
        }
        self.w.end_obj();
    }

    /// Team member `m.index`: the user tickets, teams and messages name.
    fn team_member(&mut self, m: &RecMeta) {
        let u = m.index as usize;
        self.w.key("email");
        self.w.str_parts(&[
            &FIRST_EMAIL[u % FIRST.len()],
            ".",
            &LAST_EMAIL[u % LAST.len()],
            "@example.com",
        ]);
        self.kstr("firstName", FIRST[u % FIRST.len()]);
        self.kstr("lastName", LAST[u % LAST.len()]);
        self.w.key("profileImageUrl");
        if self.r.pct(40) {
            self.w.null();
        } else {
            self.w.str_parts(&[
                "https://cdn.example.com/team/",
                itoa::Buffer::new().format(m.index),
                ".png",
            ]);
        }
        let role = if u == 0 { "owner" } else { *self.r.pick(ROLES) };
        self.kstr("role", role);
        self.kbool("online", 40);
        self.opt_date("lastSeen", m.updated_ms, 10, 10);
        let lang = *self.r.pick(LANGS);
        self.kstr("language", lang);
        self.timestamps(m);
    }

    fn collection(&mut self, m: &RecMeta) {
        let (en, de) = COLLECTIONS[m.index as usize % COLLECTIONS.len()];
        let mut b = itoa::Buffer::new();
        let n = if m.index as usize >= COLLECTIONS.len() {
            b.format(m.index)
        } else {
            ""
        };
        let sep = if n.is_empty() { "" } else { " " };
        self.lang_map("title", &[en, sep, n], &[de, sep, n]);
        self.lang_map(
            "description",
            &["Everything about ", en],
            &["Alles über ", de],
        );
        // Every third collection after the first two is a sub-collection.
        self.w.key("parent");
        if m.index >= 2 && m.index % 3 == 2 {
            let id = self
                .g
                .base_id(Stream::HelpcenterCollections, self.r.below(m.index));
            self.w.ascii_str(&id);
        } else {
            self.w.null();
        }
        self.w.key("iconUrl");
        self.w.str_parts(&[
            "https://cdn.example.com/icons/",
            itoa::Buffer::new().format(m.index % 7),
            ".svg",
        ]);
        self.w.key("position");
        self.w.u64(m.index);
        self.kbool("hidden", 10);
        self.project();
        self.timestamps(m);
        self.w.key("__v");
        self.w.u64(0);
    }

    fn article(&mut self, m: &RecMeta) {
        let subject = *self.r.pick(SUBJECTS);
        let problem = *self.r.pick(PROBLEMS);
        self.lang_map(
            "title",
            &["How to fix: ", subject, " ", problem],
            &["So geht's: ", subject],
        );
        self.lang_map(
            "description",
            &["What to do when the ", subject, " ", problem],
            &["Was tun, wenn ", subject, " ", problem],
        );
        self.w.key("content");
        self.w.begin_obj();
        self.w.key("en");
        self.doc();
        self.w.end_obj();
        self.w.key("plainContent");
        self.w.begin_obj();
        self.w.key("en");
        self.text(3);
        self.w.end_obj();
        self.kbool("isDraft", 15);
        self.tags("tags");
        self.parent_ref("helpcenterCollection", m);
        self.user_ref("author", 60, 30, 10);
        self.kint("upvotes", 40);
        self.project();
        self.timestamps(m);
        self.w.key("__v");
        self.w.u64(m.version as u64);
    }

    fn redirect(&mut self, m: &RecMeta) {
        let mut b = itoa::Buffer::new();
        let n = b.format(m.index);
        self.w.key("oldUrl");
        self.w.str_parts(&["/docs/old-page-", n, "?ref=\"legacy\""]);
        self.w.key("newUrl");
        self.w.str_parts(&["/help/articles/", n]);
        let mt = *self.r.pick(MATCH_TYPES);
        self.kstr("matchType", mt);
        self.project();
        self.timestamps(m);
    }

    /// An outbound document: news, or one of the engagement lists (their
    /// shapes are undocumented; this is what Gleap's outbound model holds).
    fn outbound(&mut self, m: &RecMeta) {
        let kind = match m.stream {
            Stream::News => "NEWS",
            Stream::EngagementBanners => "BANNER",
            Stream::EngagementChatMessages => "MESSAGE",
            Stream::EngagementCobrowse => "COBROWSE",
            Stream::EngagementEmails => "EMAIL",
            Stream::EngagementProductTours => "PRODUCT_TOUR",
            Stream::EngagementPushNotifications => "PUSH_NOTIFICATION",
            Stream::EngagementTooltips => "TOOLTIP",
            Stream::EngagementWhatsappMessages => "WHATSAPP_MESSAGE",
            Stream::EngagementChecklists => "CHECKLIST",
            _ => "MODAL",
        };
        self.w.key("name");
        self.w
            .str_parts(&[kind, " #", itoa::Buffer::new().format(m.index + 1)]);
        self.kstr("type", kind);
        let status = *self.r.pick(OUTBOUND_STATUS);
        self.kstr("status", status);
        let s = *self.r.pick(SUBJECTS);
        self.lang_map("subject", &["News: ", s], &["Neu: ", s]);
        self.w.key("message");
        self.w.begin_obj();
        self.w.key("en");
        self.doc();
        self.w.end_obj();
        self.user_ref("sender", 50, 40, 10);
        let audience = *self.r.pick(AUDIENCES);
        self.kstr("targetAudience", audience);
        let frequency = *self.r.pick(FREQUENCY);
        self.kstr("frequencyType", frequency);
        self.w.key("trigger");
        self.w.begin_obj();
        let ev = *self.r.pick(EVENTS);
        self.kstr("event", ev);
        self.w.key("delaySeconds");
        self.w.u64(self.r.below(120));
        self.w.end_obj();
        self.w.key("config");
        self.w.begin_obj();
        let placement = if self.r.pct(50) { "top" } else { "bottom" };
        self.kstr("placement", placement);
        self.w.key("dismissable");
        self.w.bool(self.r.pct(70));
        self.w.end_obj();
        if matches!(
            m.stream,
            Stream::EngagementProductTours
                | Stream::EngagementChecklists
                | Stream::EngagementTooltips
        ) {
            self.w.key("steps");
            self.w.begin_arr();
            for k in 0..1 + self.r.below(4) {
                self.w.begin_obj();
                self.w.key("title");
                self.w
                    .str_parts(&["Step ", itoa::Buffer::new().format(k + 1)]);
                self.kstr("selector", "#app > .sidebar [data-tour=\"next\"]");
                self.w.end_obj();
            }
            self.w.end_arr();
        }
        if m.stream == Stream::News {
            self.w.key("coverImageUrl");
            self.w.str_parts(&[
                "https://cdn.example.com/news/",
                itoa::Buffer::new().format(m.index),
                ".jpg",
            ]);
        }
        let sent = status != "draft";
        self.w.key("sent");
        self.w.bool(sent);
        self.w.key("sentAt");
        if sent {
            self.w.date(m.created_ms + DAY_MS);
        } else {
            self.w.null();
        }
        self.kbool("hidden", 5);
        self.w.key("stats");
        self.w.begin_obj();
        let sent_n = self.r.below(5000);
        self.w.key("sent");
        self.w.u64(sent_n);
        self.w.key("opened");
        self.w.u64(self.r.below(sent_n + 1));
        self.w.end_obj();
        self.project();
        self.timestamps(m);
        self.w.key("__v");
        self.w.u64(0);
    }

    fn custom_component(&mut self, m: &RecMeta) {
        self.w.key("name");
        self.w
            .str_parts(&["Component ", itoa::Buffer::new().format(m.index + 1)]);
        let t = *self.r.pick(COMPONENT_TYPES);
        self.kstr("type", t);
        self.w.key("description");
        self.text(1);
        self.kstr(
            "html",
            "<div class=\"cta\">\n  <button>Book a demo</button>\n</div>",
        );
        self.w.key("config");
        self.w.begin_obj();
        self.kstr("color", "#485bff");
        self.w.key("width");
        self.w.u64(200 + self.r.below(400));
        self.w.end_obj();
        self.project();
        self.timestamps(m);
    }

    fn activity_log(&mut self, m: &RecMeta) {
        self.parent_ref("ticket", m);
        let t = *self.r.pick(ACTIVITY_LOG_TYPES);
        self.kstr("type", t);
        self.user_ref("user", 50, 30, 20);
        self.w.key("data");
        self.w.begin_obj();
        match t {
            "STATUS_CHANGED" => {
                let (a, b) = (*self.r.pick(TICKET_STATUS), *self.r.pick(TICKET_STATUS));
                self.kstr("from", a);
                self.kstr("to", b);
            }
            "PRIORITY_CHANGED" => {
                let (a, b) = (*self.r.pick(PRIORITY), *self.r.pick(PRIORITY));
                self.kstr("from", a);
                self.kstr("to", b);
            }
            "TAG_ADDED" => {
                let tag = *self.r.pick(TAGS);
                self.kstr("tag", tag);
            }
            _ => {
                self.w.key("note");
                self.text(1);
            }
        }
        self.w.end_obj();
        self.project();
        self.timestamps(m);
    }

    /// A contact's activity: immutable, so it carries `createdAt` only.
    fn session_activity(&mut self, m: &RecMeta) {
        self.parent_ref("session", m);
        let t = *self.r.pick(SESSION_ACTIVITY_TYPES);
        self.kstr("type", t);
        self.w.key("name");
        if t == "PAGE_VIEW" {
            self.w.str_parts(&[
                "/dashboard/projects/",
                itoa::Buffer::new().format(self.r.below(500)),
            ]);
        } else {
            self.title();
        }
        self.w.key("data");
        self.w.begin_obj();
        let b = *self
            .r
            .pick(&["Chrome 120.0", "Safari 17.2", "Firefox 121.0"]);
        self.kstr("browser", b);
        self.w.key("durationMs");
        self.w.u64(self.r.below(60_000));
        self.w.end_obj();
        self.date("createdAt", m.created_ms);
    }

    /// A contact's tracked event: immutable, so it carries `createdAt` only.
    fn session_event(&mut self, m: &RecMeta) {
        self.parent_ref("session", m);
        let ev = *self.r.pick(EVENTS);
        self.kstr("name", ev);
        self.w.key("data");
        self.w.begin_obj();
        let p = *self.r.pick(PLANS);
        self.kstr("plan", p);
        self.w.key("amount");
        self.w.tenths(self.r.below(100_000) as i64);
        self.w.end_obj();
        self.date("createdAt", m.created_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_index_order() {
        let g = Gen::new(&FakeConfig {
            tickets: 5000,
            ..FakeConfig::default()
        });
        let mut prev = g.base_id(Stream::Tickets, 0);
        for i in 1..5000 {
            let id = g.base_id(Stream::Tickets, i);
            assert!(id > prev);
            assert!(g.base_created(i) <= g.base_updated(i));
            prev = id;
        }
        let s = std::str::from_utf8(&prev).unwrap();
        assert_eq!(Gen::parse_id(s), Some((Stream::Tickets.code(), 4999)));
    }

    #[test]
    fn tie_groups_can_share_created() {
        let g = Gen::new(&FakeConfig {
            tickets: 100,
            tie_group: 7,
            tie_created: true,
            ..FakeConfig::default()
        });
        for i in 1..100 {
            let same_group = i / 7 == (i - 1) / 7;
            assert_eq!(
                same_group,
                g.base_created(i) == g.base_created(i - 1),
                "{i}"
            );
            assert!(g.base_created(i) <= g.base_updated(i));
            assert!(g.base_id(Stream::Tickets, i) > g.base_id(Stream::Tickets, i - 1));
        }
    }

    #[test]
    fn class_counts_match_scan() {
        let g = Gen::new(&FakeConfig {
            tickets: 10_000,
            ..FakeConfig::default()
        });
        for (lo, hi) in [(0, 10_000), (3, 2047), (1000, 1030), (1023, 9000)] {
            for mask in [1u8, 3, 0b1001, 0xf] {
                let want = (lo..hi)
                    .filter(|&i| mask & (1 << g.ticket_class(i, 0)) != 0)
                    .count() as u64;
                assert_eq!(g.count_classes(lo, hi, mask), want);
            }
        }
    }
}
