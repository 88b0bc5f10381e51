//! Configuration of the fake: what data it serves and which of the
//! undocumented ("unknown") behaviours of the real API it plays.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// The list streams the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Tickets,
    Sessions,
    Messages,
    Teams,
    Surveys,
    SurveyResponses,
    MessageTemplates,
    TeamMembers,
    HelpcenterCollections,
    HelpcenterArticles,
    HelpcenterRedirects,
    News,
    EngagementBanners,
    EngagementChatMessages,
    EngagementCobrowse,
    EngagementEmails,
    EngagementProductTours,
    EngagementPushNotifications,
    EngagementTooltips,
    EngagementWhatsappMessages,
    EngagementChecklists,
    EngagementModals,
    CustomComponents,
    TicketActivityLogs,
    SessionActivities,
    SessionEvents,
}

/// How many streams there are: the size of per-stream arrays.
pub(crate) const STREAM_COUNT: usize = 26;

impl Stream {
    pub const ALL: [Stream; STREAM_COUNT] = [
        Stream::Tickets,
        Stream::Sessions,
        Stream::Messages,
        Stream::Teams,
        Stream::Surveys,
        Stream::SurveyResponses,
        Stream::MessageTemplates,
        Stream::TeamMembers,
        Stream::HelpcenterCollections,
        Stream::HelpcenterArticles,
        Stream::HelpcenterRedirects,
        Stream::News,
        Stream::EngagementBanners,
        Stream::EngagementChatMessages,
        Stream::EngagementCobrowse,
        Stream::EngagementEmails,
        Stream::EngagementProductTours,
        Stream::EngagementPushNotifications,
        Stream::EngagementTooltips,
        Stream::EngagementWhatsappMessages,
        Stream::EngagementChecklists,
        Stream::EngagementModals,
        Stream::CustomComponents,
        Stream::TicketActivityLogs,
        Stream::SessionActivities,
        Stream::SessionEvents,
    ];

    /// The engagement lists (`/engagement/<kind>`), one stream per kind.
    pub const ENGAGEMENT: [Stream; 10] = [
        Stream::EngagementBanners,
        Stream::EngagementChatMessages,
        Stream::EngagementCobrowse,
        Stream::EngagementEmails,
        Stream::EngagementProductTours,
        Stream::EngagementPushNotifications,
        Stream::EngagementTooltips,
        Stream::EngagementWhatsappMessages,
        Stream::EngagementChecklists,
        Stream::EngagementModals,
    ];

    /// The stream's name as used by the tap and the control plane.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Tickets => "tickets",
            Stream::Sessions => "sessions",
            Stream::Messages => "messages",
            Stream::Teams => "teams",
            Stream::Surveys => "surveys",
            Stream::SurveyResponses => "survey_responses",
            Stream::MessageTemplates => "message_templates",
            Stream::TeamMembers => "team_members",
            Stream::HelpcenterCollections => "helpcenter_collections",
            Stream::HelpcenterArticles => "helpcenter_articles",
            Stream::HelpcenterRedirects => "helpcenter_redirects",
            Stream::News => "news",
            Stream::EngagementBanners => "engagement_banners",
            Stream::EngagementChatMessages => "engagement_chat_messages",
            Stream::EngagementCobrowse => "engagement_cobrowse",
            Stream::EngagementEmails => "engagement_emails",
            Stream::EngagementProductTours => "engagement_product_tours",
            Stream::EngagementPushNotifications => "engagement_push_notifications",
            Stream::EngagementTooltips => "engagement_tooltips",
            Stream::EngagementWhatsappMessages => "engagement_whatsapp_messages",
            Stream::EngagementChecklists => "engagement_checklists",
            Stream::EngagementModals => "engagement_modals",
            Stream::CustomComponents => "custom_components",
            Stream::TicketActivityLogs => "ticket_activity_logs",
            Stream::SessionActivities => "session_activities",
            Stream::SessionEvents => "session_events",
        }
    }

    /// The API path of a stream that is one list (`None` for child streams,
    /// listed once per parent: see [`Stream::child_path`]).
    pub fn path(self) -> Option<&'static str> {
        Some(match self {
            Stream::Tickets => "/tickets",
            Stream::Sessions => "/sessions",
            Stream::Messages => "/messages",
            Stream::Teams => "/teams",
            Stream::Surveys => "/engagement/surveys",
            Stream::MessageTemplates => "/message-templates",
            Stream::TeamMembers => "/projects/users",
            Stream::HelpcenterCollections => "/helpcenter/collections/all",
            Stream::HelpcenterRedirects => "/helpcenter-redirect",
            Stream::News => "/engagement/news",
            Stream::EngagementBanners => "/engagement/banners",
            Stream::EngagementChatMessages => "/engagement/chat-messages",
            Stream::EngagementCobrowse => "/engagement/cobrowse",
            Stream::EngagementEmails => "/engagement/emails",
            Stream::EngagementProductTours => "/engagement/product-tours",
            Stream::EngagementPushNotifications => "/engagement/push-notifications",
            Stream::EngagementTooltips => "/engagement/tooltips",
            Stream::EngagementWhatsappMessages => "/engagement/whatsapp-messages",
            Stream::EngagementChecklists => "/engagement/checklists",
            Stream::EngagementModals => "/engagement/modals",
            Stream::CustomComponents => "/custom-components",
            Stream::SurveyResponses
            | Stream::HelpcenterArticles
            | Stream::TicketActivityLogs
            | Stream::SessionActivities
            | Stream::SessionEvents => return None,
        })
    }

    /// A child stream's path around its parent's id: `(prefix, suffix)`,
    /// e.g. `("/tickets/", "/activity-logs")`.
    pub fn child_path(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Stream::SurveyResponses => ("/engagement/surveys/", "/responses"),
            Stream::HelpcenterArticles => ("/helpcenter/collections/", "/articles"),
            Stream::TicketActivityLogs => ("/tickets/", "/activity-logs"),
            Stream::SessionActivities => ("/sessions/", "/activities"),
            Stream::SessionEvents => ("/sessions/", "/events"),
            _ => return None,
        })
    }

    /// The stream whose records a child stream's records belong to.
    pub fn parent(self) -> Option<Stream> {
        match self {
            Stream::SurveyResponses => Some(Stream::Surveys),
            Stream::HelpcenterArticles => Some(Stream::HelpcenterCollections),
            Stream::TicketActivityLogs => Some(Stream::Tickets),
            Stream::SessionActivities | Stream::SessionEvents => Some(Stream::Sessions),
            _ => None,
        }
    }

    /// Child streams a tap reads only for parents updated since its
    /// bookmark: a change to such a record bumps its parent's `updatedAt`,
    /// as a ticket's activity or a contact's event does in Gleap.
    pub fn touches_parent(self) -> bool {
        matches!(
            self,
            Stream::TicketActivityLogs | Stream::SessionActivities | Stream::SessionEvents
        )
    }

    /// Whether the records carry `updatedAt` (session activities and events
    /// carry only `createdAt`: they never change).
    pub fn has_updated_at(self) -> bool {
        !matches!(self, Stream::SessionActivities | Stream::SessionEvents)
    }

    /// Whether the endpoint's shape is undocumented (an array, or an object
    /// wrapping one): it follows `FakeConfig::responses_shape`.
    pub fn shape_undocumented(self) -> bool {
        matches!(self, Stream::SurveyResponses | Stream::TicketActivityLogs)
            || Stream::ENGAGEMENT.contains(&self)
    }

    /// Small lists that `unpaginated_small_lists` serves whole.
    pub fn is_small_list(self) -> bool {
        self.path().is_some()
            && !matches!(self, Stream::Tickets | Stream::Sessions | Stream::Messages)
    }

    /// Position in per-stream arrays.
    pub(crate) fn idx(self) -> usize {
        self as usize
    }

    /// Code embedded in ObjectIds (bytes 5 of the id), so ids of different
    /// streams never collide.
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    /// Streams whose records change over time (mutated by `mutate_every`).
    pub fn is_incremental(self) -> bool {
        matches!(
            self,
            Stream::Tickets
                | Stream::Sessions
                | Stream::Messages
                | Stream::SurveyResponses
                | Stream::HelpcenterArticles
                | Stream::TicketActivityLogs
                | Stream::SessionActivities
                | Stream::SessionEvents
        )
    }

    /// Whether `feature` (a `FakeConfig::missing_features` entry) names this
    /// stream: its name (`_` or `-`), or a group: `engagement` (the ten
    /// engagement lists), `helpcenter` (collections, articles, redirects).
    pub fn is_feature(self, feature: &str) -> bool {
        let f = feature.trim().replace('-', "_");
        f == self.name()
            || (f == "engagement" && Stream::ENGAGEMENT.contains(&self))
            || (f == "helpcenter"
                && matches!(
                    self,
                    Stream::HelpcenterCollections
                        | Stream::HelpcenterArticles
                        | Stream::HelpcenterRedirects
                ))
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stream::ALL
            .into_iter()
            .find(|st| st.name() == s || st.name().replace('_', "-") == s)
            .ok_or_else(|| format!("unknown stream {s:?}"))
    }
}

/// What `GET /tickets` does with `archived`, `isSpam` and `ignoreArchived`
/// (the docs name the parameters but not their exact meaning, nor what a
/// plain `GET /tickets` returns). `totalCount` always counts what the
/// meaning selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ArchivedDefault {
    /// Hide archived tickets unless the query has an `archived` parameter or
    /// `ignoreArchived=true`; hide spam unless it has an `isSpam` parameter.
    /// Given parameters are exact filters.
    #[default]
    Exclude,
    /// `archived` and `isSpam` are plain exact filters; nothing is hidden
    /// by default.
    Include,
    /// `archived`, `isSpam` and `ignoreArchived` are ignored entirely:
    /// every ticket is returned.
    Ignored,
    /// What Gleap's web app suggests: the server forces `archived=false`
    /// unless `ignoreArchived=true` is sent (so `archived=true` alone still
    /// returns only non-archived tickets); with `ignoreArchived=true`,
    /// `archived` is an exact filter (absent: both). Spam is hidden unless
    /// the query has an `isSpam` parameter.
    WebApp,
}

impl FromStr for ArchivedDefault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "exclude" => Ok(ArchivedDefault::Exclude),
            "include" => Ok(ArchivedDefault::Include),
            "ignored" | "ignore" => Ok(ArchivedDefault::Ignored),
            "webapp" | "web-app" => Ok(ArchivedDefault::WebApp),
            o => Err(format!(
                "unknown archived default {o:?} (ignored|include|exclude|webapp)"
            )),
        }
    }
}

/// What a list endpoint does with a `sort` on a field the docs do not name
/// (`sort=_id`, `sort=id`, ...). Documented: `updatedAt` and `createdAt`
/// everywhere; on `/tickets` also `priority`, `lastNotification`,
/// `archivedAt`; each with or without `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UndocumentedSort {
    /// Sorts by it like by any other field.
    #[default]
    Honour,
    /// 400 `{"statusCode":400,"message":"Invalid sort field: _id"}`.
    Refuse,
    /// Served as if no `sort` had been sent (default order).
    Ignore,
}

impl FromStr for UndocumentedSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "honour" | "honor" => Ok(UndocumentedSort::Honour),
            "refuse" => Ok(UndocumentedSort::Refuse),
            "ignore" => Ok(UndocumentedSort::Ignore),
            o => Err(format!("unknown sort policy {o:?} (honour|refuse|ignore)")),
        }
    }
}

/// What the server does with a range operator written percent-encoded in
/// the key (`updatedAt%3E=X`, `updatedAt%3E%3D=X`, `updatedAt%3CX`). The docs
/// write the operators raw (`updatedAt>=X`), which Rust HTTP clients cannot
/// send; whether the encoded form is accepted is unknown. Raw operators
/// always work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EncodedOperators {
    /// Percent-decodes the key first: the same operator as the raw form.
    #[default]
    Decode,
    /// 400 naming the parameter.
    Refuse,
    /// Drops the pair silently (the list comes back unfiltered).
    Ignore,
    /// Takes the undecoded key as a field name: an exact-match filter on
    /// e.g. `updatedAt%3E`, which no record has: an empty list.
    Literal,
}

impl FromStr for EncodedOperators {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "decode" => Ok(EncodedOperators::Decode),
            "refuse" => Ok(EncodedOperators::Refuse),
            "ignore" => Ok(EncodedOperators::Ignore),
            "literal" => Ok(EncodedOperators::Literal),
            o => Err(format!(
                "unknown encoded-operator policy {o:?} (decode|refuse|ignore|literal)"
            )),
        }
    }
}

/// What the server does with range operators on `_id` / `id` (`_id>=X`,
/// `_id<X`): the docs promise "querying on any property" but show ranges on
/// dates only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdRangeFilters {
    /// Compares ids as strings (ObjectIds sort by creation).
    #[default]
    Honour,
    /// 400 naming the filter.
    Refuse,
    /// Drops the filter silently.
    Ignore,
}

impl FromStr for IdRangeFilters {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "honour" | "honor" => Ok(IdRangeFilters::Honour),
            "refuse" => Ok(IdRangeFilters::Refuse),
            "ignore" => Ok(IdRangeFilters::Ignore),
            o => Err(format!(
                "unknown id-filter policy {o:?} (honour|refuse|ignore)"
            )),
        }
    }
}

/// What a list endpoint does with a `limit` above its cap (documented caps:
/// 1000, 10000 on `/messages`; see also `FakeConfig::max_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverLimit {
    /// Serves a page of the cap's size, silently.
    #[default]
    Clamp,
    /// 400 `limit must not exceed N`.
    Refuse,
}

impl FromStr for OverLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clamp" => Ok(OverLimit::Clamp),
            "refuse" => Ok(OverLimit::Refuse),
            o => Err(format!("unknown over-limit policy {o:?} (clamp|refuse)")),
        }
    }
}

/// Shape of `GET /engagement/surveys/{id}/responses` (unknown in the docs).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ResponsesShape {
    /// A bare JSON array.
    #[default]
    Array,
    /// An object wrapping the array under this key, e.g. `{"responses":[...]}`.
    Wrapped(String),
}

/// How base records spread in time (their `updatedAt`), for benchmarks of
/// data that is not uniform. Every shape keeps `updatedAt` non-decreasing
/// in the index, tie groups (`tie_group`) sharing one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeShape {
    /// One tie group every `step_ms`.
    #[default]
    Uniform,
    /// Steady growth: tie group `k` at `step_ms * sqrt(k * 10,000)`, so
    /// records crowd ever more densely towards the newest (most recent).
    Growth,
    /// Bursts of 1,000 tie groups `step_ms` apart, each 50 bursts' length
    /// after the one before: many small bursts with gaps.
    Bursts,
}

impl TimeShape {
    pub fn parse(s: &str) -> Result<TimeShape, String> {
        match s {
            "uniform" => Ok(TimeShape::Uniform),
            "growth" => Ok(TimeShape::Growth),
            "bursts" => Ok(TimeShape::Bursts),
            _ => Err(format!(
                "unknown time shape {s:?}: uniform, growth or bursts"
            )),
        }
    }

    /// The offset of tie group `k` from the base time.
    pub fn offset_ms(self, k: u64, step_ms: i64) -> i64 {
        const GROWTH_SCALE: f64 = 10_000.0;
        const BURST: u64 = 1_000;
        const GAP_BURSTS: i64 = 50;
        match self {
            TimeShape::Uniform => k as i64 * step_ms,
            TimeShape::Growth => ((k as f64 * GROWTH_SCALE).sqrt() * step_ms as f64) as i64,
            TimeShape::Bursts => {
                (k / BURST) as i64 * GAP_BURSTS * BURST as i64 * step_ms
                    + (k % BURST) as i64 * step_ms
            }
        }
    }
}

/// Order of records that share a sort value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TieOrder {
    /// Ties come back in index (insertion) order, stable across requests.
    #[default]
    Natural,
    /// Ties come back in a different random order on every request (MongoDB
    /// leaves the order of ties unspecified), which breaks `skip` paging
    /// across a tie group.
    Shuffled,
}

/// Whether and how a 429 tells the client when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetryAfter {
    /// `Retry-After: <integer seconds>`.
    #[default]
    Seconds,
    /// `Retry-After: <HTTP date>`.
    HttpDate,
    /// No `Retry-After` header at all.
    Absent,
}

/// Body of error responses that the docs leave open (429).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ErrorBody {
    /// `{"statusCode":429,"message":"Too Many Requests"}`.
    #[default]
    Json,
    /// `text/plain` `Too Many Requests`.
    Text,
    /// No body.
    Empty,
}

/// Rolling-window rate limit, per project.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub per_window: u32,
    pub window: Duration,
    pub retry_after: RetryAfter,
    pub body: ErrorBody,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_window: 1000,
            window: Duration::from_secs(60),
            retry_after: RetryAfter::Seconds,
            body: ErrorBody::Json,
        }
    }
}

/// A failure injected into an API response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Status500,
    Status502,
    Status503,
    Status504,
    /// Sleep `Faults::hang`, then answer normally.
    Hang,
    /// 200 headers and part of the body, then the connection is aborted.
    ResetMidBody,
    /// 200 with the JSON cut in half (Content-Length matches the cut body).
    TruncatedJson,
    /// 200 with a `text/html` error page.
    Html200,
    /// 200 with valid JSON of a shape other than documented.
    WrongShape,
    /// 200 with an empty body.
    EmptyBody200,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Status500,
        Fault::Status502,
        Fault::Status503,
        Fault::Status504,
        Fault::Hang,
        Fault::ResetMidBody,
        Fault::TruncatedJson,
        Fault::Html200,
        Fault::WrongShape,
        Fault::EmptyBody200,
    ];

    /// Name used on the CLI, in the control plane and as the key in `Stats::faults`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Status500 => "500",
            Fault::Status502 => "502",
            Fault::Status503 => "503",
            Fault::Status504 => "504",
            Fault::Hang => "hang",
            Fault::ResetMidBody => "reset",
            Fault::TruncatedJson => "truncated",
            Fault::Html200 => "html",
            Fault::WrongShape => "wrong-shape",
            Fault::EmptyBody200 => "empty",
        }
    }

    /// Parses a comma separated list such as `500,hang,reset`.
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect()
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "reset-mid-body" | "resetmidbody" => "reset",
            "truncated-json" | "truncatedjson" => "truncated",
            "html200" | "html-200" => "html",
            "wrongshape" | "wrong_shape" => "wrong-shape",
            "empty-body" | "emptybody200" | "empty200" => "empty",
            other => other,
        };
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| format!("unknown fault {s:?}"))
    }
}

/// Random failures injected into a share of API requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Share of API requests (0.0..=1.0) that get a fault.
    pub rate: f64,
    /// Kinds to choose from (uniformly); empty means no faults.
    pub kinds: Vec<Fault>,
    /// How long `Fault::Hang` sleeps.
    pub hang: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rate: 0.0,
            // Hang is left out of the default mix: it makes runs slow.
            kinds: Fault::ALL
                .into_iter()
                .filter(|f| *f != Fault::Hang)
                .collect(),
            hang: Duration::from_secs(30),
        }
    }
}

/// Background churn: every `requests` API requests, apply this many
/// updates, creates and deletes to every incremental stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutateEvery {
    pub requests: u64,
    pub updates: u64,
    pub creates: u64,
    pub deletes: u64,
}

/// Everything the fake serves and how it behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub seed: u64,
    pub api_key: String,
    pub project_id: String,
    pub tickets: u64,
    pub sessions: u64,
    pub messages: u64,
    pub teams: u64,
    pub surveys: u64,
    pub responses_per_survey: u64,
    pub message_templates: u64,
    /// Team members (`GET /projects/users`): the users that tickets'
    /// `processingUser`, teams' `members` and messages' `user` name.
    pub team_members: u64,
    pub helpcenter_collections: u64,
    pub articles_per_collection: u64,
    pub helpcenter_redirects: u64,
    pub news: u64,
    /// Records of each of the ten engagement lists.
    pub engagements_per_kind: u64,
    pub custom_components: u64,
    pub activity_logs_per_ticket: u64,
    pub activities_per_session: u64,
    pub events_per_session: u64,
    /// Features the project's plan lacks: their endpoints answer
    /// `missing_status` (and the snapshot holds none of their records, which
    /// no client can reach). Stream names (`engagement_cobrowse`, `-` or
    /// `_`) or groups: `engagement`, `helpcenter`.
    pub missing_features: Vec<String>,
    /// What a missing feature's endpoints answer: 404 (default) or 403.
    pub missing_status: u16,
    /// Streams whose endpoints are down: every request answers 503 (an
    /// outage of one endpoint, while the others work). Names as for
    /// `missing_features`.
    pub broken_features: Vec<String>,
    /// updatedAt of base record 0.
    pub base_time: DateTime<Utc>,
    /// updatedAt spacing between consecutive tie groups of base records.
    pub step_ms: i64,
    /// Consecutive base records sharing one updatedAt (bulk updates).
    pub tie_group: u64,
    pub rate_limit: Option<RateLimit>,
    pub faults: Faults,
    /// Time every API response waits before it is answered.
    pub latency: Duration,
    /// On top of `latency`, a wait drawn evenly from `0..latency_jitter` per
    /// request: real round trips vary, and a client that keeps a fixed
    /// number of requests in flight meets the slow ones.
    pub latency_jitter: Duration,
    /// Meaning of `archived` / `isSpam` / `ignoreArchived` on `GET /tickets`.
    pub archived_default: ArchivedDefault,
    /// Shape of the survey responses listing.
    pub responses_shape: ResponsesShape,
    /// Order of records that share a sort value.
    pub tie_order: TieOrder,
    /// The server ignores range filters (`updatedAt>=...`); exact-match
    /// filters and the `/messages` `before` cursor still apply.
    pub ignore_filters: bool,
    /// The server ignores `sort` on every list endpoint (default order).
    pub ignore_sort: bool,
    /// Sorts on fields the docs do not name (`sort=_id`).
    pub undocumented_sort: UndocumentedSort,
    /// `/messages` ignores `sort` (seen with a `ticket=` filter; unknown
    /// project-wide): always conversation order, `createdAt` ascending (ties
    /// by id); with `paginated=true` the cursor's order, newest first.
    /// Filters still apply.
    pub messages_sort_ignored: bool,
    /// Percent-encoded range operators in keys (`updatedAt%3E=`).
    pub encoded_operators: EncodedOperators,
    /// Range operators on `_id` / `id`.
    pub id_range_filters: IdRangeFilters,
    /// A `limit` above the endpoint's cap (documented or `max_limit`).
    pub over_limit: OverLimit,
    /// Base records of one tie group (`tie_group`) also share one
    /// `createdAt`, as after a contact import (still never after their
    /// updatedAt; ids stay distinct and in index order).
    pub tie_created: bool,
    /// API responses carry a `Date` header (hyper adds one by default).
    /// Whether Gleap sends one is not documented; off plays a proxy that
    /// strips it.
    pub date_header: bool,
    /// Admitted requests carry `X-RateLimit-Limit` / `-Remaining` (the docs
    /// say "may"). Off: never, not even on a 429.
    pub rate_limit_headers: bool,
    /// `GET /tickets` answers `count` and `totalCount` next to `tickets`.
    /// Off: `{"tickets":[...]}` only.
    pub total_count: bool,
    pub unpaginated_small_lists: bool,
    /// What a refused request answers: 401 (default) or 403.
    pub auth_failure_status: u16,
    /// Whether the refusal's body says which header was refused: a wrong
    /// key `{"message": "Invalid API token"}`, a right key with a wrong
    /// project `{"message": "Project not found"}`. Gleap's body is not
    /// documented; off (default), both say `Unauthorized` (or `Forbidden`).
    pub auth_failure_telling: bool,
    pub gzip: bool,
    pub mutate_every: Option<MutateEvery>,
    pub odd_records: bool,
    /// Records carry fields no schema of the tap names, as the real API's
    /// do (`data.rs`, `undocumented`): some on every record, some on one
    /// record in ten or in a hundred, one that changes type. Default on.
    pub undocumented_fields: bool,
    /// Undocumented page caps: every list endpoint silently serves at most
    /// this many records per page, whatever `limit` asks (default: none
    /// beyond the documented caps).
    pub max_limit: Option<u64>,
    /// How far the API's clock runs ahead of this machine's (negative:
    /// behind), in ms: changed records are stamped, and the `Date` header
    /// set, on the API's clock. Default 0.
    pub clock_offset_ms: i64,
    /// How far the `Date` header runs ahead of the clock that stamps
    /// records, in ms: a front proxy's clock beside the API's. A sync
    /// reads up to the `Date` of its first answer, so records changed
    /// within this long after it starts are in its range (tests use it to
    /// land a change mid-run whatever the machine's speed). Default 0.
    pub date_lead_ms: i64,
    /// Lists served by a lagging search index: each write (update, create,
    /// delete) shows in the lists only after its own random delay, up to
    /// this bound, so not in the order written; the lists show the
    /// previous version meanwhile. Fetching one record by id is exact.
    /// Default zero: lists show every write at once.
    pub index_lag: Duration,
    /// Lists served through a cache: a request identical to one answered
    /// less than this long ago (path and query string) gets the same body.
    /// Default zero: no cache.
    pub list_cache: Duration,
    /// How base records spread in time. Default: uniform.
    pub time_shape: TimeShape,
    /// A search index's paging depth (OpenSearch's `max_result_window`,
    /// 10,000 by default there): a list request with `skip + limit` above
    /// it is a 400 "Result window is too large". Default: none.
    pub max_result_window: Option<u64>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            seed: 42,
            api_key: "fake-api-key".into(),
            project_id: "fake-project".into(),
            tickets: 250,
            sessions: 120,
            messages: 300,
            teams: 4,
            surveys: 5,
            responses_per_survey: 20,
            message_templates: 6,
            team_members: 8,
            helpcenter_collections: 4,
            articles_per_collection: 3,
            helpcenter_redirects: 3,
            news: 4,
            engagements_per_kind: 2,
            custom_components: 3,
            activity_logs_per_ticket: 2,
            activities_per_session: 2,
            events_per_session: 3,
            missing_features: Vec::new(),
            missing_status: 404,
            broken_features: Vec::new(),
            base_time: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            step_ms: 60_000,
            tie_group: 1,
            rate_limit: None,
            faults: Faults::default(),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            archived_default: ArchivedDefault::Exclude,
            responses_shape: ResponsesShape::Array,
            tie_order: TieOrder::Natural,
            ignore_filters: false,
            ignore_sort: false,
            undocumented_sort: UndocumentedSort::Honour,
            messages_sort_ignored: false,
            encoded_operators: EncodedOperators::Decode,
            id_range_filters: IdRangeFilters::Honour,
            over_limit: OverLimit::Clamp,
            tie_created: false,
            date_header: true,
            rate_limit_headers: true,
            total_count: true,
            unpaginated_small_lists: false,
            auth_failure_status: 401,
            auth_failure_telling: false,
            gzip: true,
            mutate_every: None,
            odd_records: false,
            undocumented_fields: true,
            max_limit: None,
            clock_offset_ms: 0,
            date_lead_ms: 0,
            index_lag: Duration::ZERO,
            list_cache: Duration::ZERO,
            max_result_window: None,
            time_shape: TimeShape::Uniform,
        }
    }
}

impl FakeConfig {
    /// Number of base (generated) records of a stream.
    pub fn base_count(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Tickets => self.tickets,
            Stream::Sessions => self.sessions,
            Stream::Messages => self.messages,
            Stream::Teams => self.teams,
            Stream::Surveys => self.surveys,
            Stream::MessageTemplates => self.message_templates,
            Stream::TeamMembers => self.team_members,
            Stream::HelpcenterCollections => self.helpcenter_collections,
            Stream::HelpcenterRedirects => self.helpcenter_redirects,
            Stream::News => self.news,
            Stream::CustomComponents => self.custom_components,
            s if Stream::ENGAGEMENT.contains(&s) => self.engagements_per_kind,
            s => {
                let parent = s.parent().expect("every other stream is a child");
                self.base_count(parent).saturating_mul(self.per_parent(s))
            }
        }
    }

    /// Base records of a child stream per parent record (0 for other streams).
    pub fn per_parent(&self, stream: Stream) -> u64 {
        match stream {
            Stream::SurveyResponses => self.responses_per_survey,
            Stream::HelpcenterArticles => self.articles_per_collection,
            Stream::TicketActivityLogs => self.activity_logs_per_ticket,
            Stream::SessionActivities => self.activities_per_session,
            Stream::SessionEvents => self.events_per_session,
            _ => 0,
        }
    }

    /// Whether the project's plan lacks this stream's feature.
    pub fn is_missing(&self, stream: Stream) -> bool {
        self.missing_features.iter().any(|f| stream.is_feature(f))
    }

    /// Whether this stream's endpoints are down (`broken_features`).
    pub fn is_broken(&self, stream: Stream) -> bool {
        self.broken_features.iter().any(|f| stream.is_feature(f))
    }
}
