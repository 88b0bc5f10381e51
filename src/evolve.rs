//! Schema evolution: top-level fields the API sends that a stream's schema
//! lacks (`schema_evolution`, named after dlt's schema contracts).
//!
//! - `evolve` (default): a new field joins the stream's schema, typed from
//!   its values (nullable); the extended SCHEMA is written before the first
//!   RECORD that carries it. A later value of another type widens the type
//!   (integer to number; any other mix to a list of types) and the SCHEMA is
//!   written again. Values of new fields are written exactly as sent. A
//!   field seen only as `null` is not added (a missing field and a null one
//!   are the same row in a warehouse), as dlt does.
//! - `freeze`: the stream fails on its first unknown field, with one line.
//! - `discard`: the field is dropped, with a warning once (the tap's
//!   behaviour before evolution).
//!
//! One [`Registry`] per stream is shared by every task conforming it; it is
//! consulted only when a conformer meets a name it has not classified, or a
//! value of a type its copy of a new field does not allow: a stream whose
//! fields the schema already has never touches it.
//!
//! How an extended SCHEMA reaches stdout before the records that need it,
//! whichever task's page the writer gets first: a page whose records carry
//! a new field holds, before the first of them, the stream's whole SCHEMA
//! line at the registry's version then, behind a marker (`MARK`, a control
//! byte no JSON line holds raw, the version, `MARK`). The writer
//! (`output::SchemaFilter`) writes such a line only when its version is newer than the
//! last it wrote for that stream, without the marker; an older one is
//! dropped (the newer schema, a superset, covers its records).

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};

use crate::streams::StreamDef;

/// What to do with a field the schema lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Evolve,
    Freeze,
    Discard,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["evolve", "freeze", "discard"];

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "evolve" => Some(Mode::Evolve),
            "freeze" => Some(Mode::Freeze),
            "discard" => Some(Mode::Discard),
            _ => None,
        }
    }
}

/// The JSON types seen of a field, as bits (`json_types.rs`).
pub use crate::json_types as types;

/// A new field as the registry knows it.
#[derive(Clone, Debug)]
pub struct NewField {
    pub name: Box<str>,
    pub types: u8,
}

struct Inner {
    fields: Vec<NewField>,
    version: u32,
    /// The marked SCHEMA line of `version`.
    line: Arc<[u8]>,
}

/// One stream's schema as extended during this sync, shared by its tasks.
pub struct Registry {
    pub def: &'static StreamDef,
    pub mode: Mode,
    incremental: bool,
    /// The schema sent first (the selected schema, with the fields a
    /// catalog added).
    base: Value,
    /// Names the catalog deselects that the schema lacks: kept out.
    pub deselected: Vec<String>,
    inner: Mutex<Inner>,
    /// Set (once) when a frozen stream met an unknown field: the stream fails.
    violation: OnceLock<String>,
}

impl Registry {
    /// `base`: the selected schema; its properties the built-in schema lacks
    /// (from a catalog) are new fields from the start, typed as it says.
    pub fn new(
        def: &'static StreamDef,
        base: Value,
        builtin: &Map<String, Value>,
        deselected: Vec<String>,
        mode: Mode,
        incremental: bool,
    ) -> Arc<Registry> {
        let fields = base["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !builtin.contains_key(*k))
            .map(|(k, v)| NewField {
                name: k.as_str().into(),
                types: types::from_schema(v),
            })
            .collect();
        let line = Arc::from(crate::output::schema_line(def, &base, incremental));
        Arc::new(Registry {
            def,
            mode,
            incremental,
            base,
            deselected,
            inner: Mutex::new(Inner {
                fields,
                version: 0,
                line,
            }),
            violation: OnceLock::new(),
        })
    }

    /// A registry that drops every unknown field (for walks that write no
    /// record, and `Conformer::new`).
    pub fn discard(def: &'static StreamDef) -> Arc<Registry> {
        Registry::new(
            def,
            json!({}),
            &Map::new(),
            Vec::new(),
            Mode::Discard,
            false,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The field's types and the version that has them, if it is known.
    pub fn known(&self, name: &str) -> Option<(u8, u32)> {
        let inner = self.lock();
        inner
            .fields
            .iter()
            .find(|f| &*f.name == name)
            .map(|f| (f.types, inner.version))
    }

    /// Makes the field (of `name`) take values of type `t`, adding or
    /// widening it when needed: its types and the version that has them.
    pub fn admit(&self, name: &str, t: u8) -> (u8, u32) {
        let mut inner = self.lock();
        let at = inner.fields.iter().position(|f| &*f.name == name);
        let (types, changed) = match at {
            Some(i) if types::fits(t, inner.fields[i].types) => (inner.fields[i].types, false),
            Some(i) => {
                let old = inner.fields[i].types;
                let new = old | t;
                inner.fields[i].types = new;
                tracing::warn!(
                    stream = self.def.name,
                    "schema evolution: field \"{name}\" was {}, now also {}: its type is widened and the SCHEMA sent again",
                    types::describe(old),
                    types::describe(t)
                );
                (new, true)
            }
            None => {
                let new = t | types::NULL;
                inner.fields.push(NewField {
                    name: name.into(),
                    types: new,
                });
                tracing::info!(
                    stream = self.def.name,
                    "schema evolution: new field \"{name}\" ({}) is added to the stream's schema",
                    types::describe(new)
                );
                (new, true)
            }
        };
        if changed {
            inner.version += 1;
            let schema = self.schema_of(&inner.fields);
            let mut line = vec![crate::output::MARK];
            line.extend_from_slice(inner.version.to_string().as_bytes());
            line.push(crate::output::MARK);
            line.extend_from_slice(&crate::output::schema_line(
                self.def,
                &schema,
                self.incremental,
            ));
            inner.line = line.into();
            crate::output::note_marked();
        }
        (types, inner.version)
    }

    fn schema_of(&self, fields: &[NewField]) -> Value {
        let mut schema = self.base.clone();
        if let Some(props) = schema["properties"].as_object_mut() {
            for f in fields {
                props.insert(f.name.to_string(), types::schema(f.types));
            }
        }
        schema
    }

    /// The stream's schema now, with every new field.
    pub fn schema(&self) -> Value {
        self.schema_of(&self.lock().fields)
    }

    /// The marked SCHEMA line of the current version, and that version.
    pub fn line(&self) -> (Arc<[u8]>, u32) {
        let inner = self.lock();
        (inner.line.clone(), inner.version)
    }

    /// Freeze: notes the first unknown field met.
    pub fn violate(&self, name: &str) {
        let _ = self.violation.set(format!(
            "stream {}: the API sent field \"{name}\", which the stream's schema lacks, and \"schema_evolution\" is \"freeze\": add the field to the catalog, deselect it there, or set \"schema_evolution\" to \"evolve\" or \"discard\"",
            self.def.name
        ));
    }

    /// Why the stream fails (freeze), once it does.
    pub fn violation(&self) -> Option<&str> {
        self.violation.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::types::*;
    use super::*;

    #[test]
    fn types_are_read_from_values_and_widen_to_what_covers_them() {
        assert_eq!(of(b"12"), INT);
        assert_eq!(of(b"-1.5e3"), NUM);
        assert_eq!(of(b"\"x\""), STR);
        assert_eq!(of(b"{}"), OBJ);
        assert_eq!(of(b"[1]"), ARR);
        assert_eq!(of(b"false"), BOOL);
        assert_eq!(of(b"null"), NULL);
        assert!(fits(INT, NUM | NULL));
        assert!(!fits(NUM, INT | NULL));
        assert_eq!(
            schema(INT | NUM | NULL),
            json!({"type": ["number", "null"]})
        );
        assert_eq!(
            schema(STR | INT | NULL),
            json!({"type": ["integer", "string", "null"]})
        );
        assert_eq!(
            schema(ARR | NULL),
            json!({"type": ["array", "null"], "items": {}})
        );
        assert_eq!(schema(ANY), json!({}));
        for t in [INT | NULL, STR | OBJ | NULL, ARR | NULL, ANY] {
            assert_eq!(from_schema(&schema(t)), t);
        }
    }
}
