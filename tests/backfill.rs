//! A first sync, read by slices cut where the records are (`pager/scout.rs`,
//! `pager/tracker.rs`): every record once, whatever the data's spread in
//! time, and on a server that refuses to page deep. How close to the pages
//! a plain walk needs it comes depends on the round trips (how many slices
//! are cut by time): `scripts/bench.sh` measures that, as medians; these
//! tests print it.

use std::time::Duration;

use fake_gleap::{apply_modes, FakeConfig, TimeShape};
use serde_json::json;

use crate::util::*;

const SESSIONS: u64 = 20_000;
const PAGE: u64 = 200;
/// `deep-paging-capped` answers no more than 100 records deep: pages of 100.
const CAPPED_PAGE: u64 = 100;

/// What one first sync of the sessions cost.
struct Backfill {
    requests: u64,
    /// The pages one keyset walk, with no probe and no slice, needs for the
    /// same records (`plain_walk_pages`).
    plain: u64,
    cuts_by_records: usize,
}

/// The pages a plain keyset walk asks for records stamped `stamps`:
/// `limit` at a time from its cursor on, each page after the first asking
/// again for the records at the cursor (past them where they fill a
/// page), until a page comes back short.
fn plain_walk_pages(mut stamps: Vec<String>, limit: usize) -> u64 {
    stamps.sort();
    let (mut pages, mut from) = (0, 0);
    loop {
        let page = &stamps[from..(from + limit).min(stamps.len())];
        pages += 1;
        if page.len() < limit {
            return pages;
        }
        let last = &page[limit - 1];
        from = if page[0] == *last {
            stamps.partition_point(|s| s <= last)
        } else {
            stamps.partition_point(|s| s < last)
        };
    }
}

/// A first sync of `SESSIONS` sessions spread as `config` says, at 100
/// requests a second against 40 ms answers: half a dozen slices at once.
fn first_sync(config: FakeConfig, page: u64, what: &str) -> Backfill {
    first_sync_of(SESSIONS, config, page, what)
}

fn first_sync_of(sessions: u64, config: FakeConfig, page: u64, what: &str) -> Backfill {
    let server = start(FakeConfig {
        sessions,
        latency: Duration::from_millis(40),
        ..config
    });
    let s = Scratch::new();
    // Tens of thousands of records served by the fake in this process: on
    // a machine loaded enough (four copies of the suite beside other work
    // on 2 cores), a page took 5-12 s, the default 5 s timeout abandoned
    // pages the fake then served for nothing, and one request's retries
    // passed the 60 s budget. These tests are not about timeouts: a
    // timeout and a budget no scheduling reaches.
    let cfg = s.config(
        &server,
        json!({"page_size": page, "requests_per_minute": 6000, "request_timeout_seconds": 60, "retry_budget_seconds": 600}),
    );
    let run = tap_with_env(
        &["--config", path_str(&cfg), "--select", "sessions"],
        &[("RUST_LOG", "info,tap_gleap::pager::scout=debug")],
    );
    run.assert_ok();
    let (t, lost) = count_streams(&server, &[&run.messages], &["sessions"]);
    assert_eq!(t.lost, 0, "{what}: {lost:?}");
    assert_eq!(t.expected, sessions, "{what}");
    // A page that was in flight when its slice was cut may bring a few
    // records of the piece above again; never a page's worth.
    assert!(
        t.duplicates < page,
        "{what}: {} records written twice",
        t.duplicates
    );
    let stamps = fake_versions(&server, "sessions").into_values();
    Backfill {
        requests: server.stats().by_path["/v3/sessions"],
        plain: plain_walk_pages(stamps.collect(), page as usize),
        cuts_by_records: run.stderr.matches("cut by records").count(),
    }
}

/// How many requests a first sync spends beside a plain walk's pages is
/// not asked here: it depends on how many slices were cut by time, which
/// the round trips decide (beside three other copies of the suite on two
/// cores: 119-122 requests for the uniform shape's 101 pages, where a
/// quiet machine spends 103-106).
#[test]
fn a_first_sync_reads_every_record_once_on_every_shape() {
    // Bulk: twenty records a millisecond, so every page ends among ties.
    for (what, shape, step_ms, tie_group) in [
        ("uniform", TimeShape::Uniform, 60_000, 1),
        ("growth", TimeShape::Growth, 600, 1),
        ("bursts", TimeShape::Bursts, 1_000, 1),
        ("bulk", TimeShape::Uniform, 1, 20),
    ] {
        let b = first_sync(
            FakeConfig {
                time_shape: shape,
                step_ms,
                tie_group,
                ..small_config()
            },
            PAGE,
            what,
        );
        println!(
            "{what}: {} requests for a plain walk's {} pages, {} cuts by records",
            b.requests, b.plain, b.cuts_by_records
        );
        assert!(b.cuts_by_records > 0, "{what}: slices were cut by records");
    }
}

#[test]
fn a_server_that_refuses_to_page_deep_gets_slices_cut_by_time_and_loses_nothing() {
    let mut config = small_config();
    apply_modes(&mut config, "deep-paging-capped").unwrap();
    let b = first_sync(config, CAPPED_PAGE, "deep-paging-capped");
    let minimum = SESSIONS / CAPPED_PAGE + 1;
    println!(
        "deep-paging-capped: {} requests for {minimum} pages, {} cuts by records",
        b.requests, b.cuts_by_records
    );
    assert_eq!(b.cuts_by_records, 0, "no scout pages that deep");
}

#[test]
fn pages_of_three_among_ties_of_two_are_cut_by_time_and_lose_nothing() {
    // Ties fill a third of a page: cut by time (`scout::depths`).
    let b = first_sync_of(
        600,
        FakeConfig {
            step_ms: 1,
            tie_group: 2,
            ..small_config()
        },
        3,
        "ties of two, pages of three",
    );
    println!(
        "ties of two, pages of three: {} requests for a plain walk's {} pages, {} cuts by records",
        b.requests, b.plain, b.cuts_by_records
    );
    assert_eq!(b.cuts_by_records, 0, "ties of two in pages of three");
}
