//! Timestamps: one parser for every date the tap reads (config, state, API
//! records) and one canonical output format, the API's own
//! `2024-01-15T10:30:00.000Z`, so bookmarks and records compare as text too.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Formats an instant the way the Gleap API does: UTC, milliseconds, `Z`.
pub fn format_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn format_epoch_ms(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms).single().map(format_ms)
}

/// What a period setting must be, for errors.
pub const PERIOD_EXPECTED: &str =
    "a duration such as \"7d\", \"24h\", \"90m\" or \"30s\" (w, d, h, m, s), or \"off\"";

/// A period such as `7d`, `24h`, `90m`, `30s` or `2w`; `off`, `never` or
/// empty: `None`. The error is what was expected.
pub fn parse_period(s: &str) -> Result<Option<chrono::Duration>, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() || t == "off" || t == "never" {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = match n.parse() {
        Ok(n) if n > 0 && n <= 100_000 => n,
        _ => return Err(PERIOD_EXPECTED.into()),
    };
    let d = match unit.trim() {
        "w" => chrono::Duration::weeks(n),
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        "s" => chrono::Duration::seconds(n),
        _ => return Err(PERIOD_EXPECTED.into()),
    };
    Ok(Some(d))
}

/// True when `s` is already in the canonical form (`YYYY-MM-DDTHH:MM:SS.mmmZ`),
/// which is what the API sends nearly always: the record writer then copies
/// the bytes instead of parsing and re-formatting them.
pub fn is_canonical(s: &[u8]) -> bool {
    const SHAPE: &[u8; 24] = b"0000-00-00T00:00:00.000Z";
    let Ok(s) = <&[u8; 24]>::try_from(s) else {
        return false;
    };
    // Every byte, without a branch per byte: the loop is unrolled.
    let mut shape = true;
    for (&c, &want) in s.iter().zip(SHAPE) {
        shape &= if want == b'0' {
            c.is_ascii_digit()
        } else {
            c == want
        };
    }
    // Digits in the right places are not enough: 2024-02-30 must go
    // through the real parser (and be rejected there).
    shape && calendar_ok(s)
}

/// A real day of a real month, and a time of day without a leap second.
fn calendar_ok(s: &[u8; 24]) -> bool {
    let n = |at: usize, len: usize| {
        s[at..at + len]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (n(0, 4), n(5, 2), n(8, 2));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 => 28 + u32::from(leap),
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    (1..=days).contains(&day) && n(11, 2) < 24 && n(14, 2) < 60 && n(17, 2) < 60
}

/// Parses the date forms users and APIs write: RFC 3339 with any offset, a
/// date-time with no zone (taken as UTC, which is what the API means), a bare
/// date (midnight UTC), and a space instead of `T`.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Epoch numbers in records: milliseconds as the API's JavaScript would
/// write them, or seconds when the value is too small to be milliseconds
/// of any date after 1973.
pub fn from_epoch_number(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() {
        return None;
    }
    let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
    // Years 1970 to 9999: beyond, the date has no RFC 3339 form.
    if !(0.0..=253_402_300_799_999.0).contains(&ms) {
        return None;
    }
    Utc.timestamp_millis_opt(ms as i64).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_fast_path_matches_only_valid_canonical_dates() {
        for (s, canonical) in [
            ("2024-01-15T10:30:00.000Z", true),
            ("2024-01-31T23:59:59.999Z", true),
            ("2024-02-29T00:00:00.000Z", true),
            ("2000-02-29T00:00:00.000Z", true),
            ("2023-02-29T00:00:00.000Z", false),
            ("1900-02-29T00:00:00.000Z", false),
            ("2024-04-31T00:00:00.000Z", false),
            ("2024-13-15T10:30:00.000Z", false),
            ("2024-00-15T10:30:00.000Z", false),
            ("2024-01-00T10:30:00.000Z", false),
            ("2024-01-15T24:00:00.000Z", false),
            ("2024-01-15T10:60:00.000Z", false),
            ("2024-01-15T10:30:60.000Z", false),
            ("2024-01-15T10:30:00Z", false),
            ("2024-01-15 10:30:00.000Z", false),
            ("2024-01-15T10:30:00.000+", false),
            ("2024-0a-15T10:30:00.000Z", false),
        ] {
            assert_eq!(is_canonical(s.as_bytes()), canonical, "{s}");
            // What the fast path takes, the real parser reads back unchanged.
            if canonical {
                assert_eq!(parse_instant(s).map(format_ms).as_deref(), Some(s));
            }
        }
    }

    #[test]
    fn parses_every_plausible_form_to_the_same_instant() {
        let want = "2024-01-15T10:30:00.000Z";
        for s in [
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:30:00Z",
            "2024-01-15T11:30:00+01:00",
            "2024-01-15T10:30:00",
            "2024-01-15 10:30:00",
            "2024-01-15T10:30:00.000+00:00",
        ] {
            assert_eq!(
                parse_instant(s).map(format_ms).as_deref(),
                Some(want),
                "{s}"
            );
        }
        assert_eq!(
            parse_instant("2024-01-15").map(format_ms).as_deref(),
            Some("2024-01-15T00:00:00.000Z")
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant("2024-02-30"), None);
    }

    #[test]
    fn epoch_numbers_in_seconds_or_milliseconds() {
        assert_eq!(
            from_epoch_number(1_705_314_600_000.0)
                .map(format_ms)
                .as_deref(),
            Some("2024-01-15T10:30:00.000Z")
        );
        assert_eq!(
            from_epoch_number(1_705_314_600.0).map(format_ms).as_deref(),
            Some("2024-01-15T10:30:00.000Z")
        );
        assert_eq!(from_epoch_number(f64::NAN), None);
        assert_eq!(from_epoch_number(1e300), None);
        assert_eq!(from_epoch_number(8.0e15), None, "a five-digit year");
        assert_eq!(
            from_epoch_number(253_402_300_799_999.0)
                .map(format_ms)
                .as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
    }
}
