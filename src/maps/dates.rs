//! Python's `datetime` module, as far as map expressions use it:
//! `datetime.datetime` (naive or with a fixed UTC offset), `datetime.date`,
//! `datetime.timedelta` and `datetime.timezone`, with Python's parsing
//! (`fromisoformat`, `strptime`), formatting (`isoformat`, `str`,
//! `strftime`) and arithmetic, to the microsecond.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub local: NaiveDateTime,
    /// Seconds east of UTC; `None` for a naive datetime.
    pub offset: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeDelta(pub i64);

pub type DResult<T> = Result<T, String>;

impl TimeDelta {
    pub fn from_micros(us: i64) -> TimeDelta {
        TimeDelta(us)
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn duration(&self) -> Duration {
        Duration::microseconds(self.0)
    }

    /// (days, seconds, microseconds) normalised as Python's.
    pub fn parts(&self) -> (i64, i64, i64) {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let rest = self.0.rem_euclid(MICROS_PER_DAY);
        (days, rest / 1_000_000, rest % 1_000_000)
    }

    pub fn total_seconds(&self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn to_string_py(&self) -> String {
        let (days, secs, us) = self.parts();
        let mut s = String::new();
        if days != 0 {
            s.push_str(&format!(
                "{days} day{}, ",
                if days.abs() != 1 { "s" } else { "" }
            ));
        }
        s.push_str(&format!(
            "{}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
        if us != 0 {
            s.push_str(&format!(".{us:06}"));
        }
        s
    }

    pub fn repr(&self) -> String {
        let (days, secs, us) = self.parts();
        let mut parts = Vec::new();
        if days != 0 {
            parts.push(format!("days={days}"));
        }
        if secs != 0 {
            parts.push(format!("seconds={secs}"));
        }
        if us != 0 {
            parts.push(format!("microseconds={us}"));
        }
        if parts.is_empty() {
            parts.push("0".into());
        }
        format!("datetime.timedelta({})", parts.join(", "))
    }
}

fn offset_text(secs: i32, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    let sep = if colon { ":" } else { "" };
    let mut s = format!("{sign}{:02}{sep}{:02}", a / 3600, a / 60 % 60);
    if a % 60 != 0 {
        s.push_str(&format!("{sep}{:02}", a % 60));
    }
    s
}

impl Date {
    pub fn isoformat(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }

    pub fn repr(&self) -> String {
        format!(
            "datetime.date({}, {}, {})",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }

    pub fn new(y: i64, m: i64, d: i64) -> DResult<Date> {
        if !(1..=9999).contains(&y) {
            return Err(format!("year {y} is out of range"));
        }
        if !(1..=12).contains(&m) {
            return Err("month must be in 1..12".into());
        }
        NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
            .map(Date)
            .ok_or_else(|| "day is out of range for month".into())
    }

    pub fn fromisoformat(s: &str) -> DResult<Date> {
        parse_date(s.as_bytes())
            .filter(|(_, n)| *n == s.len())
            .map(|(d, _)| Date(d))
            .ok_or_else(|| format!("Invalid isoformat string: {s:?}"))
    }

    pub fn today() -> Date {
        Date(chrono::Local::now().date_naive())
    }
}

/// `YYYY-MM-DD` or `YYYYMMDD` at the start of `b`: the date and its length.
fn parse_date(b: &[u8]) -> Option<(NaiveDate, usize)> {
    let num = |from: usize, len: usize| -> Option<u32> {
        let s = b.get(from..from + len)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let y = num(0, 4)?;
    let (m, d, n) = if b.get(4) == Some(&b'-') {
        (
            num(5, 2)?,
            num(8, 2).filter(|_| b.get(7) == Some(&b'-'))?,
            10,
        )
    } else {
        (num(4, 2)?, num(6, 2)?, 8)
    };
    if y == 0 {
        return None;
    }
    Some((NaiveDate::from_ymd_opt(y as i32, m, d)?, n))
}

impl DateTime {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        y: i64,
        mo: i64,
        d: i64,
        h: i64,
        mi: i64,
        s: i64,
        us: i64,
        offset: Option<i32>,
    ) -> DResult<DateTime> {
        let date = Date::new(y, mo, d)?.0;
        if !(0..24).contains(&h) {
            return Err("hour must be in 0..23".into());
        }
        if !(0..60).contains(&mi) {
            return Err("minute must be in 0..59".into());
        }
        if !(0..60).contains(&s) {
            return Err("second must be in 0..59".into());
        }
        if !(0..1_000_000).contains(&us) {
            return Err("microsecond must be in 0..999999".into());
        }
        let time = NaiveTime::from_hms_micro_opt(h as u32, mi as u32, s as u32, us as u32)
            .ok_or("time out of range")?;
        Ok(DateTime {
            local: date.and_time(time),
            offset,
        })
    }

    pub fn micro(&self) -> u32 {
        self.local.nanosecond() / 1000
    }

    pub fn date(&self) -> Date {
        Date(self.local.date())
    }

    /// Python 3.11's `datetime.fromisoformat` for the forms records hold:
    /// a date, then `T` (or any one character) and a time `HH[:MM[:SS[.f]]]`
    /// (or without colons), then `Z` or `±HH[:MM[:SS[.ffffff]]]`.
    pub fn fromisoformat(s: &str) -> DResult<DateTime> {
        let bad = || format!("Invalid isoformat string: {s:?}");
        let b = s.as_bytes();
        let (date, n) = parse_date(b).ok_or_else(bad)?;
        if n == b.len() {
            return Ok(DateTime {
                local: date.and_time(NaiveTime::MIN),
                offset: None,
            });
        }
        if !s.is_char_boundary(n + 1) {
            return Err(bad());
        }
        let rest = &s[n + 1..];
        let tz_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
        let (time_text, tz_text) = rest.split_at(tz_at);
        let (h, mi, sec, us) = parse_time(time_text).ok_or_else(bad)?;
        let offset = if tz_text.is_empty() {
            None
        } else if tz_text == "Z" {
            Some(0)
        } else {
            let sign = if tz_text.starts_with('-') { -1 } else { 1 };
            let (oh, om, os, ous) = parse_time(&tz_text[1..]).ok_or_else(bad)?;
            if ous != 0 {
                return Err("sub-second UTC offsets are not supported".into());
            }
            Some(sign * (oh as i32 * 3600 + om as i32 * 60 + os as i32))
        };
        let time = NaiveTime::from_hms_micro_opt(h, mi, sec, us).ok_or_else(bad)?;
        Ok(DateTime {
            local: date.and_time(time),
            offset,
        })
    }

    pub fn isoformat(&self, sep: char) -> String {
        let mut s = format!(
            "{}{sep}{:02}:{:02}:{:02}",
            self.date().isoformat(),
            self.local.hour(),
            self.local.minute(),
            self.local.second()
        );
        if self.micro() != 0 {
            s.push_str(&format!(".{:06}", self.micro()));
        }
        if let Some(o) = self.offset {
            s.push_str(&offset_text(o, true));
        }
        s
    }

    pub fn to_string_py(&self, sep: char) -> String {
        self.isoformat(sep)
    }

    pub fn repr(&self) -> String {
        let l = &self.local;
        let mut s = format!(
            "datetime.datetime({}, {}, {}, {}, {}",
            l.year(),
            l.month(),
            l.day(),
            l.hour(),
            l.minute()
        );
        if l.second() != 0 || self.micro() != 0 {
            s.push_str(&format!(", {}", l.second()));
        }
        if self.micro() != 0 {
            s.push_str(&format!(", {}", self.micro()));
        }
        match self.offset {
            Some(0) => s.push_str(", tzinfo=datetime.timezone.utc"),
            Some(o) => s.push_str(&format!(
                ", tzinfo=datetime.timezone({})",
                TimeDelta(o as i64 * 1_000_000).repr()
            )),
            None => {}
        }
        s.push(')');
        s
    }

    /// The instant as UTC, for comparisons and differences of aware datetimes.
    pub fn utc(&self) -> NaiveDateTime {
        self.local - Duration::seconds(self.offset.unwrap_or(0) as i64)
    }

    /// POSIX timestamp; a naive datetime is taken as local time (Python's rule).
    pub fn timestamp(&self) -> f64 {
        let utc = match self.offset {
            Some(_) => self.utc(),
            None => {
                use chrono::TimeZone;
                match chrono::Local.from_local_datetime(&self.local).earliest() {
                    Some(t) => t.naive_utc(),
                    None => self.local,
                }
            }
        };
        let d = utc - chrono::DateTime::UNIX_EPOCH.naive_utc();
        d.num_microseconds().unwrap_or(0) as f64 / 1e6
    }

    pub fn from_timestamp(ts: f64, offset: Option<i32>) -> DResult<DateTime> {
        let us = (ts * 1e6).round() as i64;
        let utc = chrono::DateTime::UNIX_EPOCH
            .naive_utc()
            .checked_add_signed(Duration::microseconds(us))
            .ok_or("timestamp out of range")?;
        Ok(match offset {
            Some(o) => DateTime {
                local: utc + Duration::seconds(o as i64),
                offset: Some(o),
            },
            None => DateTime {
                local: chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(utc, chrono::Utc)
                    .with_timezone(&chrono::Local)
                    .naive_local(),
                offset: None,
            },
        })
    }

    pub fn now(offset: Option<i32>) -> DateTime {
        let now = chrono::Utc::now();
        match offset {
            Some(o) => DateTime {
                local: now.naive_utc() + Duration::seconds(o as i64),
                offset: Some(o),
            },
            None => DateTime {
                local: now.with_timezone(&chrono::Local).naive_local(),
                offset: None,
            },
        }
    }

    pub fn utcnow() -> DateTime {
        DateTime {
            local: chrono::Utc::now().naive_utc(),
            offset: None,
        }
    }

    pub fn add(&self, d: TimeDelta) -> DResult<DateTime> {
        let local = self
            .local
            .checked_add_signed(d.duration())
            .filter(|t| (1..=9999).contains(&t.year()))
            .ok_or("date value out of range")?;
        Ok(DateTime { local, ..*self })
    }

    pub fn sub(&self, other: &DateTime) -> DResult<TimeDelta> {
        if self.offset.is_some() != other.offset.is_some() {
            return Err("can't subtract offset-naive and offset-aware datetimes".into());
        }
        Ok(TimeDelta(
            (self.utc() - other.utc())
                .num_microseconds()
                .unwrap_or(i64::MAX),
        ))
    }

    /// Ordering between two datetimes; naive and aware are not comparable.
    pub fn compare(&self, other: &DateTime) -> DResult<std::cmp::Ordering> {
        if self.offset.is_some() != other.offset.is_some() {
            return Err("can't compare offset-naive and offset-aware datetimes".into());
        }
        Ok(self.utc().cmp(&other.utc()))
    }

    pub fn astimezone(&self, offset: i32) -> DResult<DateTime> {
        let utc = match self.offset {
            Some(_) => self.utc(),
            None => {
                use chrono::TimeZone;
                chrono::Local
                    .from_local_datetime(&self.local)
                    .earliest()
                    .map(|t| t.naive_utc())
                    .unwrap_or(self.local)
            }
        };
        Ok(DateTime {
            local: utc + Duration::seconds(offset as i64),
            offset: Some(offset),
        })
    }

    /// Python's `strptime` for the common directives.
    pub fn strptime(s: &str, fmt: &str) -> DResult<DateTime> {
        let bad = || format!("time data {s:?} does not match format {fmt:?}");
        let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut us) = (1900, 1, 1, 0, 0, 0, 0);
        let mut pm: Option<bool> = None;
        let mut offset = None;
        let mut yday: Option<i64> = None;
        let sb = s.as_bytes();
        let mut i = 0;
        let mut f = fmt.chars().peekable();
        let digits = |i: &mut usize, max: usize| -> Option<i64> {
            let start = *i;
            while *i < sb.len() && *i - start < max && sb[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i == start {
                return None;
            }
            s[start..*i].parse().ok()
        };
        while let Some(c) = f.next() {
            if c == '%' {
                let dir = f.next().ok_or_else(bad)?;
                match dir {
                    'Y' => y = digits(&mut i, 4).ok_or_else(bad)?,
                    'y' => {
                        let v = digits(&mut i, 2).ok_or_else(bad)?;
                        y = if v < 69 { 2000 + v } else { 1900 + v };
                    }
                    'm' => mo = digits(&mut i, 2).ok_or_else(bad)?,
                    'd' => d = digits(&mut i, 2).ok_or_else(bad)?,
                    'H' => h = digits(&mut i, 2).ok_or_else(bad)?,
                    'I' => h = digits(&mut i, 2).ok_or_else(bad)?,
                    'M' => mi = digits(&mut i, 2).ok_or_else(bad)?,
                    'S' => sec = digits(&mut i, 2).ok_or_else(bad)?,
                    'j' => yday = Some(digits(&mut i, 3).ok_or_else(bad)?),
                    'f' => {
                        let start = i;
                        let v = digits(&mut i, 6).ok_or_else(bad)?;
                        us = v * 10i64.pow(6 - (i - start) as u32);
                    }
                    'p' => {
                        let word = s.get(i..i + 2).ok_or_else(bad)?.to_ascii_uppercase();
                        pm = Some(match word.as_str() {
                            "AM" => false,
                            "PM" => true,
                            _ => return Err(bad()),
                        });
                        i += 2;
                    }
                    'b' | 'B' | 'h' => {
                        let (n, len) = MONTHS
                            .iter()
                            .enumerate()
                            .find_map(|(k, m)| {
                                let rest = s.get(i..)?.to_ascii_lowercase();
                                let full = m.to_ascii_lowercase();
                                if dir == 'B' && rest.starts_with(&full) {
                                    Some((k, full.len()))
                                } else if dir != 'B' && rest.starts_with(&full[..3]) {
                                    Some((k, 3))
                                } else {
                                    None
                                }
                            })
                            .ok_or_else(bad)?;
                        mo = n as i64 + 1;
                        i += len;
                    }
                    'a' | 'A' => {
                        let len = DAYS
                            .iter()
                            .find_map(|day| {
                                let rest = s.get(i..)?.to_ascii_lowercase();
                                let full = day.to_ascii_lowercase();
                                if dir == 'A' && rest.starts_with(&full) {
                                    Some(full.len())
                                } else if dir == 'a' && rest.starts_with(&full[..3]) {
                                    Some(3)
                                } else {
                                    None
                                }
                            })
                            .ok_or_else(bad)?;
                        i += len;
                    }
                    'z' => {
                        if s.get(i..i + 1) == Some("Z") {
                            offset = Some(0);
                            i += 1;
                        } else {
                            let sign = match sb.get(i) {
                                Some(b'+') => 1,
                                Some(b'-') => -1,
                                _ => return Err(bad()),
                            };
                            i += 1;
                            let oh = digits(&mut i, 2).ok_or_else(bad)?;
                            if sb.get(i) == Some(&b':') {
                                i += 1;
                            }
                            let om = digits(&mut i, 2).ok_or_else(bad)?;
                            offset = Some(sign * (oh * 3600 + om * 60) as i32);
                        }
                    }
                    '%' => {
                        if sb.get(i) != Some(&b'%') {
                            return Err(bad());
                        }
                        i += 1;
                    }
                    other => return Err(format!("'{other}' is a bad directive in format {fmt:?}")),
                }
            } else if c.is_whitespace() {
                while i < sb.len() && sb[i].is_ascii_whitespace() {
                    i += 1;
                }
            } else {
                let mut buf = [0u8; 4];
                let lit = c.encode_utf8(&mut buf);
                if !s[i..].starts_with(&*lit) {
                    return Err(bad());
                }
                i += lit.len();
            }
        }
        if i != sb.len() {
            return Err(format!("unconverted data remains: {}", &s[i..]));
        }
        if let Some(p) = pm {
            h = h % 12 + if p { 12 } else { 0 };
        }
        if let Some(j) = yday {
            let day = NaiveDate::from_yo_opt(y as i32, j as u32).ok_or_else(bad)?;
            mo = day.month() as i64;
            d = day.day() as i64;
        }
        DateTime::new(y, mo, d, h, mi, sec, us, offset)
    }
}

/// `HH[:MM[:SS[.ffffff]]]` or `HHMM[SS[.f]]`.
fn parse_time(t: &str) -> Option<(u32, u32, u32, u32)> {
    let (main, frac) = match t.find(['.', ',']) {
        Some(p) => (&t[..p], Some(&t[p + 1..])),
        None => (t, None),
    };
    let digits: String = main.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) || ![2, 4, 6].contains(&digits.len()) {
        return None;
    }
    if main.contains(':') && main.len() != digits.len() + digits.len() / 2 - 1 {
        return None;
    }
    let n = |k: usize| digits.get(k..k + 2).map_or(Some(0), |s| s.parse().ok());
    let us = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) && digits.len() == 6 => {
            let f6: String = f.chars().chain("000000".chars()).take(6).collect();
            f6.parse().ok()?
        }
        Some(_) => return None,
    };
    Some((n(0)?, n(2)?, n(4)?, us))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// C's `strftime` in the C locale, as Python calls it. Directives not known
/// here are kept as written (glibc does the same with unknown ones).
pub fn strftime(local: NaiveDateTime, offset: Option<i32>, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let wd = local.weekday().num_days_from_monday() as usize;
        let h12 = match local.hour() % 12 {
            0 => 12,
            h => h,
        };
        let piece = match d {
            'a' => DAYS[wd][..3].to_string(),
            'A' => DAYS[wd].to_string(),
            'b' | 'h' => MONTHS[local.month0() as usize][..3].to_string(),
            'B' => MONTHS[local.month0() as usize].to_string(),
            'd' => format!("{:02}", local.day()),
            'e' => format!("{:>2}", local.day()),
            'f' => format!("{:06}", local.nanosecond() / 1000),
            'H' => format!("{:02}", local.hour()),
            'I' => format!("{h12:02}"),
            'j' => format!("{:03}", local.ordinal()),
            'm' => format!("{:02}", local.month()),
            'M' => format!("{:02}", local.minute()),
            'p' => if local.hour() < 12 { "AM" } else { "PM" }.to_string(),
            'S' => format!("{:02}", local.second()),
            'u' => format!("{}", wd + 1),
            'w' => format!("{}", (wd + 1) % 7),
            'y' => format!("{:02}", local.year() % 100),
            'Y' => format!("{}", local.year()),
            'G' => format!("{}", local.iso_week().year()),
            'V' => format!("{:02}", local.iso_week().week()),
            'z' => offset.map(|o| offset_text(o, false)).unwrap_or_default(),
            'Z' => match offset {
                Some(0) => "UTC".into(),
                Some(o) => format!("UTC{}", offset_text(o, true)),
                None => String::new(),
            },
            'F' => format!(
                "{:04}-{:02}-{:02}",
                local.year(),
                local.month(),
                local.day()
            ),
            'T' | 'X' => format!(
                "{:02}:{:02}:{:02}",
                local.hour(),
                local.minute(),
                local.second()
            ),
            'D' | 'x' => format!(
                "{:02}/{:02}/{:02}",
                local.month(),
                local.day(),
                local.year() % 100
            ),
            'c' => format!(
                "{} {} {:>2} {:02}:{:02}:{:02} {}",
                &DAYS[wd][..3],
                &MONTHS[local.month0() as usize][..3],
                local.day(),
                local.hour(),
                local.minute(),
                local.second(),
                local.year()
            ),
            '%' => "%".into(),
            other => format!("%{other}"),
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat_round_trips_as_python() {
        let d = DateTime::fromisoformat("2024-05-01T10:00:00.000Z").unwrap();
        assert_eq!(d.isoformat('T'), "2024-05-01T10:00:00+00:00");
        assert_eq!(d.to_string_py(' '), "2024-05-01 10:00:00+00:00");
        let d = DateTime::fromisoformat("2024-01-01T00:00:00.123").unwrap();
        assert_eq!(d.isoformat('T'), "2024-01-01T00:00:00.123000");
        let d = DateTime::fromisoformat("2024-01-01 12:30+05:30").unwrap();
        assert_eq!(d.isoformat('T'), "2024-01-01T12:30:00+05:30");
        assert!(DateTime::fromisoformat("yesterday").is_err());
        assert_eq!(
            DateTime::fromisoformat("2024-01-02").unwrap().repr(),
            "datetime.datetime(2024, 1, 2, 0, 0)"
        );
    }

    #[test]
    fn timedeltas_print_as_python() {
        let a = DateTime::fromisoformat("2024-05-01T10:00:00Z").unwrap();
        let b = DateTime::fromisoformat("2024-01-01T00:00:00+00:00").unwrap();
        assert_eq!(a.sub(&b).unwrap().to_string_py(), "121 days, 10:00:00");
        assert_eq!(TimeDelta(-1).to_string_py(), "-1 day, 23:59:59.999999");
        assert_eq!(TimeDelta(86_400_000_000).to_string_py(), "1 day, 0:00:00");
        let n = DateTime::fromisoformat("2024-01-01T00:00:00").unwrap();
        assert!(a.sub(&n).is_err());
    }

    #[test]
    fn strftime_and_strptime() {
        let d = DateTime::fromisoformat("2024-05-01T09:05:03.5+02:00").unwrap();
        assert_eq!(
            strftime(
                d.local,
                d.offset,
                "%Y-%m-%d %H:%M:%S.%f %z %a %b %j %I%p %%"
            ),
            "2024-05-01 09:05:03.500000 +0200 Wed May 122 09AM %"
        );
        let p = DateTime::strptime("2024-01-02 03:04", "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(p.isoformat('T'), "2024-01-02T03:04:00");
        assert!(DateTime::strptime("2024-01-02x", "%Y-%m-%d").is_err());
    }
}
