//! Batch files: the records of RECORD lines written to files, each named in
//! a BATCH message once it is complete (the Meltano SDK's BATCH messages,
//! `docs/batch.md`).
//!
//! A file holds one output stream's raw records (after stream maps and
//! flattening), one JSON object a line, gzipped or not. It is written
//! aside under a `.tmp` name and renamed when complete; only then is its
//! BATCH line made. So a file a BATCH names is whole, and a run killed
//! while writing leaves at most a `.tmp` file that nothing names (the next
//! run, resuming from the last STATE, reads its records again).
//!
//! Files are named as the SDK's JSONL batcher names them,
//! `{prefix}tap-gleap--{stream}-{run id}-{n}.json.gz` (`.json` without
//! compression), `n` counting the stream's files from 1. The run id is
//! random, as the SDK's uuid4 is: runs that share a folder never write the
//! same name.
//!
//! Each file has a serial; the writer holds the bookmarks covering records
//! of an open file until that serial is announced (`held.rs`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use serde_json::json;

use super::batch_config::{BatchConfig, Compression};
use crate::error::Error;

pub struct BatchFiles {
    /// Absolute: the manifest's URLs must not depend on the target's
    /// working directory.
    root: PathBuf,
    prefix: String,
    compression: Compression,
    batch_size: u64,
    run_id: String,
    open: Vec<OpenFile>,
    /// Per output stream, the files begun so far.
    begun: Vec<(String, u64)>,
    next_serial: u64,
}

/// A complete file: its serial, and the BATCH line that names it.
pub struct Announced {
    pub serial: u64,
    pub line: Vec<u8>,
}

struct OpenFile {
    stream: String,
    serial: u64,
    /// The tap's streams whose records are in it (more than one when a
    /// stream map's `__source__` pattern matches several).
    sources: Vec<&'static str>,
    records: u64,
    opened: Instant,
    tmp: PathBuf,
    path: PathBuf,
    /// Records not yet handed to the encoder (see `STAGED`).
    staged: Vec<u8>,
    out: Encoder,
}

enum Encoder {
    // Boxed: the encoder's state is large beside a plain buffer's handle.
    Gzip(Box<GzEncoder<BufWriter<File>>>),
    Plain(BufWriter<File>),
}

/// Gzip level 1. JSON compresses well at any level; what grows with the
/// level is CPU. Measured on the fake's tickets (1.75 KB of JSON each) with
/// this backend (zlib-rs): level 1 takes 4.2 us a record and writes 16% of
/// the JSON's bytes; level 3, 9.2 us and 11%; level 6 (gzip's default), 15.9
/// us and 9%. The tap's whole work is a few microseconds a record, which
/// level 6 would several times over; a file is read once, by a target on
/// the same machine or a shared folder, where 1.8 times the bytes is cheap.
const GZIP_LEVEL: u32 = 1;

/// Records are handed to the encoder this many bytes at a time. Each write
/// to flate2's encoder zeroes the rest of its 32 KB output buffer: a
/// write a record measured a tenth of the tap's CPU in memset alone.
const STAGED: usize = 128 << 10;

/// Buffer between the encoder and the file (the encoder writes out 32 KB
/// at a time): fewer syscalls, and small beside the encoder's own state,
/// as every stream with records has a file open.
const FILE_BUFFER: usize = 64 << 10;

impl BatchFiles {
    /// Makes the folder if need be and proves it writable, so that a wrong
    /// `root` is one config error at the start, before any request, and not
    /// a failure after minutes of reading.
    pub fn start(config: &BatchConfig) -> Result<BatchFiles, Error> {
        let root = if config.root.is_absolute() {
            config.root.clone()
        } else {
            std::env::current_dir()
                .map_err(|e| {
                    Error::Config(format!(
                        "\"batch_config\": cannot resolve the relative root {}: {e}: use an absolute file:// URL",
                        config.root.display()
                    ))
                })?
                .join(&config.root)
        };
        let fix = "set batch_config.storage.root to a folder this user can write";
        std::fs::create_dir_all(&root).map_err(|e| {
            Error::Config(format!(
                "\"batch_config\": cannot create the folder {} for batch files: {e}: {fix}",
                root.display()
            ))
        })?;
        let probe = root.join(format!(
            ".{}tap-gleap-probe-{}.tmp",
            config.prefix,
            std::process::id()
        ));
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"{}\n"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                let _ = std::fs::remove_file(&probe);
                Error::Config(format!(
                    "\"batch_config\": cannot write batch files in {}: {e}: make it writable or {fix}",
                    root.display()
                ))
            })?;
        Ok(BatchFiles {
            root,
            prefix: config.prefix.clone(),
            compression: config.compression,
            batch_size: config.batch_size,
            run_id: run_id(),
            open: Vec::new(),
            begun: Vec::new(),
            next_serial: 0,
        })
    }

    /// Appends a record (a JSON object, without a line break) to the open
    /// file of `stream`, begun if need be. A file that reaches `batch_size`
    /// is completed, and returned.
    pub fn append(
        &mut self,
        stream: &str,
        source: &'static str,
        record: &[u8],
    ) -> io::Result<Option<Announced>> {
        let at = match self.open.iter().position(|f| f.stream == stream) {
            Some(at) => at,
            None => {
                let file = self.begin(stream)?;
                self.open.push(file);
                self.open.len() - 1
            }
        };
        let file = &mut self.open[at];
        if !file.sources.contains(&source) {
            file.sources.push(source);
        }
        file.staged.extend_from_slice(record);
        file.staged.push(b'\n');
        file.records += 1;
        if file.staged.len() >= STAGED {
            if let Err(e) = file.out.write_all(&file.staged) {
                self.abandon(at);
                return Err(e);
            }
            file.staged.clear();
        }
        if file.records >= self.batch_size {
            return self.complete(at).map(Some);
        }
        Ok(None)
    }

    /// Completes the open file of `stream`, if any.
    pub fn close(&mut self, stream: &str) -> io::Result<Option<Announced>> {
        match self.open.iter().position(|f| f.stream == stream) {
            Some(at) => self.complete(at).map(Some),
            None => Ok(None),
        }
    }

    /// Completes every file open for `age` or longer (`None`: every file).
    /// On an error, the files completed before it are returned with it.
    pub fn close_older(&mut self, age: Option<Duration>) -> (Vec<Announced>, Option<io::Error>) {
        let mut done = Vec::new();
        let mut at = 0;
        while at < self.open.len() {
            if age.is_some_and(|age| self.open[at].opened.elapsed() < age) {
                at += 1;
                continue;
            }
            match self.complete(at) {
                Ok(a) => done.push(a),
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    /// The serials of the open files holding records of `source`.
    pub fn holding(&self, source: &str) -> Vec<u64> {
        self.open
            .iter()
            .filter(|f| f.sources.contains(&source))
            .map(|f| f.serial)
            .collect()
    }

    fn begin(&mut self, stream: &str) -> io::Result<OpenFile> {
        let n = match self.begun.iter_mut().find(|(s, _)| s == stream) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.begun.push((stream.to_string(), 1));
                1
            }
        };
        let ext = match self.compression {
            Compression::Gzip => "json.gz",
            Compression::None => "json",
        };
        let name = format!(
            "{}tap-gleap--{}-{}-{n}.{ext}",
            self.prefix,
            file_safe(stream),
            self.run_id
        );
        let path = self.root.join(&name);
        let tmp = self.root.join(format!("{name}.tmp"));
        let file = BufWriter::with_capacity(FILE_BUFFER, File::create(&tmp)?);
        let out = match self.compression {
            Compression::Gzip => Encoder::Gzip(Box::new(GzEncoder::new(
                file,
                flate2::Compression::new(GZIP_LEVEL),
            ))),
            Compression::None => Encoder::Plain(file),
        };
        self.next_serial += 1;
        Ok(OpenFile {
            stream: stream.to_string(),
            serial: self.next_serial,
            sources: Vec::new(),
            records: 0,
            opened: Instant::now(),
            tmp,
            path,
            // Grown as needed: most streams' files hold a few records.
            staged: Vec::new(),
            out,
        })
    }

    /// Finishes the file at `at`, puts it in place, and makes its BATCH
    /// line. No fsync: a file a BATCH names is read by a target that is
    /// running now, from the page cache if need be; after a crash of the
    /// machine, the next run starts from the last STATE a target kept and
    /// writes new files, never reading these again.
    fn complete(&mut self, at: usize) -> io::Result<Announced> {
        let file = self.open.remove(at);
        let OpenFile {
            stream,
            serial,
            tmp,
            path,
            staged,
            mut out,
            ..
        } = file;
        let finished = out
            .write_all(&staged)
            .and_then(|()| out.finish())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = finished {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
        }
        let msg = json!({
            "type": "BATCH",
            "stream": stream,
            "encoding": {"format": "jsonl", "compression": self.compression.name()},
            "manifest": [file_url(&path)],
        });
        let mut line = serde_json::to_vec(&msg).expect("a JSON value serialises");
        line.push(b'\n');
        Ok(Announced { serial, line })
    }

    /// Drops a file that could not be written: never announced, so the
    /// bookmarks waiting on it stay held and the next run reads its
    /// records again.
    fn abandon(&mut self, at: usize) {
        let file = self.open.remove(at);
        drop(file.out);
        let _ = std::fs::remove_file(&file.tmp);
    }
}

impl Encoder {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(g) => g.write_all(bytes),
            Encoder::Plain(p) => p.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<()> {
        let mut file = match self {
            Encoder::Gzip(g) => g.finish()?,
            Encoder::Plain(p) => p,
        };
        file.flush()
    }
}

/// A stream name as a part of a file name: an alias may hold any
/// character, a path separator included.
fn file_safe(stream: &str) -> String {
    stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A random id in the layout of a version 4 UUID (the SDK names files
/// with one).
fn run_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `file://` and the absolute path, percent-encoded as Python's
/// `Path.as_uri()` encodes it (the SDK's taps name files so, and its
/// targets read such URLs back).
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn config(dir: &Path, compression: Compression, batch_size: u64) -> BatchConfig {
        BatchConfig {
            compression,
            root: dir.to_path_buf(),
            prefix: "p-".into(),
            batch_size,
        }
    }

    fn path_of(a: &Announced) -> PathBuf {
        let msg: serde_json::Value = serde_json::from_slice(&a.line).unwrap();
        let url = msg["manifest"][0].as_str().unwrap();
        PathBuf::from(url.strip_prefix("file://").unwrap())
    }

    fn read(path: &Path, compression: Compression) -> String {
        let mut text = String::new();
        let f = File::open(path).unwrap();
        match compression {
            Compression::Gzip => flate2::read::GzDecoder::new(f)
                .read_to_string(&mut text)
                .unwrap(),
            Compression::None => io::BufReader::new(f).read_to_string(&mut text).unwrap(),
        };
        text
    }

    #[test]
    fn a_file_is_named_only_when_complete_and_in_place() {
        for compression in [Compression::Gzip, Compression::None] {
            let dir = tempfile::tempdir().unwrap();
            let mut files = BatchFiles::start(&config(dir.path(), compression, 2)).unwrap();
            assert!(files
                .append("teams", "teams", br#"{"id":"1"}"#)
                .unwrap()
                .is_none());
            // While open: a .tmp file only, and the bookmarks of teams wait on it.
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(names.len() == 1 && names[0].ends_with(".tmp"), "{names:?}");
            assert_eq!(files.holding("teams"), vec![1]);
            assert!(files.holding("tickets").is_empty());
            let done = files
                .append("teams", "teams", br#"{"id":"2"}"#)
                .unwrap()
                .expect("batch_size reached");
            assert_eq!(done.serial, 1);
            assert!(files.holding("teams").is_empty());
            let path = path_of(&done);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("p-tap-gleap--teams-")
                    && name.ends_with("-1.json.gz") == (compression == Compression::Gzip),
                "{name}"
            );
            assert_eq!(read(&path, compression), "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
            assert!(!path.with_extension("gz.tmp").exists());
            let msg: serde_json::Value = serde_json::from_slice(&done.line).unwrap();
            assert_eq!(
                msg,
                json!({"type": "BATCH", "stream": "teams",
                       "encoding": {"format": "jsonl", "compression": compression.name()},
                       "manifest": [format!("file://{}", path.display())]})
            );
        }
    }

    #[test]
    fn old_files_close_and_new_ones_count_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = BatchFiles::start(&config(dir.path(), Compression::Gzip, 100)).unwrap();
        files.append("a b/c", "tickets", b"{}").unwrap();
        files.append("x", "teams", b"{}").unwrap();
        let (none, e) = files.close_older(Some(Duration::from_secs(3600)));
        assert!(none.is_empty() && e.is_none());
        let (all, e) = files.close_older(None);
        assert!(e.is_none());
        assert_eq!(all.len(), 2);
        let name = path_of(&all[0]);
        assert!(
            name.to_str().unwrap().contains("tap-gleap--a_b_c-"),
            "{name:?}"
        );
        files.append("x", "teams", b"{}").unwrap();
        let again = files.close("x").unwrap().unwrap();
        assert!(path_of(&again).to_str().unwrap().ends_with("-2.json.gz"));
        assert_eq!(again.serial, 3);
    }

    #[test]
    fn a_root_that_cannot_be_made_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = BatchFiles::start(&config(&file.join("sub"), Compression::Gzip, 1))
            .err()
            .unwrap();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(e.to_string().contains("batch_config"), "{e}");
    }

    #[test]
    fn urls_are_percent_encoded_as_python_does() {
        assert_eq!(
            file_url(Path::new("/tmp/my dir/a%b-1.json.gz")),
            "file:///tmp/my%20dir/a%25b-1.json.gz"
        );
    }
}
