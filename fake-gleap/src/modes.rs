//! Named server modes for test matrices: each one a plausible answer of the
//! real API where Gleap's docs are silent, played by changing one unknown of
//! a [`FakeConfig`] (a few change two where that is the realistic case).
//!
//! Every mode still lets a correct client get every record it can reach (a
//! feature the plan lacks holds nothing a client could reach: the fake's
//! snapshot leaves it out): a test can loop over [`MODES`], apply each to
//! its config and demand no loss. A mode
//! changes only behaviour, never the data (counts, seed, times), except that
//! the tie modes make sure tie groups exist and the rate-limit-header modes
//! install a small rate limit where none is set, so they are never no-ops.

use std::time::Duration;

use crate::config::{
    ArchivedDefault, EncodedOperators, FakeConfig, IdRangeFilters, OverLimit, RateLimit,
    ResponsesShape, RetryAfter, TieOrder, UndocumentedSort,
};

/// One named deviation from the default server.
pub struct ServerMode {
    /// Name for `--mode` and test output, e.g. `archived-webapp`.
    pub name: &'static str,
    /// One line: what the server does differently.
    pub about: &'static str,
    /// Applies the mode to a config (on top of whatever it already says).
    pub apply: fn(&mut FakeConfig),
}

impl std::fmt::Debug for ServerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMode")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Tie groups the tie modes make sure of: odd, so they straddle page
/// boundaries of every usual page size.
const TIE_GROUP: u64 = 7;

/// The small rate limit the rate-limit-header modes install when none is
/// set: 429s happen within a test's few hundred requests, and waiting one
/// window costs a second.
fn test_rate_limit() -> RateLimit {
    RateLimit {
        per_window: 30,
        window: Duration::from_secs(1),
        ..RateLimit::default()
    }
}

/// The paging depth `deep-paging-capped` allows: OpenSearch's 10,000
/// scaled to a test's few hundred records, so every walk meets it.
const DEEP_PAGING_WINDOW: u64 = 100;

/// What `plan-lacks-engagement` leaves out.
const PLAN_LACKS: [&str; 4] = [
    "engagement_cobrowse",
    "engagement_whatsapp_messages",
    "engagement_product_tours",
    "engagement_checklists",
];

/// Every named mode.
pub const MODES: &[ServerMode] = &[
    ServerMode {
        name: "archived-ignored",
        about: "GET /tickets ignores archived, isSpam and ignoreArchived: every ticket, always",
        apply: |c| c.archived_default = ArchivedDefault::Ignored,
    },
    ServerMode {
        name: "archived-include",
        about: "archived and isSpam are plain exact filters; nothing hidden by default",
        apply: |c| c.archived_default = ArchivedDefault::Include,
    },
    ServerMode {
        name: "archived-exclude",
        about: "archived hidden unless archived= or ignoreArchived=true is sent, spam unless isSpam= is (the default, named for matrices)",
        apply: |c| c.archived_default = ArchivedDefault::Exclude,
    },
    ServerMode {
        name: "archived-webapp",
        about: "archived=false forced unless ignoreArchived=true (then archived= is exact); spam hidden unless isSpam= is sent",
        apply: |c| c.archived_default = ArchivedDefault::WebApp,
    },
    ServerMode {
        name: "id-sort-refused",
        about: "sort on an undocumented field (_id, id, ...) is a 400 Invalid sort field",
        apply: |c| c.undocumented_sort = UndocumentedSort::Refuse,
    },
    ServerMode {
        name: "id-sort-ignored",
        about: "sort on an undocumented field (_id, id, ...) is ignored: default order",
        apply: |c| c.undocumented_sort = UndocumentedSort::Ignore,
    },
    ServerMode {
        name: "messages-sort-ignored",
        about: "/messages ignores sort: always createdAt ascending (paginated: newest first)",
        apply: |c| c.messages_sort_ignored = true,
    },
    ServerMode {
        name: "sort-ignored",
        about: "every list endpoint ignores sort: default (id) order",
        apply: |c| c.ignore_sort = true,
    },
    ServerMode {
        name: "filters-ignored",
        about: "range filters (updatedAt>=, _id<, ...) are ignored; exact filters still apply",
        apply: |c| c.ignore_filters = true,
    },
    ServerMode {
        name: "encoded-operators-refused",
        about: "percent-encoded range operators (updatedAt%3E=) are a 400; raw ones work",
        apply: |c| c.encoded_operators = EncodedOperators::Refuse,
    },
    ServerMode {
        name: "encoded-operators-ignored",
        about: "percent-encoded range operators (updatedAt%3E=) are dropped silently; raw ones work",
        apply: |c| c.encoded_operators = EncodedOperators::Ignore,
    },
    ServerMode {
        name: "encoded-operators-literal",
        about: "updatedAt%3E=X is an exact filter on a field named updatedAt%3E: empty lists; raw operators work",
        apply: |c| c.encoded_operators = EncodedOperators::Literal,
    },
    ServerMode {
        name: "id-filters-refused",
        about: "range operators on _id / id are a 400",
        apply: |c| c.id_range_filters = IdRangeFilters::Refuse,
    },
    ServerMode {
        name: "id-filters-ignored",
        about: "range operators on _id / id are dropped silently",
        apply: |c| c.id_range_filters = IdRangeFilters::Ignore,
    },
    ServerMode {
        name: "limit-refused",
        about: "every endpoint caps pages at 100 and answers 400 to a larger limit",
        apply: |c| {
            c.max_limit = Some(c.max_limit.map_or(100, |m| m.min(100)));
            c.over_limit = OverLimit::Refuse;
        },
    },
    ServerMode {
        name: "silent-cap",
        about: "every endpoint serves at most 100 records per page, whatever limit says",
        apply: |c| c.max_limit = Some(c.max_limit.map_or(100, |m| m.min(100))),
    },
    ServerMode {
        name: "ties-shuffled",
        about: "records sharing a sort value come in a new random order on every request (tie groups of at least 7)",
        apply: |c| {
            c.tie_order = TieOrder::Shuffled;
            c.tie_group = c.tie_group.max(TIE_GROUP);
        },
    },
    ServerMode {
        name: "ties-share-created",
        about: "records of one updatedAt tie group share createdAt too (tie groups of at least 7)",
        apply: |c| {
            c.tie_created = true;
            c.tie_group = c.tie_group.max(TIE_GROUP);
        },
    },
    ServerMode {
        name: "ties-shuffled-share-created",
        about: "a bulk import as MongoDB serves it: ties share updatedAt and createdAt and come in random order",
        apply: |c| {
            c.tie_order = TieOrder::Shuffled;
            c.tie_created = true;
            c.tie_group = c.tie_group.max(TIE_GROUP);
        },
    },
    ServerMode {
        name: "no-date-header",
        about: "responses carry no Date header",
        apply: |c| c.date_header = false,
    },
    ServerMode {
        name: "no-ratelimit-headers",
        about: "no X-RateLimit-Limit / -Remaining headers (a 30 requests/1 s limit is set if none is)",
        apply: |c| {
            c.rate_limit_headers = false;
            c.rate_limit.get_or_insert_with(test_rate_limit);
        },
    },
    ServerMode {
        name: "no-total-count",
        about: "GET /tickets answers {\"tickets\": [...]} without count / totalCount",
        apply: |c| c.total_count = false,
    },
    ServerMode {
        name: "responses-wrapped",
        about: "lists of undocumented shape (survey responses, activity logs, the engagement lists) come as {\"data\": [...]}; custom components as {totalCount, data}",
        apply: |c| c.responses_shape = ResponsesShape::Wrapped("data".into()),
    },
    ServerMode {
        name: "retry-after-absent",
        about: "429 answers carry no Retry-After (a 30 requests/1 s limit is set if none is)",
        apply: |c| {
            c.rate_limit.get_or_insert_with(test_rate_limit).retry_after = RetryAfter::Absent;
        },
    },
    ServerMode {
        name: "small-lists-unpaginated",
        about: "teams, surveys and message templates ignore limit and skip: the whole list every time",
        apply: |c| c.unpaginated_small_lists = true,
    },
    ServerMode {
        name: "plan-lacks-engagement",
        about: "a plan without co-browsing, WhatsApp, product tours and checklists: those engagement lists answer 404",
        apply: |c| {
            for f in PLAN_LACKS {
                if !c.missing_features.iter().any(|m| m == f) {
                    c.missing_features.push(f.to_string());
                }
            }
        },
    },
    ServerMode {
        name: "clock-ahead",
        about: "the API's clock (updatedAt of changes, Date header) runs 90 s ahead of this machine's",
        apply: |c| c.clock_offset_ms = 90_000,
    },
    ServerMode {
        name: "clock-behind",
        about: "the API's clock (updatedAt of changes, Date header) runs 90 s behind this machine's",
        apply: |c| c.clock_offset_ms = -90_000,
    },
    ServerMode {
        name: "index-lag",
        about: "lists come from a lagging search index: each write shows after its own random delay of up to 2 s, out of order; the previous version meanwhile",
        apply: |c| c.index_lag = Duration::from_secs(2),
    },
    ServerMode {
        name: "list-cache",
        about: "lists go through a cache: an identical request within 1 s gets the same body",
        apply: |c| c.list_cache = Duration::from_secs(1),
    },
    ServerMode {
        name: "deep-paging-capped",
        about: "lists refuse to page deep: skip + limit above 100 is a 400 \"Result window is too large\" (OpenSearch's max_result_window, scaled down)",
        apply: |c| c.max_result_window = Some(DEEP_PAGING_WINDOW),
    },
];

/// The mode of this name.
pub fn mode(name: &str) -> Option<&'static ServerMode> {
    MODES.iter().find(|m| m.name == name)
}

/// Applies a comma separated list of mode names, in order. An unknown name
/// is an error that lists the valid ones.
pub fn apply_modes(cfg: &mut FakeConfig, names: &str) -> Result<(), String> {
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match mode(name) {
            Some(m) => (m.apply)(cfg),
            None => {
                let valid: Vec<&str> = MODES.iter().map(|m| m.name).collect();
                return Err(format!(
                    "unknown mode {name:?}; valid modes: {}",
                    valid.join(", ")
                ));
            }
        }
    }
    Ok(())
}
