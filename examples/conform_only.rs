//! Benchmark helper (not part of the tap): the tap's CPU work on page bodies
//! alone, without HTTP: UTF-8 check, scan, conform, RECORD lines. Pages of
//! 100 records are rendered in memory by the fake API, then conformed
//! `ROUNDS` times. Deterministic, so callgrind counts are comparable between
//! changes (the commit messages quote them for 5000 tickets, 3 rounds):
//!
//!   cargo run --release --example conform_only -- [TICKETS] [ROUNDS]
//!   valgrind --tool=callgrind --toggle-collect=conform_only::conform_all \
//!     target/release/examples/conform_only 5000 3

use std::time::Instant;

use tap_gleap::conform::{self, Conformer};
use tap_gleap::streams::StreamDef;

fn main() {
    let mut args = std::env::args().skip(1);
    let tickets: u64 = args.next().map_or(10_000, |a| a.parse().expect("TICKETS"));
    let rounds: u32 = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let config = fake_gleap::FakeConfig {
        tickets,
        sessions: tickets / 10,
        ..fake_gleap::FakeConfig::default()
    };
    let mut pages = Vec::new();
    for (stream, path, n) in [
        ("tickets", "/v3/tickets", tickets),
        ("sessions", "/v3/sessions", tickets / 10),
    ] {
        let def = tap_gleap::streams::find(stream).expect("stream");
        for skip in (0..n).step_by(100) {
            let body = fake_gleap::render_body(&config, path, &format!("limit=100&skip={skip}"))
                .expect("page");
            pages.push((def, body));
        }
    }
    let started = Instant::now();
    let (records, bytes) = conform_all(&pages, rounds);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{records} records, {:.0} MB out, {:.3} s: {:.2} us/record",
        bytes as f64 / 1e6,
        secs,
        secs * 1e6 / records as f64
    );
}

/// The measured part. (Its exact name for `--toggle-collect`: a pattern
/// like `*conform_all*` also matches the closure inside, which toggles
/// collection off again.)
#[inline(never)]
fn conform_all(pages: &[(&'static StreamDef, Vec<u8>)], rounds: u32) -> (u64, u64) {
    let mut conformers: Vec<(&str, Conformer)> = Vec::new();
    let tail = conform::record_tail("2026-01-01T00:00:00.000000Z", None);
    let mut out = Vec::new();
    let (mut records, mut bytes) = (0u64, 0u64);
    for _ in 0..rounds {
        for (def, body) in pages {
            let body = simdutf8::basic::from_utf8(body).expect("UTF-8");
            let c = match conformers.iter().position(|(n, _)| *n == def.name) {
                Some(i) => &mut conformers[i].1,
                None => {
                    let all: Vec<String> = conform_fields(def);
                    conformers.push((def.name, Conformer::new(def, &all)));
                    &mut conformers.last_mut().expect("pushed").1
                }
            };
            out.clear();
            tap_gleap::scan::each_record(body, def, |record| {
                if let Some(record) = record {
                    if c.meta(record).is_some() {
                        c.write_record(record, None, &tail, &mut out);
                        records += 1;
                    }
                }
            })
            .expect("page parses");
            bytes += out.len() as u64;
        }
    }
    (records, bytes)
}

fn conform_fields(def: &StreamDef) -> Vec<String> {
    tap_gleap::catalog::schema_of(def)["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}
