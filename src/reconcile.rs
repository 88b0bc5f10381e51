//! Deletions: Gleap deletes records for good (`DELETE /sessions/{id}` for an
//! erasure request, tickets, templates...) and no list tells what was
//! deleted, so an incremental sync never sees them. A stream given a period
//! (`reconcile_every`, `reconcile_streams`) is read whole in the first run
//! after that period: its records go out under a new table version, and
//! once the pass has completed without an error, ACTIVATE_VERSION tells
//! the target that rows of older versions are gone from Gleap (deleted, or
//! marked `_sdc_deleted_at`, as the target does it).
//!
//! - The pass moves the incremental bookmarks as an incremental run from
//!   the beginning would (`pager::partitions`), so the next runs go on from
//!   there; it reads to the end of the list, past the sync's start, so that
//!   a record updated while it runs (moved to the end of `updatedAt` order)
//!   is in the version; tickets read every partition (plain, archived,
//!   spam) into the one version and read again what moved between them.
//! - ACTIVATE_VERSION is sent only after the whole pass, and only when no
//!   request of it failed (any error ends the stream before): a list cut
//!   short by the API is never taken for deletions. A killed, failed or
//!   partial pass sends none and leaves `reconciled_at` as it was, so the
//!   next run is still due and reads the stream whole again, under a new
//!   version.
//! - It assumes a whole listing shows every record that exists
//!   (`Assumption::ListsShowEveryRecord`): one it leaves out was deleted.
//! - The state keeps, per stream, when the last complete pass began
//!   (`bookmarks.<stream>.reconciled_at`); with none, the stream is due.
//! - Full-table streams are read whole every run anyway: with a period
//!   they send ACTIVATE_VERSION every run (as `emit_activate_version_messages`
//!   makes them do).
//! - Streams listed per changed parent (ticket activity logs, contacts'
//!   activities and events) are not reconciled: a whole pass costs a
//!   request per ticket or contact. Survey responses and help center
//!   articles are (one request per survey or collection).

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::state::State;
use crate::streams::{Method, StreamDef};
use crate::timefmt;

/// The table version a stream's records carry this run, if any: set for a
/// full-table stream with ACTIVATE_VERSION on, and for an incremental one
/// that is due for reconciliation. `now` is the sync's start, which is the
/// version (increasing from run to run, as targets expect).
pub fn version(
    config: &Config,
    def: &StreamDef,
    method: Method,
    state: &State,
    now: DateTime<Utc>,
) -> Option<i64> {
    let version = now.timestamp_millis();
    let period = config.reconcile_period(def);
    match method {
        Method::FullTable => {
            (config.emit_activate_version_messages || period.is_some()).then_some(version)
        }
        Method::Incremental => {
            let period = period?;
            let last = state.reconciled_at(def);
            if last.is_some_and(|t| t + period > now) {
                return None;
            }
            tracing::info!(
                stream = def.name,
                "{}: reconciling: reading it whole to find deleted records (last complete reconciliation: {}); ACTIVATE_VERSION {version} follows a complete pass",
                def.name,
                last.map_or("none".into(), timefmt::format_ms),
            );
            Some(version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> Config {
        let mut c = json!({"api_key": "k", "project_id": "p"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        crate::config::from_value(&c).unwrap()
    }

    fn state_reconciled(stream: &str, at: &str) -> State {
        State::from_value(
            json!({"bookmarks": {stream: {"reconciled_at": at}}}),
            Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn due_when_never_reconciled_or_the_period_has_passed() {
        let tickets = streams::find("tickets").unwrap();
        let now = timefmt::parse_instant("2026-12-04T12:00:00Z").unwrap();
        let c = config(json!({"reconcile_every": "7d"}));
        let empty = State::empty();
        assert_eq!(
            version(&c, tickets, Method::Incremental, &empty, now),
            Some(now.timestamp_millis())
        );
        let recent = state_reconciled("tickets", "2026-11-30T12:00:00.000Z");
        assert_eq!(
            version(&c, tickets, Method::Incremental, &recent, now),
            None
        );
        let old = state_reconciled("tickets", "2026-11-27T12:00:00.000Z");
        assert!(version(&c, tickets, Method::Incremental, &old, now).is_some());
        // Off by default.
        let off = config(json!({}));
        assert_eq!(
            version(&off, tickets, Method::Incremental, &empty, now),
            None
        );
    }

    #[test]
    fn per_stream_periods_override_and_per_changed_parent_streams_are_left_out() {
        let now = Utc::now();
        let c = config(
            json!({"reconcile_every": "1d", "reconcile_streams": {"messages": "off", "sessions": "2w"}}),
        );
        let empty = State::empty();
        let due = |name: &str| {
            version(
                &c,
                streams::find(name).unwrap(),
                Method::Incremental,
                &empty,
                now,
            )
            .is_some()
        };
        assert!(due("tickets") && due("sessions") && due("survey_responses"));
        assert!(!due("messages"), "turned off for messages");
        assert!(!due("ticket_activity_logs"), "a request per ticket: never");
        assert_eq!(
            c.reconcile_period(streams::find("sessions").unwrap()),
            Some(chrono::Duration::weeks(2))
        );
        // Full-table streams send ACTIVATE_VERSION every run with a period.
        let teams = streams::find("teams").unwrap();
        assert!(version(&c, teams, Method::FullTable, &empty, now).is_some());
        assert!(version(&config(json!({})), teams, Method::FullTable, &empty, now).is_none());
    }

    #[test]
    fn bad_periods_and_streams_are_refused_with_what_to_do() {
        let bad = |v: serde_json::Value| {
            let mut c = json!({"api_key": "k", "project_id": "p"});
            for (k, x) in v.as_object().unwrap() {
                c[k] = x.clone();
            }
            crate::config::from_value(&c).unwrap_err().to_string()
        };
        let e = bad(json!({"reconcile_every": "weekly"}));
        assert!(e.contains("reconcile_every") && e.contains("\"7d\""), "{e}");
        let e = bad(json!({"reconcile_streams": {"tikets": "7d"}}));
        assert!(e.contains("tikets") && e.contains("not a stream"), "{e}");
        let e = bad(json!({"reconcile_streams": {"tickets": 7}}));
        assert!(
            e.contains("reconcile_streams") && e.contains("tickets"),
            "{e}"
        );
        let e = bad(json!({"reconcile_streams": {"session_events": "7d"}}));
        assert!(
            e.contains("one request per contact") && e.contains("\"off\""),
            "{e}"
        );
        assert!(
            config(json!({"reconcile_streams": {"session_events": "off"}}))
                .reconcile_streams
                .len()
                == 1
        );
    }
}
