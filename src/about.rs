//! `--about`: what Meltano and people read to learn the tap's settings and
//! capabilities. Built from the settings table and the stream registry, so it
//! cannot drift from what the tap does.

use serde_json::{json, Map, Value};

use crate::config::{Kind, SETTINGS};
use crate::streams::STREAMS;

pub const NAME: &str = "tap-gleap";
/// `Cargo.toml`'s description (the package's, which `pyproject.toml` repeats
/// for the wheel): one text, so the packages cannot list fewer streams than
/// the tap has.
pub const DESCRIPTION: &str = env!("CARGO_PKG_DESCRIPTION");

/// Capabilities the tap implements (Meltano reads these).
pub const CAPABILITIES: &[&str] = &[
    "about",
    "catalog",
    "discover",
    "state",
    "activate-version",
    "stream-maps",
    "schema-flattening",
    "batch",
];

fn setting_schema(kind: Kind) -> Value {
    match kind {
        Kind::String => json!({"type": "string"}),
        Kind::Integer { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Boolean => json!({"type": "boolean"}),
        // A plain date is accepted too (midnight UTC).
        Kind::DateTime => {
            json!({"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]})
        }
        Kind::Url => json!({"type": "string", "format": "uri"}),
        Kind::Object => json!({"type": "object"}),
        Kind::BatchConfig => crate::output::batch_config::json_schema(),
        Kind::Duration => json!({"type": "string", "pattern": "^(\\d+ ?[wdhms]|off|never)?$"}),
    }
}

fn typed_default(kind: Kind, d: &str) -> Value {
    match kind {
        Kind::Integer { .. } => d
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(d)),
        Kind::Boolean => json!(d == "true"),
        _ => json!(d),
    }
}

pub fn about_json() -> Value {
    let mut props = Map::new();
    for s in SETTINGS {
        let mut p = setting_schema(s.kind);
        p["description"] = json!(s.description);
        if let Some(d) = s.default {
            p["default"] = typed_default(s.kind, d);
        }
        if s.secret {
            p["secret"] = json!(true);
            p["writeOnly"] = json!(true);
        }
        props.insert(s.name.to_string(), p);
    }
    let required: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| s.required)
        .map(|s| s.name)
        .collect();
    let streams: Vec<Value> = STREAMS
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "endpoint": format!("GET {}", s.endpoint()),
                "key_properties": [s.key],
                "replication_method": s.default_method.as_singer(),
                "replication_key": s.replication_key,
                "selected_by_default": s.selected_by_default(),
                "optional": s.optional,
                "requests": s.cost(),
            })
        })
        .collect();
    json!({
        "name": NAME,
        "description": DESCRIPTION,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": CAPABILITIES,
        "settings": {"type": "object", "properties": props, "required": required},
        "streams": streams,
    })
}

pub fn about_markdown() -> String {
    let mut md = format!(
        "# `{NAME}`\n\n{DESCRIPTION}\n\nVersion {}\n\n## Capabilities\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for c in CAPABILITIES {
        md.push_str(&format!("* `{c}`\n"));
    }
    md.push_str("\n## Settings\n\n| Setting | Type | Required | Secret | Default | Description |\n|:--|:--|:--|:--|:--|:--|\n");
    for s in SETTINGS {
        let kind = match s.kind {
            Kind::String => "string",
            Kind::Integer { .. } => "integer",
            Kind::Boolean => "boolean",
            Kind::DateTime => "date or date-time",
            Kind::Url => "URL",
            Kind::Object | Kind::BatchConfig => "object",
            Kind::Duration => "duration",
        };
        md.push_str(&format!(
            "| {} | {kind} | {} | {} | {} | {} |\n",
            s.name,
            if s.required { "yes" } else { "no" },
            if s.secret { "yes" } else { "no" },
            s.default.unwrap_or(""),
            s.description
        ));
    }
    md.push_str("\nEvery setting can also come from the environment as `TAP_GLEAP_<SETTING>` (with `--config ENV`, or no `--config`).\n");
    md.push_str("\n## Streams\n\nStreams marked *not by default* are extracted only when a catalog or `--select` names them. A stream marked *optional* is skipped with a warning when the API answers 403 or 404 for it (a feature the project's plan lacks).\n\n| Stream | Endpoint | Key | Replication | Requests |\n|:--|:--|:--|:--|:--|\n");
    for s in STREAMS {
        let mut repl = match s.replication_key {
            Some(rk) if s.default_method == crate::streams::Method::Incremental => {
                format!("INCREMENTAL on `{rk}`")
            }
            _ => "FULL_TABLE".to_string(),
        };
        if !s.selected_by_default() {
            repl.push_str("; not by default");
        }
        if s.optional {
            repl.push_str("; optional");
        }
        md.push_str(&format!(
            "| {} | `GET {}` | `{}` | {repl} | {} |\n",
            s.name,
            s.endpoint(),
            s.key,
            s.cost()
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wheel's metadata (`pyproject.toml`) says what `--about` and the
    /// crate say.
    #[test]
    fn the_wheel_describes_the_tap_as_the_crate_does() {
        let pyproject = include_str!("../pyproject.toml");
        let line = format!("description = \"{DESCRIPTION}\"");
        assert!(
            pyproject.lines().any(|l| l == line),
            "pyproject.toml lacks {line}"
        );
    }
}
