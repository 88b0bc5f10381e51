//! Query strings as the API reads them.
//!
//! A comparison is written into the key, as Gleap documents it
//! (`updatedAt>=VALUE`, `updatedAt<VALUE`). `<` and `>` cannot travel raw in
//! a URL (RFC 3986; the `url` and `http` crates refuse or encode them, as
//! browsers and so Gleap's own web app do), so they go percent-encoded and
//! the server decodes exactly that text. Whether it does is
//! `Assumption::RangeFilters`.

use crate::state::Context;
use crate::timefmt;

/// A comparison in a range filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

/// One query: the partition's exact filters, then parameters in order.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: Vec<(&'static str, Op, String)>,
}

impl Query {
    pub fn new(partition: Context) -> Query {
        Query {
            params: partition
                .iter()
                .map(|(k, v)| (*k, Op::Eq, v.to_string()))
                .collect(),
        }
    }

    pub fn with(mut self, field: &'static str, op: Op, value: impl Into<String>) -> Query {
        self.params.push((field, op, value.into()));
        self
    }

    /// `field` compared with an instant, written as Gleap writes them.
    pub fn at(self, field: &'static str, op: Op, ms: i64) -> Query {
        self.with(field, op, fmt_ms(ms))
    }

    pub fn sort(self, field: &'static str, descending: bool) -> Query {
        let value = if descending {
            format!("-{field}")
        } else {
            field.to_string()
        };
        self.with("sort", Op::Eq, value)
    }

    pub fn limit(self, n: usize) -> Query {
        self.with("limit", Op::Eq, n.to_string())
    }

    pub fn skip(self, n: usize) -> Query {
        self.with("skip", Op::Eq, n.to_string())
    }

    /// The same query without the parameters `drop` picks.
    pub fn without(&self, drop: impl Fn(&str, Op) -> bool) -> Query {
        Query {
            params: self
                .params
                .iter()
                .filter(|(k, op, _)| !drop(k, *op))
                .cloned()
                .collect(),
        }
    }

    /// The same query with `limit` set to `n`.
    pub fn relimit(&self, n: usize) -> Query {
        self.without(|k, _| k == "limit").limit(n)
    }

    pub fn has(&self, key: &str) -> bool {
        self.params.iter().any(|(k, _, _)| *k == key)
    }

    pub fn skip_value(&self) -> Option<usize> {
        self.params
            .iter()
            .find(|(k, _, _)| *k == "skip")
            .and_then(|(_, _, v)| v.parse().ok())
    }

    pub fn limit_value(&self) -> Option<usize> {
        self.params
            .iter()
            .find(|(k, _, _)| *k == "limit")
            .and_then(|(_, _, v)| v.parse().ok())
    }

    pub fn encode(&self) -> String {
        let mut q = String::new();
        for (field, op, value) in &self.params {
            if !q.is_empty() {
                q.push('&');
            }
            encode_into(&mut q, field);
            q.push_str(match op {
                Op::Ge => "%3E=",
                Op::Gt => "%3E",
                Op::Le => "%3C=",
                Op::Lt => "%3C",
                Op::Eq => "=",
            });
            encode_into(&mut q, value);
        }
        q
    }
}

pub fn fmt_ms(ms: i64) -> String {
    timefmt::format_epoch_ms(ms).unwrap_or_default()
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_part_of_the_key_and_values_are_encoded() {
        let t = 1_704_067_200_000;
        let q = Query::new(&[("archived", "true")])
            .at("updatedAt", Op::Ge, t)
            .at("updatedAt", Op::Gt, t)
            .at("updatedAt", Op::Le, t)
            .at("updatedAt", Op::Lt, t)
            .with("x", Op::Eq, "a b+c")
            .sort("updatedAt", true);
        assert_eq!(
            q.encode(),
            "archived=true&updatedAt%3E=2024-01-01T00:00:00.000Z&updatedAt%3E2024-01-01T00:00:00.000Z\
             &updatedAt%3C=2024-01-01T00:00:00.000Z&updatedAt%3C2024-01-01T00:00:00.000Z\
             &x=a%20b%2Bc&sort=-updatedAt"
        );
        let q = q.limit(5).relimit(7);
        assert_eq!(q.limit_value(), Some(7));
        assert!(q.has("updatedAt") && !q.without(|_, op| op != Op::Eq).has("updatedAt"));
    }
}
