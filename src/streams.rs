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

/// A child stream is listed once per record of its parent stream.
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    /// The parent stream's name (its endpoint is listed to find the ids).
    pub stream: &'static str,
    /// The field the child records get, holding the parent's id.
    pub child_field: &'static str,
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
    pub schema: &'static str,
}

impl StreamDef {
    pub fn is_partitioned(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// Every partition's query: the plain listing first, then each hidden kind's.
    pub fn partitions(&self) -> impl Iterator<Item = &'static [(&'static str, &'static str)]> + '_ {
        std::iter::once(&[][..]).chain(self.hidden.iter().map(|h| h.query))
    }
}

/// What most endpoints share; each entry below says only how it differs.
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
        schema: include_str!("../schemas/tickets.json"),
        ..LIST
    },
    StreamDef {
        name: "sessions",
        path: "/sessions",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        schema: include_str!("../schemas/sessions.json"),
        ..LIST
    },
    StreamDef {
        name: "messages",
        path: "/messages",
        replication_key: Some("updatedAt"),
        default_method: Method::Incremental,
        max_page_size: 10_000,
        schema: include_str!("../schemas/messages.json"),
        ..LIST
    },
    StreamDef {
        name: "teams",
        path: "/teams",
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
        }),
        // `survey` is the parent's id, which the record carries as `survey_id`.
        ignored_fields: &["_id", "__v", "survey"],
        schema: include_str!("../schemas/survey_responses.json"),
        ..LIST
    },
    StreamDef {
        name: "message_templates",
        path: "/message-templates",
        schema: include_str!("../schemas/message_templates.json"),
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
                assert!(find(p.stream).is_some());
            }
        }
    }
}
