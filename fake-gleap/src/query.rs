//! Parsing of the raw query string of list endpoints.
//!
//! Gleap puts the comparison operator into the key (`updatedAt>=X`), which a
//! generic form decoder mangles, so the raw query string is parsed here:
//! split on `&`, split each pair on its first raw `=`, percent-decode both
//! halves (`+` is a space, as in `qs`/form decoding).
//!
//! Operators, as a server splitting on the first `=` sees them:
//! - `updatedAt>=X` and `updatedAt%3E=X`: key `updatedAt>`, and the `=`
//!   that separates key from value completes the operator: `>=`.
//! - `updatedAt%3E%3D=X`: key `updatedAt>=`: `>=`.
//! - `updatedAt>X` / `updatedAt%3EX` (no `=` at all): strict `>`.
//!
//! Same for `<`. An unencoded `+` in a time zone offset (`+01:00`) decodes to
//! a space and makes the date unparsable (400), as on a real server.
//!
//! Whether the encoded forms count as operators is `EncodedOperators`,
//! decided on the raw key before any decoding. Raw `<` / `>` get here
//! through `rawio` (hyper alone would refuse them).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::config::EncodedOperators;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    /// The operator as written in a query key.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
        }
    }
    pub fn is_lower(self) -> bool {
        matches!(self, Op::Gt | Op::Gte)
    }
    /// Whether `lhs <op> rhs` holds, given `lhs.cmp(rhs)`.
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Gt => ord == Greater,
            Op::Gte => ord != Less,
            Op::Lt => ord == Less,
            Op::Lte => ord != Greater,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RangeFilter {
    pub field: String,
    pub op: Op,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Query {
    pub limit: Option<u64>,
    pub skip: u64,
    /// (field, descending)
    pub sort: Option<(String, bool)>,
    pub ranges: Vec<RangeFilter>,
    /// field, accepted values (comma separated in the query = any of)
    pub exact: Vec<(String, Vec<String>)>,
    pub paginated: bool,
    pub before: Option<String>,
    /// The `/messages` `before` cursor as a range, added by the router:
    /// applied even where range filters are ignored.
    pub cursor: Vec<RangeFilter>,
    pub ignore_archived: bool,
    /// `withCount=true` (`/custom-components`): `{totalCount, data}`.
    pub with_count: bool,
    /// `withoutChangelogs=true` (`/engagement/news`): accepted; the fake's
    /// news are no changelogs.
    pub without_changelogs: bool,
}

/// Percent-decodes `s`; `+` becomes a space. Invalid escapes are kept.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = |c: u8| (c as char).to_digit(16);
                match (h(b[i + 1]), h(b[i + 2])) {
                    (Some(x), Some(y)) => {
                        out.push((x * 16 + y) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_bool(v: &str) -> bool {
    matches!(v, "true" | "1")
}

/// Where a raw (undecoded) key holds a percent-encoded `>` or `<`: the
/// length of the parameter's name up to and including the operator (and a
/// directly following encoded `=`), e.g. `updatedAt%3E%3D`.
fn encoded_operator(raw_key: &str) -> Option<usize> {
    let b = raw_key.as_bytes();
    let at = |i: usize, hex: &[u8; 2]| {
        b.len() >= i + 3
            && b[i] == b'%'
            && b[i + 1] == hex[0]
            && b[i + 2].to_ascii_uppercase() == hex[1]
    };
    let p = (0..b.len()).find(|&i| at(i, b"3E") || at(i, b"3C"))?;
    Some(if at(p + 3, b"3D") { p + 6 } else { p + 3 })
}

/// Parses a raw query string, treating keys with percent-encoded range
/// operators per `enc`. Errors are messages for a 400.
pub(crate) fn parse(raw: &str, enc: EncodedOperators) -> Result<Query, String> {
    let mut q = Query::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        // Decided on the raw key, before any decoding: a server that never
        // decodes keys sees `updatedAt%3E` where a raw `>` would be.
        if enc != EncodedOperators::Decode {
            let raw_key = pair.find('=').map_or(pair, |p| &pair[..p]);
            if let Some(end) = encoded_operator(raw_key) {
                match enc {
                    EncodedOperators::Refuse => {
                        return Err(format!("Invalid query parameter: {}", &raw_key[..end]))
                    }
                    EncodedOperators::Literal => {
                        let value = pair.get(raw_key.len() + 1..).unwrap_or("");
                        let vals = percent_decode(value)
                            .split(',')
                            .map(str::to_string)
                            .collect();
                        q.exact.push((raw_key.to_string(), vals));
                    }
                    EncodedOperators::Ignore | EncodedOperators::Decode => {}
                }
                continue;
            }
        }
        let (key, value, had_eq) = match pair.find('=') {
            Some(p) => (
                percent_decode(&pair[..p]),
                percent_decode(&pair[p + 1..]),
                true,
            ),
            None => (percent_decode(pair), String::new(), false),
        };
        // Range filters.
        if had_eq {
            let (field, op) = if let Some(f) = key.strip_suffix(">=") {
                (f, Some(Op::Gte))
            } else if let Some(f) = key.strip_suffix("<=") {
                (f, Some(Op::Lte))
            } else if let Some(f) = key.strip_suffix('>') {
                (f, Some(Op::Gte))
            } else if let Some(f) = key.strip_suffix('<') {
                (f, Some(Op::Lte))
            } else {
                (key.as_str(), None)
            };
            if let Some(op) = op {
                q.ranges.push(RangeFilter {
                    field: field.to_string(),
                    op,
                    value,
                });
                continue;
            }
        } else if let Some(p) = key.find(['>', '<']) {
            let strict_gt = key.as_bytes()[p] == b'>';
            let rest = &key[p + 1..];
            let (op, val) = match rest.strip_prefix('=') {
                Some(v) => (if strict_gt { Op::Gte } else { Op::Lte }, v),
                None => (if strict_gt { Op::Gt } else { Op::Lt }, rest),
            };
            q.ranges.push(RangeFilter {
                field: key[..p].to_string(),
                op,
                value: val.to_string(),
            });
            continue;
        }
        match key.as_str() {
            "limit" => q.limit = value.trim().parse::<u64>().ok().filter(|&l| l > 0),
            "skip" => q.skip = value.trim().parse::<u64>().unwrap_or(0),
            "sort" => {
                let v = value.trim();
                if !v.is_empty() {
                    q.sort = Some(match v.strip_prefix('-') {
                        Some(f) => (f.to_string(), true),
                        None => (v.trim_start_matches('+').to_string(), false),
                    });
                }
            }
            "paginated" => q.paginated = parse_bool(&value),
            "before" => q.before = Some(value).filter(|v| !v.is_empty()),
            "ignoreArchived" => q.ignore_archived = parse_bool(&value),
            "withCount" => q.with_count = parse_bool(&value),
            "withoutChangelogs" => q.without_changelogs = parse_bool(&value),
            "" => {}
            _ => {
                let vals = value.split(',').map(str::to_string).collect();
                q.exact.push((key, vals));
            }
        }
    }
    Ok(q)
}

/// Parses an ISO 8601 timestamp into epoch milliseconds. Accepts `Z`,
/// `+hh:mm` offsets, no zone (taken as UTC, like a server running in UTC) and
/// a bare date.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim_end();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    None
}

/// Fields compared as instants in range filters.
pub(crate) fn is_date_field(f: &str) -> bool {
    let last = f.rsplit('.').next().unwrap_or(f);
    last.ends_with("At")
        || last.ends_with("Date")
        || last.ends_with("Until")
        || last.ends_with("Activity")
        || last == "lastHeardFrom"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_d(raw: &str) -> Result<Query, String> {
        parse(raw, EncodedOperators::Decode)
    }

    #[test]
    fn encoded_operators_per_policy() {
        let raw = "updatedAt%3E=2024-01-01&createdAt%3c%3D=2024-02-01&x%3E5&updatedAt>=2024-03-01&status=OPEN";
        let q = parse(raw, EncodedOperators::Ignore).unwrap();
        assert_eq!(q.ranges.len(), 1, "the raw operator stays");
        assert_eq!(q.ranges[0].value, "2024-03-01");
        assert_eq!(
            q.exact,
            vec![("status".to_string(), vec!["OPEN".to_string()])]
        );
        let q = parse(raw, EncodedOperators::Literal).unwrap();
        assert_eq!(q.ranges.len(), 1);
        let keys: Vec<&str> = q.exact.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["updatedAt%3E", "createdAt%3c%3D", "x%3E5", "status"]);
        assert_eq!(
            parse(raw, EncodedOperators::Refuse).unwrap_err(),
            "Invalid query parameter: updatedAt%3E"
        );
        assert_eq!(
            parse("createdAt%3c%3D=1", EncodedOperators::Refuse).unwrap_err(),
            "Invalid query parameter: createdAt%3c%3D"
        );
        assert!(parse("updatedAt>=2024-01-01&q=%3E", EncodedOperators::Refuse).is_ok());
    }

    #[test]
    fn operators_in_keys() {
        let q = parse_d("updatedAt>=2024-01-01T00:00:00.000Z&updatedAt%3C=2024-02-01T00:00:00Z&sort=-updatedAt&limit=5&skip=10").unwrap();
        assert_eq!(q.ranges[0].op, Op::Gte);
        assert_eq!(q.ranges[0].field, "updatedAt");
        assert_eq!(q.ranges[1].op, Op::Lte);
        assert_eq!(q.sort, Some(("updatedAt".into(), true)));
        assert_eq!((q.limit, q.skip), (Some(5), 10));
        let q =
            parse_d("updatedAt%3E%3D=2024-01-01&createdAt>2024-01-01T00:00:00.000Z&x%3C5").unwrap();
        assert_eq!(q.ranges[0].op, Op::Gte);
        assert_eq!(q.ranges[1].op, Op::Gt);
        assert_eq!(q.ranges[1].value, "2024-01-01T00:00:00.000Z");
        assert_eq!(
            (
                q.ranges[2].field.as_str(),
                q.ranges[2].op,
                q.ranges[2].value.as_str()
            ),
            ("x", Op::Lt, "5")
        );
        let q = parse_d(
            "type=BUG,FEATURE_REQUEST&archived=true&paginated=true&before=abc&ignoreArchived=true",
        )
        .unwrap();
        assert_eq!(q.exact[0].1, vec!["BUG", "FEATURE_REQUEST"]);
        assert_eq!(q.exact.len(), 2);
        assert!(q.paginated && q.ignore_archived);
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("2024-01-01T00:00:00.000Z"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_date("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200_000)
        );
        assert_eq!(parse_date("2024-01-01T00:00:00"), Some(1_704_067_200_000));
        assert_eq!(parse_date("2024-01-01"), Some(1_704_067_200_000));
        assert_eq!(parse_date("2024-01-01T01:00:00 01:00"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(percent_decode("a%3E%3d+b%zz"), "a>= b%zz");
    }
}
