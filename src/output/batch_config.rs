//! `batch_config`: the Meltano SDK's setting for BATCH messages, read as the
//! SDK defines it (`singer_sdk/helpers/_batch.py`, `BatchConfig`):
//!
//! ```json
//! {"encoding": {"format": "jsonl", "compression": "gzip"},
//!  "storage": {"root": "file:///var/lib/gleap/batches", "prefix": "gleap-"},
//!  "batch_size": 10000}
//! ```
//!
//! `encoding` and `storage` are required, as the SDK's dataclass requires
//! them; `batch_size` defaults to the SDK's 10000. A key the SDK does not
//! know is refused (the SDK's `from_dict` fails on one too), so that a typo
//! cannot silently mean a default. Only what tap-gleap writes is accepted:
//! JSON lines, gzip or none, on a local folder (`docs/batch.md` says why no
//! object store).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// The SDK's `DEFAULT_BATCH_SIZE`.
pub const DEFAULT_BATCH_SIZE: u64 = 10_000;
/// Records per file at most. A file is written as it fills (nothing of it
/// is held in memory), so the bound only keeps a typo of a few zeros from
/// holding every STATE back for a whole run.
pub const MAX_BATCH_SIZE: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    None,
}

impl Compression {
    /// As the BATCH message's `encoding.compression` says it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    pub compression: Compression,
    /// The folder, as given (`file://` taken off); made absolute when the
    /// sync starts (`batch_files::BatchFiles::start`).
    pub root: PathBuf,
    /// Put before every file name.
    pub prefix: String,
    /// Records per file at most.
    pub batch_size: u64,
}

/// The setting's name, as errors say it.
const NAME: &str = "batch_config";

/// Reads the setting. The error is one line naming the key at fault and
/// what to write instead (the caller puts the file or variable before it).
pub fn parse(v: &Map<String, Value>) -> Result<BatchConfig, String> {
    only_keys(v, NAME, &["encoding", "storage", "batch_size"])?;
    let encoding = object(
        v,
        "encoding",
        r#"{"format": "jsonl", "compression": "gzip"}"#,
    )?;
    only_keys(
        encoding,
        "batch_config.encoding",
        &["format", "compression"],
    )?;
    match encoding.get("format") {
        Some(Value::String(f)) if f == "jsonl" => {}
        None => return Err(format!("\"{NAME}.encoding.format\" is missing: set it to \"jsonl\"")),
        Some(other) => {
            return Err(format!(
                "\"{NAME}.encoding.format\" must be \"jsonl\" (the only format tap-gleap writes), got {other}"
            ))
        }
    }
    // The SDK's default is no compression (`None`).
    let compression = match encoding.get("compression") {
        None | Some(Value::Null) => Compression::None,
        Some(Value::String(c)) if c == "gzip" => Compression::Gzip,
        Some(Value::String(c)) if c == "none" => Compression::None,
        Some(other) => {
            return Err(format!(
                "\"{NAME}.encoding.compression\" must be \"gzip\" or \"none\", got {other}"
            ))
        }
    };
    let storage = object(
        v,
        "storage",
        r#"{"root": "file:///path/to/folder", "prefix": "gleap-"}"#,
    )?;
    only_keys(
        storage,
        "batch_config.storage",
        &["root", "prefix", "params"],
    )?;
    let root = match storage.get("root") {
        Some(Value::String(r)) => root_path(r)?,
        None => {
            return Err(format!(
                "\"{NAME}.storage.root\" is missing: set it to a file:// URL of the folder for batch files, e.g. \"file:///var/lib/gleap/batches\""
            ))
        }
        Some(other) => {
            return Err(format!(
                "\"{NAME}.storage.root\" must be a file:// URL string, got {other}"
            ))
        }
    };
    let prefix = match storage.get("prefix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(p)) if p.contains(['/', '\\']) || p == "." || p == ".." => {
            return Err(format!(
                "\"{NAME}.storage.prefix\" must be the start of a file name, without \"/\" (put folders in \"root\"), got {}",
                json!(p)
            ))
        }
        Some(Value::String(p)) => p.clone(),
        Some(other) => {
            return Err(format!(
                "\"{NAME}.storage.prefix\" must be a string, got {other}"
            ))
        }
    };
    // The SDK passes `params` to fsspec (an object store's options): a
    // local folder takes none.
    match storage.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) if p.is_empty() => {}
        Some(other) => {
            return Err(format!(
                "\"{NAME}.storage.params\" is for object stores, which tap-gleap does not write to; remove it (got {other})"
            ))
        }
    }
    let batch_size = match v.get("batch_size") {
        None | Some(Value::Null) => DEFAULT_BATCH_SIZE,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=MAX_BATCH_SIZE).contains(&n) => n,
            _ => return Err(batch_size_expected(&Value::Number(n.clone()))),
        },
        Some(other) => return Err(batch_size_expected(other)),
    };
    Ok(BatchConfig {
        compression,
        root,
        prefix,
        batch_size,
    })
}

fn batch_size_expected(got: &Value) -> String {
    format!(
        "\"{NAME}.batch_size\" must be a whole number of records per file from 1 to {MAX_BATCH_SIZE}, written as a JSON number, got {got}"
    )
}

/// `root` as a path: `file:///abs/path`, or `file://rel/path` (relative to
/// the working directory, as the SDK's `UPath` reads it), or a plain path.
fn root_path(root: &str) -> Result<PathBuf, String> {
    let root = root.trim();
    let path = match root.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "\"{NAME}.storage.root\" must be a file:// URL; {scheme}:// is not written by tap-gleap: write to a local folder and have it synced (see docs/batch.md)"
            ))
        }
        None => root,
    };
    if path.is_empty() {
        return Err(format!(
            "\"{NAME}.storage.root\" names no folder: write a file:// URL such as \"file:///var/lib/gleap/batches\""
        ));
    }
    Ok(PathBuf::from(path))
}

fn object<'a>(
    v: &'a Map<String, Value>,
    key: &str,
    example: &str,
) -> Result<&'a Map<String, Value>, String> {
    match v.get(key) {
        Some(Value::Object(o)) => Ok(o),
        None | Some(Value::Null) => Err(format!(
            "\"{NAME}.{key}\" is missing: add it, e.g. \"{key}\": {example}"
        )),
        Some(other) => Err(format!(
            "\"{NAME}.{key}\" must be an object such as {example}, got {other}"
        )),
    }
}

fn only_keys(v: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), String> {
    match v.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "\"{at}\" has no key \"{k}\" (its keys: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// The setting's JSON schema for `--about`, the SDK's `BATCH_CONFIG`
/// (`singer_sdk/helpers/capabilities.py`) with `batch_size` and the
/// values tap-gleap accepts.
pub fn json_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "encoding": {
                "type": "object",
                "description": "Specifies the format and compression of the batch files.",
                "properties": {
                    "format": {"type": "string", "enum": ["jsonl"], "description": "Format to use for batch files."},
                    "compression": {"type": "string", "enum": ["gzip", "none"], "description": "Compression format to use for batch files."}
                },
                "required": ["format"]
            },
            "storage": {
                "type": "object",
                "description": "Defines the storage layer to use when writing batch files",
                "properties": {
                    "root": {"type": "string", "description": "Root path to use when writing batch files: a file:// URL."},
                    "prefix": {"type": "string", "description": "Prefix to use when writing batch files."}
                },
                "required": ["root"]
            },
            "batch_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BATCH_SIZE,
                "default": DEFAULT_BATCH_SIZE,
                "description": "Records per batch file at most."
            }
        },
        "required": ["encoding", "storage"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: Value) -> Result<BatchConfig, String> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn the_sdks_shape_is_read_with_its_defaults() {
        let c = parsed(json!({
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": "file:///tmp/b", "prefix": "g-"},
        }))
        .unwrap();
        assert_eq!(
            c,
            BatchConfig {
                compression: Compression::Gzip,
                root: PathBuf::from("/tmp/b"),
                prefix: "g-".into(),
                batch_size: DEFAULT_BATCH_SIZE,
            }
        );
        // The SDK's documented example: a relative root.
        let c = parsed(json!({
            "encoding": {"format": "jsonl"},
            "storage": {"root": "file://tests/core/resources"},
            "batch_size": 5,
        }))
        .unwrap();
        assert_eq!(c.root, PathBuf::from("tests/core/resources"));
        assert_eq!(
            (c.compression, c.prefix.as_str(), c.batch_size),
            (Compression::None, "", 5)
        );
    }

    #[test]
    fn every_mistake_names_its_key_and_what_to_write() {
        let ok_storage = json!({"root": "file:///tmp/b"});
        let ok_encoding = json!({"format": "jsonl"});
        for (bad, says) in [
            (
                json!({"storage": ok_storage}),
                "\"batch_config.encoding\" is missing",
            ),
            (
                json!({"encoding": ok_encoding}),
                "\"batch_config.storage\" is missing",
            ),
            (
                json!({"encoding": {"format": "parquet"}, "storage": ok_storage}),
                "\"batch_config.encoding.format\" must be \"jsonl\"",
            ),
            (
                json!({"encoding": {"format": "jsonl", "compression": "zstd"}, "storage": ok_storage}),
                "must be \"gzip\" or \"none\"",
            ),
            (
                json!({"encoding": ok_encoding, "storage": {"root": "s3://bucket/x"}}),
                "s3:// is not written by tap-gleap",
            ),
            (
                json!({"encoding": ok_encoding, "storage": {"prefix": "p"}}),
                "\"batch_config.storage.root\" is missing",
            ),
            (
                json!({"encoding": ok_encoding, "storage": {"root": "file:///t", "prefix": "a/b"}}),
                "without \"/\"",
            ),
            (
                json!({"encoding": ok_encoding, "storage": ok_storage, "batch_size": 0}),
                "\"batch_config.batch_size\" must be a whole number",
            ),
            (
                json!({"encoding": ok_encoding, "storage": ok_storage, "batch_size": "100"}),
                "written as a JSON number",
            ),
            (
                json!({"encoding": ok_encoding, "storage": ok_storage, "batchsize": 100}),
                "has no key \"batchsize\"",
            ),
            (
                json!({"encoding": ok_encoding, "storage": {"root": "file:///t", "params": {"key": "x"}}}),
                "\"batch_config.storage.params\" is for object stores",
            ),
        ] {
            let e = parsed(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad} said: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
