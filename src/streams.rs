//! The stream registry: every stream the tap knows, declared as data. Adding a
//! stream is adding an entry here and a schema file in `schemas/`; the sync,
//! the catalog and `--about` read everything else from this table.

/// Where the records sit in a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A bare JSON array.
    Array,
    /// An object holding the records under this key (tickets: `{"tickets": [...], "totalCount": N}`).
    Object { records: &'static str },
    /// Undocumented: a bare array, or an object wrapping one (survey responses).
    ArrayOrWrapped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Incremental,
    FullTable,
}

impl Method {
    pub fn as_singer(self) -> &'static str {
        match self {
            Method::Incremental => "INCREMENTAL",
            Method::FullTable => "FULL_TABLE",
        }
    }
}

/// Which of its parent's records a child stream is listed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentIds {
    /// Every record of the parent, every run (survey responses: every
    /// survey; the parent is a small list). The child's own records are
    /// read from its bookmark on.
    All,
    /// Only the parent's records updated since the child's bookmark (a
    /// ticket's activity logs: the tickets updated since): the parent's
    /// endpoint is walked by `updatedAt` from that bookmark for their ids
    /// (nothing is written for the parent), then each one's whole listing
    /// is read. A change to such a child record updates its parent (a new
    /// activity log entry is a change to its ticket). One request per
    /// parent: such streams are not selected by default.
    ChangedSince,
}

/// A child stream is listed once per record of its parent stream.
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    /// The parent stream's name (its endpoint is listed to find the ids).
    pub stream: &'static str,
    /// The field the child records get, holding the parent's id.
    pub child_field: &'static str,
    pub ids: ParentIds,
    /// What one parent record is, in words (`--about`'s request costs).
    pub noun: &'static str,
}

/// A kind of record an endpoint may leave out of a plain listing.
#[derive(Debug)]
pub struct Hidden {
    /// The boolean field that marks such records (`archived`, `isSpam`).
    pub flag: &'static str,
    /// The query that lists them, as Gleap's web app asks for archived
    /// tickets (`ignoreArchived=true&archived=true`).
    pub query: &'static [(&'static str, &'static str)],
}

#[derive(Debug)]
pub struct StreamDef {
    pub name: &'static str,
    /// Path under `api_url`; `{parent_id}` is replaced for child streams.
    pub path: &'static str,
    pub shape: Shape,
    pub key: &'static str,
    /// The replication key, for streams that can be synced incrementally.
    /// Such streams are paged by keyset on it (see `pager.rs`); the others by offset.
    pub replication_key: Option<&'static str>,
    /// The method used when the catalog does not choose one.
    pub default_method: Method,
    /// The API's largest `limit` for this endpoint; `page_size` is capped to it.
    pub max_page_size: u32,
    /// Records the endpoint may hide from a plain listing, each with the
    /// query that lists them (tickets: archived and spam). What a plain
    /// listing hides is undocumented; the pager decides from what the
    /// server shows which of these to read (`pager/partitions.rs`). Each
    /// has its own bookmark beside the plain listing's.
    pub hidden: &'static [Hidden],
    pub parent: Option<Parent>,
    /// Fields the API sends that the schema deliberately leaves out (Mongo's
    /// `_id` duplicates `id`): dropped without a schema-drift warning.
    pub ignored_fields: &'static [&'static str],
    /// The response field holding the total number of matching records, for progress.
    pub total_field: Option<&'static str>,
    /// A feature a project's plan may lack (the help center, news, the
    /// engagement lists...): a 403 or 404 on its listing skips the stream
    /// with a warning, and the others complete. On a stream that is not
    /// optional (tickets, sessions...) they mean wrong credentials or a
    /// wrong `api_url`, and stop the sync.
    pub optional: bool,
    pub schema: &'static str,
}

impl StreamDef {
    /// Whether a sync without a catalog (and `--discover`'s catalog)
    /// selects it: every stream but those costing a request per changed
    /// parent record.
    pub fn selected_by_default(&self) -> bool {
        !self
            .parent
            .is_some_and(|p| p.ids == ParentIds::ChangedSince)
    }

    /// The endpoint as documentation writes it: `{parent_id}` named after
    /// the child field (`/engagement/surveys/{survey_id}/responses`).
    pub fn endpoint(&self) -> String {
        match self.parent {
            Some(p) => self
                .path
                .replace("{parent_id}", &format!("{{{}}}", p.child_field)),
            None => self.path.to_string(),
        }
    }

    /// What a sync of this stream costs in requests, in words.
    pub fn cost(&self) -> String {
        match (self.parent, self.default_method) {
            (Some(p), _) if p.ids == ParentIds::ChangedSince => format!(
                "one request per {n} updated since the bookmark (every {n} on the first run), and the {parent} listing's pages of them",
                n = p.noun,
                parent = p.stream
            ),
            (Some(p), _) => format!("about one request per {}, every run", p.noun),
            (None, Method::Incremental) => format!(
                "one request per page (up to {}) of records changed since the bookmark",
                self.max_page_size
            ),
            (None, Method::FullTable) => "one request per page, every run (a small list: one or two)".into(),
        }
    }
    /// Listed once per parent record changed since the bookmark
    /// (`ParentIds::ChangedSince`): reading it whole costs a request per
    /// parent, so it is never reconciled.
    pub fn is_per_changed_parent(&self) -> bool {
        self.parent
            .is_some_and(|p| p.ids == ParentIds::ChangedSince)
    }

    pub fn is_partitioned(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// Every partition's query: the plain listing first, then each hidden kind's.
    pub fn partitions(&self) -> impl Iterator<Item = &'static [(&'static str, &'static str)]> + '_ {
        std::iter::once(&[][..]).chain(self.hidden.iter().map(|h| h.query))
    }
}

/// What most endpoints share; each entry below says only how it differs.
/// Optional unless it says otherwise: only the lists every plan has
/// (tickets, sessions, messages, teams, templates, team members) are not.
const LIST: StreamDef = StreamDef {
    name: "",
    path: "",
    // Documented as arrays; an object wrapping one is read as well.
    shape: Shape::ArrayOrWrapped,
    key: "id",
    replication_key: None,
    default_method: Method::FullTable,
    max_page_size: 1000,
    hidden: &[],
    parent: None,
    ignored_fields: &["_id", "__v"],
    total_field: None,
    optional: true,
    schema: "",
};

pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "tickets",
        path: "/tickets",
        shape: Shape::Object { records: "tickets" },
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        // Without `isSpam=false`, which the web app adds to keep spam out of
        // its archive view: archived spam belongs in the warehouse too, and a
        // `false` filter would miss documents that lack the field.
        hidden: &[
            Hidden {
                flag: "archived",
                query: &[("ignoreArchived", "true"), ("archived", "true")],
            },
            Hidden {
                flag: "isSpam",
                query: &[("ignoreArchived", "true"), ("isSpam", "true")],
            },
        ],
        total_field: Some("totalCount"),
        optional: false,
        schema: include_str!("../schemas/tickets.json"),
        ..LIST
    },
    StreamDef {
        name: "sessions",
        path: "/sessions",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        optional: false,
        schema: include_str!("../schemas/sessions.json"),
        ..LIST
    },
    StreamDef {
        name: "messages",
        path: "/messages",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        max_page_size: 10_000,
        optional: false,
        schema: include_str!("../schemas/messages.json"),
        ..LIST
    },
    StreamDef {
        name: "teams",
        path: "/teams",
        optional: false,
        schema: include_str!("../schemas/teams.json"),
        ..LIST
    },
    StreamDef {
        name: "surveys",
        path: "/engagement/surveys",
        schema: include_str!("../schemas/surveys.json"),
        ..LIST
    },
    StreamDef {
        name: "survey_responses",
        path: "/engagement/surveys/{parent_id}/responses",
        shape: Shape::ArrayOrWrapped,
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        parent: Some(Parent {
            stream: "surveys",
            child_field: "survey_id",
            ids: ParentIds::All,
            noun: "survey",
        }),
        // `survey` is the parent's id, which the record carries as `survey_id`.
        ignored_fields: &["_id", "__v", "survey"],
        schema: include_str!("../schemas/survey_responses.json"),
        ..LIST
    },
    StreamDef {
        name: "message_templates",
        path: "/message-templates",
        optional: false,
        schema: include_str!("../schemas/message_templates.json"),
        ..LIST
    },
    // The users behind the ids in tickets' `processingUser`, teams'
    // `members`, messages' `user`.
    StreamDef {
        name: "team_members",
        path: "/projects/users",
        optional: false,
        schema: include_str!("../schemas/team_members.json"),
        ..LIST
    },
    // `title` and `description` are language maps (`{"en": ...}`), kept as
    // JSON; `parent` names the collection a sub-collection is in.
    StreamDef {
        name: "helpcenter_collections",
        path: "/helpcenter/collections/all",
        schema: include_str!("../schemas/helpcenter_collections.json"),
        ..LIST
    },
    StreamDef {
        name: "helpcenter_articles",
        path: "/helpcenter/collections/{parent_id}/articles",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        parent: Some(Parent {
            stream: "helpcenter_collections",
            child_field: "collection_id",
            ids: ParentIds::All,
            noun: "collection",
        }),
        // `helpcenterCollection` is the parent's id, carried as `collection_id`.
        ignored_fields: &["_id", "__v", "helpcenterCollection"],
        schema: include_str!("../schemas/helpcenter_articles.json"),
        ..LIST
    },
    StreamDef {
        name: "helpcenter_redirects",
        path: "/helpcenter-redirect",
        schema: include_str!("../schemas/helpcenter_redirects.json"),
        ..LIST
    },
    StreamDef {
        name: "news",
        path: "/engagement/news",
        schema: include_str!("../schemas/news.json"),
        ..LIST
    },
    // The engagement lists (`/engagement/<kind>`), one stream per kind:
    // outbound messages whose shapes are undocumented (a bare array or an
    // object wrapping one is read, as for every list).
    StreamDef {
        name: "engagement_banners",
        path: "/engagement/banners",
        schema: include_str!("../schemas/engagement_banners.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_chat_messages",
        path: "/engagement/chat-messages",
        schema: include_str!("../schemas/engagement_chat_messages.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_cobrowse",
        path: "/engagement/cobrowse",
        schema: include_str!("../schemas/engagement_cobrowse.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_emails",
        path: "/engagement/emails",
        schema: include_str!("../schemas/engagement_emails.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_product_tours",
        path: "/engagement/product-tours",
        schema: include_str!("../schemas/engagement_product_tours.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_push_notifications",
        path: "/engagement/push-notifications",
        schema: include_str!("../schemas/engagement_push_notifications.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_tooltips",
        path: "/engagement/tooltips",
        schema: include_str!("../schemas/engagement_tooltips.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_whatsapp_messages",
        path: "/engagement/whatsapp-messages",
        schema: include_str!("../schemas/engagement_whatsapp_messages.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_checklists",
        path: "/engagement/checklists",
        schema: include_str!("../schemas/engagement_checklists.json"),
        ..LIST
    },
    StreamDef {
        name: "engagement_modals",
        path: "/engagement/modals",
        schema: include_str!("../schemas/engagement_modals.json"),
        ..LIST
    },
    // Documented as an array, or `{totalCount, data}` with `withCount`.
    StreamDef {
        name: "custom_components",
        path: "/custom-components",
        schema: include_str!("../schemas/custom_components.json"),
        ..LIST
    },
    // Per changed parent (`ParentIds::ChangedSince`): not selected by default.
    StreamDef {
        name: "ticket_activity_logs",
        path: "/tickets/{parent_id}/activity-logs",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        parent: Some(Parent {
            stream: "tickets",
            child_field: "ticket_id",
            ids: ParentIds::ChangedSince,
            noun: "ticket",
        }),
        ignored_fields: &["_id", "__v", "ticket"],
        schema: include_str!("../schemas/ticket_activity_logs.json"),
        ..LIST
    },
    // Activities and events never change: they carry `createdAt` only, which
    // is their replication key. The bookmark, as for every per-parent
    // stream, is on the parents (contacts) whose records were all read.
    StreamDef {
        name: "session_activities",
        path: "/sessions/{parent_id}/activities",
        replication_key: Some("createdAt"),
        default_method: Method::Incremental,
        parent: Some(Parent {
            stream: "sessions",
            child_field: "session_id",
            ids: ParentIds::ChangedSince,
            noun: "contact",
        }),
        ignored_fields: &["_id", "__v", "session"],
        schema: include_str!("../schemas/session_activities.json"),
        ..LIST
    },
    StreamDef {
        name: "session_events",
        path: "/sessions/{parent_id}/events",
        replication_key: Some("createdAt"),
        default_method: Method::Incremental,
        parent: Some(Parent {
            stream: "sessions",
            child_field: "session_id",
            ids: ParentIds::ChangedSince,
            noun: "contact",
        }),
        ignored_fields: &["_id", "__v", "session"],
        schema: include_str!("../schemas/session_events.json"),
        ..LIST
    },
];

pub fn find(name: &str) -> Option<&'static StreamDef> {
    STREAMS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_declares_key_and_replication_key() {
        for s in STREAMS {
            let schema: serde_json::Value =
                serde_json::from_str(s.schema).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let props = schema["properties"].as_object().unwrap();
            assert!(props.contains_key(s.key), "{}", s.name);
            if let Some(rk) = s.replication_key {
                assert_eq!(props[rk]["format"], "date-time", "{}", s.name);
            }
            if let Some(p) = s.parent {
                assert!(props.contains_key(p.child_field), "{}", s.name);
                let parent = find(p.stream).expect("the parent is a stream");
                assert!(parent.parent.is_none(), "{}: one level of parents", s.name);
                if p.ids == ParentIds::ChangedSince {
                    // The parent is walked by `updatedAt` from the child's bookmark.
                    assert_eq!(parent.replication_key, Some("updatedAt"), "{}", s.name);
                    assert!(s.replication_key.is_some(), "{}", s.name);
                }
            }
            // Every field but the key (and the child field) is nullable.
            for (name, p) in props {
                let nullable = p["type"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "null"));
                let written = Some(name.as_str()) == s.parent.map(|p| p.child_field);
                assert!(
                    nullable || name == s.key || written,
                    "{}.{name} is not nullable",
                    s.name
                );
            }
        }
    }

    #[test]
    fn the_readme_lists_every_stream_with_its_endpoint() {
        let readme = include_str!("../README.md");
        for s in STREAMS {
            let row = format!("| {} | `GET {}`", s.name, s.endpoint());
            assert!(readme.contains(&row), "README's stream table lacks {row}");
        }
    }

    #[test]
    fn names_are_unique_and_core_streams_are_not_optional() {
        let mut names: Vec<&str> = STREAMS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STREAMS.len());
        for core in ["tickets", "sessions"] {
            assert!(!find(core).unwrap().optional, "{core}");
        }
        let per_parent: Vec<&str> = STREAMS
            .iter()
            .filter(|s| !s.selected_by_default())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            per_parent,
            [
                "ticket_activity_logs",
                "session_activities",
                "session_events"
            ]
        );
    }
}
