//! Checking and evaluating map expressions with the SDK's semantics
//! (simpleeval over Python values): the names an expression may use, the
//! functions the SDK gives it (`md5`, `sha256`, `int`, `float`, `str`,
//! `bool`, `list`, `tuple`, `dict`, the `datetime` and `json` modules) and
//! Python's operators and methods on strings, lists, dicts and dates.
//!
//! `check` runs when the config is loaded: it resolves every name and
//! refuses, naming it, whatever the SDK would refuse at run time (an
//! unknown name or function, a method strings do not have, `_`-attributes,
//! `format`) and what is outside this subset. `eval` then only meets errors
//! that depend on the data (`md5(None)`, `int('x')`), as the SDK would.

use std::cmp::Ordering;
use std::sync::Arc;

use md5::Digest;

use super::builtin::Builtin;
use super::dates::{strftime, Date, DateTime, TimeDelta};
use super::expr::{BinOp, CmpOp, Expr, FPart, Ref, UnOp};
use super::value::{py_json, Val};

/// What eval adds to `Builtin`: the members it resolves to, as
/// expressions (kept here, beside `Expr`, so `builtin.rs` needs neither).
impl Builtin {
    /// `module.attr` / `Class.attr`, resolved when the config is loaded.
    fn member(&self, attr: &str) -> Option<Expr> {
        use Builtin::*;
        let b = match (self, attr) {
            (DatetimeModule, "datetime") => DatetimeClass,
            (DatetimeModule, "date") => DateClass,
            (DatetimeModule, "timedelta") => TimedeltaClass,
            (DatetimeModule, "timezone") => TimezoneClass,
            (DatetimeModule, "UTC") | (TimezoneClass, "utc") => {
                return Some(Expr::Const(Val::Tz(0)))
            }
            (DatetimeModule, "MINYEAR") => return Some(Expr::Const(Val::Int(1))),
            (DatetimeModule, "MAXYEAR") => return Some(Expr::Const(Val::Int(9999))),
            (JsonModule, "dumps") => JsonDumps,
            (JsonModule, "loads") => JsonLoads,
            (DatetimeClass, "fromisoformat") => DtFromIsoformat,
            (DatetimeClass, "now") => DtNow,
            (DatetimeClass, "utcnow") => DtUtcnow,
            (DatetimeClass, "strptime") => DtStrptime,
            (DatetimeClass, "fromtimestamp") => DtFromTimestamp,
            (DatetimeClass, "utcfromtimestamp") => DtUtcFromTimestamp,
            (DateClass, "fromisoformat") => DateFromIsoformat,
            (DateClass, "today") => DateToday,
            (DateClass, "fromtimestamp") => DateFromTimestamp,
            _ => return None,
        };
        Some(Expr::Ref(Ref::Builtin(b)))
    }
}

/// The functions the SDK hands simpleeval (`md5`, `sha256`, `datetime`,
/// `bool`, `json`, simpleeval's `int`, `float`, `str`, and the compound
/// types' `list`, `tuple`, `dict`).
fn function(name: &str) -> Option<Builtin> {
    use Builtin::*;
    Some(match name {
        "md5" => Md5,
        "sha256" => Sha256,
        "int" => Int,
        "float" => Float,
        "str" => Str,
        "bool" => Bool,
        "list" => List,
        "tuple" => Tuple,
        "dict" => Dict,
        "datetime" => DatetimeModule,
        "json" => JsonModule,
        _ => return None,
    })
}

/// Why a function the SDK lacks or that this tap refuses is refused.
fn refused_function(name: &str) -> Option<String> {
    Some(match name {
        "rand" | "randint" => format!("{name}() (random values) is not supported"),
        "set" => "set() is not supported (sets have no JSON form)".into(),
        "fake" => "fake (Faker) is not supported".into(),
        "len" | "round" | "abs" | "min" | "max" | "sum" | "sorted" | "any" | "all" | "range"
        | "enumerate" | "zip" | "map" | "filter" | "print" | "type" | "isinstance" | "getattr"
        | "hasattr" | "repr" | "hash" | "ord" | "chr" | "open" | "eval" | "exec" | "reversed"
        | "hex" | "oct" | "bin" | "format" | "divmod" | "pow" | "iter" | "next" | "vars"
        | "globals" | "locals" | "input" | "id" | "callable" | "compile" | "__import__" => {
            format!("{name}() is not available in the SDK's map expressions (simpleeval does not provide it)")
        }
        _ => return None,
    })
}

const STR_METHODS: &[&str] = &[
    "upper",
    "lower",
    "strip",
    "lstrip",
    "rstrip",
    "replace",
    "startswith",
    "endswith",
    "split",
    "rsplit",
    "join",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "title",
    "capitalize",
    "casefold",
    "swapcase",
    "isdigit",
    "isnumeric",
    "isdecimal",
    "isalpha",
    "isalnum",
    "isspace",
    "islower",
    "isupper",
    "zfill",
    "removeprefix",
    "removesuffix",
    "partition",
    "rpartition",
    "splitlines",
    "center",
    "ljust",
    "rjust",
];
const DICT_METHODS: &[&str] = &["get", "keys", "values", "items"];
const LIST_METHODS: &[&str] = &["index", "count"];
const DATE_METHODS: &[&str] = &[
    "isoformat",
    "strftime",
    "date",
    "timestamp",
    "weekday",
    "isoweekday",
    "replace",
    "astimezone",
    "total_seconds",
    "utcoffset",
];
const DATE_ATTRS: &[&str] = &[
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "microsecond",
    "tzinfo",
    "days",
    "seconds",
    "microseconds",
];
/// simpleeval's `DISALLOW_METHODS`.
const DISALLOWED: &[&str] = &[
    "format",
    "format_map",
    "mro",
    "tb_frame",
    "gi_frame",
    "ag_frame",
    "cr_frame",
    "exec",
];

fn is_method(name: &str) -> bool {
    STR_METHODS.contains(&name)
        || DICT_METHODS.contains(&name)
        || LIST_METHODS.contains(&name)
        || DATE_METHODS.contains(&name)
}

/// What `check` needs to know of where an expression runs.
pub struct CheckEnv<'a> {
    /// The stream's properties (as selected): the names a record can hold.
    pub properties: &'a [String],
    pub stream: &'a str,
    /// `stream_map_config`'s keys.
    pub config_keys: &'a [String],
    /// The property the expression computes (`None` for `__filter__`).
    pub property: Option<&'a str>,
}

impl CheckEnv<'_> {
    fn has(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p == name)
    }

    fn unknown(&self, name: &str) -> String {
        let mut known: Vec<&str> = self.properties.iter().map(String::as_str).collect();
        known.sort_unstable();
        let shown = if known.len() > 12 {
            format!("{}, ...", known[..12].join(", "))
        } else {
            known.join(", ")
        };
        format!(
            "unknown name '{name}': not a property of stream {} ({shown}), nor record, _, config, self, __stream_name__ or a function",
            self.stream
        )
    }
}

/// Resolves names and refuses what the SDK would refuse or this subset lacks.
pub fn check(e: &mut Expr, env: &CheckEnv) -> Result<(), String> {
    resolve(e, env)?;
    no_bare_builtins(e)
}

/// A function, class or module used as a value, not called: the SDK would
/// write its `str()` (`<built-in function ...>`) into the record.
fn no_bare_builtins(e: &Expr) -> Result<(), String> {
    let each = |items: &[Expr]| items.iter().try_for_each(no_bare_builtins);
    match e {
        Expr::Ref(Ref::Builtin(b)) => Err(format!("{} is used without calling it", b.name())),
        Expr::Const(_) | Expr::Name(_) | Expr::Ref(_) => Ok(()),
        Expr::List(items) | Expr::Tuple(items) | Expr::Bool(_, items) => each(items),
        Expr::Dict(items) => items.iter().try_for_each(|(k, v)| {
            no_bare_builtins(k)?;
            no_bare_builtins(v)
        }),
        Expr::FString(parts) => parts.iter().try_for_each(|p| match p {
            FPart::Value(v) => no_bare_builtins(v),
            FPart::Text(_) => Ok(()),
        }),
        Expr::Call(func, args, kwargs) => {
            match &**func {
                Expr::Ref(Ref::Builtin(_)) => {}
                Expr::Attr(base, _) => no_bare_builtins(base)?,
                other => no_bare_builtins(other)?,
            }
            each(args)?;
            kwargs.iter().try_for_each(|(_, v)| no_bare_builtins(v))
        }
        Expr::Attr(base, _) | Expr::Unary(_, base) => no_bare_builtins(base),
        Expr::Index(a, b) | Expr::Bin(_, a, b) => {
            no_bare_builtins(a)?;
            no_bare_builtins(b)
        }
        Expr::Slice(base, parts) => {
            no_bare_builtins(base)?;
            parts.iter().flatten().try_for_each(|p| no_bare_builtins(p))
        }
        Expr::Compare(first, rest) => {
            no_bare_builtins(first)?;
            rest.iter().try_for_each(|(_, r)| no_bare_builtins(r))
        }
        Expr::IfElse { test, body, orelse } => {
            no_bare_builtins(test)?;
            no_bare_builtins(body)?;
            no_bare_builtins(orelse)
        }
    }
}

fn resolve(e: &mut Expr, env: &CheckEnv) -> Result<(), String> {
    let check = resolve;
    match e {
        Expr::Const(_) | Expr::Ref(_) => Ok(()),
        Expr::Name(n) => {
            let r = match n.as_str() {
                "record" | "_" => Ref::Record,
                "config" => Ref::Config,
                "__stream_name__" => Ref::StreamName,
                "__original_stream_name__" => Ref::OriginalStreamName,
                "self" => match env.property {
                    Some(p) if env.has(p) => Ref::SelfValue,
                    Some(p) => return Err(format!("'self' is the property's current value, and stream {} has no property '{p}'", env.stream)),
                    None => return Err("'self' has no meaning in __filter__".into()),
                },
                name if env.has(name) => Ref::Field(name.into()),
                name => {
                    if let Some(why) = refused_function(name) {
                        return Err(why);
                    }
                    match function(name) {
                        Some(b) => Ref::Builtin(b),
                        None => return Err(env.unknown(name)),
                    }
                }
            };
            *e = Expr::Ref(r);
            Ok(())
        }
        Expr::List(items) | Expr::Tuple(items) => items.iter_mut().try_for_each(|i| check(i, env)),
        Expr::Dict(items) => items.iter_mut().try_for_each(|(k, v)| {
            check(k, env)?;
            check(v, env)
        }),
        Expr::FString(parts) => parts.iter_mut().try_for_each(|p| match p {
            FPart::Value(v) => check(v, env),
            FPart::Text(_) => Ok(()),
        }),
        Expr::Attr(base, name) => {
            check_attr_name(name)?;
            check(base, env)?;
            if let Expr::Ref(Ref::Builtin(b)) = &**base {
                return match b.member(name) {
                    Some(resolved) => {
                        *e = resolved;
                        Ok(())
                    }
                    None => Err(format!("{}.{name} is not supported", b.name())),
                };
            }
            if is_method(name) {
                return Err(format!("the method .{name} is used without calling it"));
            }
            match &**base {
                Expr::Ref(Ref::Record) if !env.has(name) => Err(format!(
                    "record.{name}: stream {} has no property '{name}'",
                    env.stream
                )),
                Expr::Ref(Ref::Config) if !env.config_keys.iter().any(|k| k == name) => Err(
                    format!("config.{name}: stream_map_config has no key '{name}'"),
                ),
                _ => Ok(()),
            }
        }
        Expr::Call(func, args, kwargs) => {
            for a in args.iter_mut() {
                check(a, env)?;
            }
            for (_, v) in kwargs.iter_mut() {
                check(v, env)?;
            }
            match &mut **func {
                Expr::Name(n) => {
                    if let Some(why) = refused_function(n) {
                        return Err(why);
                    }
                    match function(n) {
                        Some(b) if b.callable() => {
                            **func = Expr::Ref(Ref::Builtin(b));
                            Ok(())
                        }
                        Some(b) => Err(format!("the module {} is not callable", b.name())),
                        None => Err(format!(
                            "unknown function {n}(): the SDK's map expressions have md5, sha256, int, float, str, bool, list, tuple, dict, datetime and json"
                        )),
                    }
                }
                Expr::Attr(base, name) => {
                    check_attr_name(name)?;
                    check(base, env)?;
                    if let Expr::Ref(Ref::Builtin(b)) = &**base {
                        return match b.member(name) {
                            Some(resolved @ Expr::Ref(Ref::Builtin(_))) => {
                                **func = resolved;
                                Ok(())
                            }
                            Some(_) => Err(format!("{}.{name} is not callable", b.name())),
                            None => Err(format!("{}.{name} is not supported", b.name())),
                        };
                    }
                    let allowed: &[&str] = match &**base {
                        Expr::Ref(Ref::Record | Ref::Config) | Expr::Dict(_) => DICT_METHODS,
                        Expr::List(_) | Expr::Tuple(_) => LIST_METHODS,
                        Expr::Const(Val::Str(_)) | Expr::FString(_) => STR_METHODS,
                        _ => &[],
                    };
                    if allowed.contains(&name.as_str()) || (allowed.is_empty() && is_method(name)) {
                        Ok(())
                    } else {
                        Err(format!("unknown method .{name}()"))
                    }
                }
                other => {
                    check(other, env)?;
                    match other {
                        Expr::Ref(Ref::Builtin(b)) if b.callable() => Ok(()),
                        _ => Err("only functions and methods can be called".into()),
                    }
                }
            }
        }
        Expr::Index(base, index) => {
            check(base, env)?;
            check(index, env)?;
            if let Expr::Const(Val::Str(k)) = &**index {
                match &**base {
                    Expr::Ref(Ref::Record) if !env.has(k) => {
                        return Err(format!(
                            "record['{k}']: stream {} has no property '{k}'",
                            env.stream
                        ))
                    }
                    Expr::Ref(Ref::Config) if !env.config_keys.iter().any(|c| c == &**k) => {
                        return Err(format!("config['{k}']: stream_map_config has no key '{k}'"))
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        Expr::Slice(base, parts) => {
            check(base, env)?;
            parts.iter_mut().flatten().try_for_each(|p| check(p, env))
        }
        Expr::Unary(_, a) => check(a, env),
        Expr::Bin(_, a, b) => {
            check(a, env)?;
            check(b, env)
        }
        Expr::Bool(_, items) => items.iter_mut().try_for_each(|i| check(i, env)),
        Expr::Compare(first, rest) => {
            check(first, env)?;
            let mut left: &Expr = first;
            for (op, right) in rest.iter_mut() {
                check(right, env)?;
                if matches!(op, CmpOp::Is | CmpOp::IsNot) {
                    let singleton = |x: &Expr| matches!(x, Expr::Const(Val::None | Val::Bool(_)));
                    if !singleton(left) && !singleton(right) {
                        return Err(
                            "'is' and 'is not' compare only with None, True or False".into()
                        );
                    }
                }
                left = right;
            }
            Ok(())
        }
        Expr::IfElse { test, body, orelse } => {
            check(test, env)?;
            check(body, env)?;
            check(orelse, env)
        }
    }
}

fn check_attr_name(name: &str) -> Result<(), String> {
    if name.starts_with('_') || name.starts_with("func_") {
        return Err(format!(
            "the attribute .{name} is refused (simpleeval refuses names starting with '_')"
        ));
    }
    if DISALLOWED.contains(&name) {
        return Err(format!("the method .{name}() is refused by simpleeval"));
    }
    Ok(())
}

/// Where an expression is evaluated: the record and the names around it.
pub trait Scope {
    /// A property of the record (`None` when the record lacks it).
    fn field(&self, name: &str) -> Option<Val>;
    /// The whole record, as a dict.
    fn record(&self) -> Val;
    fn config(&self) -> &Val;
    fn stream_name(&self) -> &str;
    fn original_stream_name(&self) -> &str;
    /// The property being computed.
    fn property(&self) -> Option<&str>;
}

pub type EResult = Result<Val, String>;

fn type_error<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(format!("TypeError: {}", msg.into()))
}

pub fn eval(e: &Expr, s: &dyn Scope) -> EResult {
    match e {
        Expr::Const(v) => Ok(v.clone()),
        Expr::Name(n) => Err(format!("NameNotDefined: {n}")),
        Expr::Ref(r) => Ok(match r {
            Ref::Field(name) => s.field(name).unwrap_or(Val::None),
            Ref::Record => s.record(),
            Ref::Config => s.config().clone(),
            Ref::StreamName => Val::str(s.stream_name()),
            Ref::OriginalStreamName => Val::str(s.original_stream_name()),
            Ref::SelfValue => s.property().and_then(|p| s.field(p)).unwrap_or(Val::None),
            Ref::Builtin(b) => Val::Builtin(*b),
        }),
        Expr::List(items) => Ok(Val::List(Arc::new(
            items.iter().map(|i| eval(i, s)).collect::<Result<_, _>>()?,
        ))),
        Expr::Tuple(items) => Ok(Val::Tuple(Arc::new(
            items.iter().map(|i| eval(i, s)).collect::<Result<_, _>>()?,
        ))),
        Expr::Dict(items) => {
            let mut out: Vec<(Val, Val)> = Vec::with_capacity(items.len());
            for (k, v) in items {
                let (k, v) = (eval(k, s)?, eval(v, s)?);
                dict_set(&mut out, k, v)?;
            }
            Ok(Val::Dict(Arc::new(out)))
        }
        Expr::FString(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    FPart::Text(t) => out.push_str(t),
                    FPart::Value(v) => out.push_str(&eval(v, s)?.to_str()),
                }
            }
            Ok(Val::str(out))
        }
        Expr::Attr(base, name) => {
            // `record.x` reads the property without building the whole record.
            if let Expr::Ref(Ref::Record) = &**base {
                return s
                    .field(name)
                    .ok_or_else(|| format!("AttributeDoesNotExist: {name}"));
            }
            let b = eval(base, s)?;
            attr(b, name)
        }
        Expr::Call(func, args, kwargs) => {
            let argv = args
                .iter()
                .map(|a| eval(a, s))
                .collect::<Result<Vec<_>, _>>()?;
            let kw = kwargs
                .iter()
                .map(|(k, v)| Ok((k.as_str(), eval(v, s)?)))
                .collect::<Result<Vec<_>, String>>()?;
            match &**func {
                Expr::Ref(Ref::Builtin(b)) => call_builtin(*b, argv, kw),
                Expr::Attr(base, name) => {
                    if let (Expr::Ref(Ref::Record), "get") = (&**base, name.as_str()) {
                        let key = argv.first().cloned().unwrap_or(Val::None);
                        let default = argv.get(1).cloned().unwrap_or(Val::None);
                        return Ok(match key {
                            Val::Str(k) => s.field(&k).unwrap_or(default),
                            _ => default,
                        });
                    }
                    let recv = eval(base, s)?;
                    method(recv, name, argv, kw)
                }
                other => match eval(other, s)? {
                    Val::Builtin(b) => call_builtin(b, argv, kw),
                    Val::Method(recv, name) => method(*recv, &name, argv, kw),
                    v => type_error(format!("'{}' object is not callable", v.type_name())),
                },
            }
        }
        Expr::Index(base, index) => {
            let k = eval(index, s)?;
            if let Expr::Ref(Ref::Record) = &**base {
                if let Val::Str(name) = &k {
                    return s
                        .field(name)
                        .ok_or_else(|| format!("KeyError: {}", k.repr()));
                }
            }
            subscript(eval(base, s)?, k)
        }
        Expr::Slice(base, parts) => {
            let b = eval(base, s)?;
            let mut idx = [None, None, None];
            for (i, p) in parts.iter().enumerate() {
                if let Some(p) = p {
                    idx[i] = match eval(p, s)? {
                        Val::None => None,
                        Val::Int(i) => Some(i),
                        Val::Bool(b) => Some(b as i64),
                        v => {
                            return type_error(format!(
                                "slice indices must be integers or None, not {}",
                                v.type_name()
                            ))
                        }
                    };
                }
            }
            slice(b, idx)
        }
        Expr::Unary(op, a) => {
            let v = eval(a, s)?;
            match (op, v) {
                (UnOp::Not, v) => Ok(Val::Bool(!v.truthy())),
                (UnOp::Neg, Val::Int(i)) => i.checked_neg().map(Val::Int).ok_or_else(overflow),
                (UnOp::Neg, Val::Bool(b)) => Ok(Val::Int(-(b as i64))),
                (UnOp::Neg, Val::Float(f)) => Ok(Val::Float(-f)),
                (UnOp::Neg, Val::TimeDelta(t)) => Ok(Val::TimeDelta(TimeDelta(-t.0))),
                (UnOp::Pos, v @ (Val::Int(_) | Val::Float(_) | Val::TimeDelta(_))) => Ok(v),
                (UnOp::Pos, Val::Bool(b)) => Ok(Val::Int(b as i64)),
                (op, v) => type_error(format!(
                    "bad operand type for unary {}: '{}'",
                    if *op == UnOp::Neg { "-" } else { "+" },
                    v.type_name()
                )),
            }
        }
        Expr::Bin(op, a, b) => binop(*op, eval(a, s)?, eval(b, s)?),
        Expr::Bool(is_and, items) => {
            let mut last = Val::Bool(false);
            for i in items {
                last = eval(i, s)?;
                if last.truthy() != *is_and {
                    break;
                }
            }
            Ok(last)
        }
        Expr::Compare(first, rest) => {
            let mut right = eval(first, s)?;
            for (op, next) in rest {
                let left = right;
                right = eval(next, s)?;
                if !compare(*op, &left, &right)? {
                    return Ok(Val::Bool(false));
                }
            }
            Ok(Val::Bool(true))
        }
        Expr::IfElse { test, body, orelse } => {
            if eval(test, s)?.truthy() {
                eval(body, s)
            } else {
                eval(orelse, s)
            }
        }
    }
}

fn overflow() -> String {
    "OverflowError: integer beyond 64 bits".into()
}

fn dict_set(d: &mut Vec<(Val, Val)>, k: Val, v: Val) -> Result<(), String> {
    if matches!(k, Val::List(_) | Val::Dict(_)) {
        return type_error(format!("unhashable type: '{}'", k.type_name()));
    }
    match d.iter_mut().find(|(x, _)| eq(x, &k)) {
        Some(slot) => slot.1 = v,
        None => d.push((k, v)),
    }
    Ok(())
}

fn dict_get<'d>(d: &'d [(Val, Val)], k: &Val) -> Option<&'d Val> {
    d.iter().find(|(x, _)| eq(x, k)).map(|(_, v)| v)
}

fn attr(b: Val, name: &str) -> EResult {
    let dt_attr = |d: &DateTime| -> Option<Val> {
        use chrono::{Datelike, Timelike};
        Some(Val::Int(match name {
            "year" => d.local.year() as i64,
            "month" => d.local.month() as i64,
            "day" => d.local.day() as i64,
            "hour" => d.local.hour() as i64,
            "minute" => d.local.minute() as i64,
            "second" => d.local.second() as i64,
            "microsecond" => d.micro() as i64,
            "tzinfo" => return Some(d.offset.map(Val::Tz).unwrap_or(Val::None)),
            _ => return None,
        }))
    };
    let found = match &b {
        Val::DateTime(d) => dt_attr(d),
        Val::Date(d) => {
            use chrono::Datelike;
            match name {
                "year" => Some(Val::Int(d.0.year() as i64)),
                "month" => Some(Val::Int(d.0.month() as i64)),
                "day" => Some(Val::Int(d.0.day() as i64)),
                _ => None,
            }
        }
        Val::TimeDelta(t) => {
            let (d, sec, us) = t.parts();
            match name {
                "days" => Some(Val::Int(d)),
                "seconds" => Some(Val::Int(sec)),
                "microseconds" => Some(Val::Int(us)),
                _ => None,
            }
        }
        // simpleeval falls back to `x[name]` when `x` has no such attribute.
        Val::Dict(d) => dict_get(d, &Val::str(name)).cloned(),
        _ => None,
    };
    match found {
        Some(v) => Ok(v),
        None if is_method(name) => Ok(Val::Method(Box::new(b), name.into())),
        None if DATE_ATTRS.contains(&name) && !matches!(b, Val::Dict(_)) => Err(format!(
            "AttributeError: '{}' object has no attribute '{name}'",
            b.type_name()
        )),
        None => Err(format!("AttributeDoesNotExist: {name}")),
    }
}

fn int_index(i: &Val) -> Option<i64> {
    match i {
        Val::Int(i) => Some(*i),
        Val::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn subscript(b: Val, k: Val) -> EResult {
    match &b {
        Val::Dict(d) => dict_get(d, &k)
            .cloned()
            .ok_or_else(|| format!("KeyError: {}", k.repr())),
        Val::List(items) | Val::Tuple(items) => {
            let i = int_index(&k).ok_or_else(|| {
                format!(
                    "TypeError: {} indices must be integers or slices, not {}",
                    b.type_name(),
                    k.type_name()
                )
            })?;
            let at = if i < 0 { i + items.len() as i64 } else { i };
            items
                .get(usize::try_from(at).map_err(|_| index_error(&b))?)
                .cloned()
                .ok_or_else(|| index_error(&b))
        }
        Val::Str(st) => {
            let i = int_index(&k).ok_or_else(|| {
                format!(
                    "TypeError: string indices must be integers, not '{}'",
                    k.type_name()
                )
            })?;
            let n = st.chars().count() as i64;
            let at = if i < 0 { i + n } else { i };
            if at < 0 || at >= n {
                return Err(index_error(&b));
            }
            Ok(Val::str(
                st.chars().nth(at as usize).expect("in range").to_string(),
            ))
        }
        other => type_error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        )),
    }
}

fn index_error(b: &Val) -> String {
    let what = if matches!(b, Val::Str(_)) {
        "string"
    } else {
        b.type_name()
    };
    format!("IndexError: {what} index out of range")
}

/// Python's `slice.indices`: the positions a slice picks from `len` items.
fn slice_positions(len: i64, idx: [Option<i64>; 3]) -> Result<Vec<usize>, String> {
    let step = idx[2].unwrap_or(1);
    if step == 0 {
        return Err("ValueError: slice step cannot be zero".into());
    }
    let clamp = |v: Option<i64>, default: i64, lo: i64, hi: i64| -> i64 {
        match v {
            None => default,
            Some(v) if v < 0 => (v + len).max(lo),
            Some(v) => v.min(hi),
        }
    };
    let (start, stop) = if step > 0 {
        (clamp(idx[0], 0, 0, len), clamp(idx[1], len, 0, len))
    } else {
        (
            clamp(idx[0], len - 1, -1, len - 1),
            clamp(idx[1], -1, -1, len - 1),
        )
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        i += step;
    }
    Ok(out)
}

fn slice(b: Val, idx: [Option<i64>; 3]) -> EResult {
    match b {
        Val::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let pos = slice_positions(chars.len() as i64, idx)?;
            Ok(Val::str(
                pos.into_iter().map(|i| chars[i]).collect::<String>(),
            ))
        }
        Val::List(items) => {
            let pos = slice_positions(items.len() as i64, idx)?;
            Ok(Val::List(Arc::new(
                pos.into_iter().map(|i| items[i].clone()).collect(),
            )))
        }
        Val::Tuple(items) => {
            let pos = slice_positions(items.len() as i64, idx)?;
            Ok(Val::Tuple(Arc::new(
                pos.into_iter().map(|i| items[i].clone()).collect(),
            )))
        }
        other => type_error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        )),
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Val) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(*i)),
        Val::Bool(b) => Some(Num::I(*b as i64)),
        Val::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

const OP_SYMBOL: [(BinOp, &str); 7] = [
    (BinOp::Add, "+"),
    (BinOp::Sub, "-"),
    (BinOp::Mul, "*"),
    (BinOp::Div, "/"),
    (BinOp::FloorDiv, "//"),
    (BinOp::Mod, "%"),
    (BinOp::Pow, "** or pow()"),
];

fn unsupported(op: BinOp, a: &Val, b: &Val) -> EResult {
    if let (BinOp::Add, Val::Str(_)) = (op, a) {
        return type_error(format!(
            "can only concatenate str (not \"{}\") to str",
            b.type_name()
        ));
    }
    let sym = OP_SYMBOL
        .iter()
        .find(|(o, _)| *o == op)
        .map_or("?", |(_, s)| s);
    type_error(format!(
        "unsupported operand type(s) for {sym}: '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

fn repeat<T: Clone>(items: &[T], n: i64) -> Result<Vec<T>, String> {
    let n = n.max(0) as usize;
    if items.len().saturating_mul(n) > 100_000 {
        return Err("IterableTooLong: Sorry, I will not evalute something that long.".into());
    }
    Ok(items
        .iter()
        .cloned()
        .cycle()
        .take(items.len() * n)
        .collect())
}

fn binop(op: BinOp, a: Val, b: Val) -> EResult {
    if let (Some(x), Some(y)) = (num(&a), num(&b)) {
        return arith(op, x, y);
    }
    match (op, &a, &b) {
        (BinOp::Add, Val::Str(x), Val::Str(y)) => {
            if x.len() + y.len() > 100_000 {
                return Err("IterableTooLong: Sorry, adding those two together would make something too long.".into());
            }
            Ok(Val::str(format!("{x}{y}")))
        }
        (BinOp::Add, Val::List(x), Val::List(y)) => Ok(Val::List(Arc::new(
            x.iter().chain(y.iter()).cloned().collect(),
        ))),
        (BinOp::Add, Val::Tuple(x), Val::Tuple(y)) => Ok(Val::Tuple(Arc::new(
            x.iter().chain(y.iter()).cloned().collect(),
        ))),
        (BinOp::Mul, Val::Str(x), n) | (BinOp::Mul, n, Val::Str(x)) if int_index(n).is_some() => {
            let chars: Vec<char> = x.chars().collect();
            Ok(Val::str(
                repeat(&chars, int_index(n).unwrap_or(0))?
                    .into_iter()
                    .collect::<String>(),
            ))
        }
        (BinOp::Mul, Val::List(x), n) | (BinOp::Mul, n, Val::List(x)) if int_index(n).is_some() => {
            Ok(Val::List(Arc::new(repeat(x, int_index(n).unwrap_or(0))?)))
        }
        (BinOp::Mod, Val::Str(_), _) => {
            Err("'%' formatting of strings is not supported: use + or an f-string".into())
        }
        (BinOp::Add, Val::DateTime(d), Val::TimeDelta(t))
        | (BinOp::Add, Val::TimeDelta(t), Val::DateTime(d)) => Ok(Val::DateTime(d.add(*t)?)),
        (BinOp::Sub, Val::DateTime(d), Val::TimeDelta(t)) => {
            Ok(Val::DateTime(d.add(TimeDelta(-t.0))?))
        }
        (BinOp::Sub, Val::DateTime(x), Val::DateTime(y)) => Ok(Val::TimeDelta(x.sub(y)?)),
        (BinOp::Add, Val::Date(d), Val::TimeDelta(t))
        | (BinOp::Add, Val::TimeDelta(t), Val::Date(d)) => date_add(*d, t.0),
        (BinOp::Sub, Val::Date(d), Val::TimeDelta(t)) => date_add(*d, -t.0),
        (BinOp::Sub, Val::Date(x), Val::Date(y)) => Ok(Val::TimeDelta(TimeDelta(
            (x.0 - y.0).num_days() * 86_400_000_000,
        ))),
        (BinOp::Add, Val::TimeDelta(x), Val::TimeDelta(y)) => Ok(Val::TimeDelta(TimeDelta(
            x.0.checked_add(y.0).ok_or_else(overflow)?,
        ))),
        (BinOp::Sub, Val::TimeDelta(x), Val::TimeDelta(y)) => Ok(Val::TimeDelta(TimeDelta(
            x.0.checked_sub(y.0).ok_or_else(overflow)?,
        ))),
        (BinOp::Mul, Val::TimeDelta(t), n) | (BinOp::Mul, n, Val::TimeDelta(t))
            if num(n).is_some() =>
        {
            let f = as_f64(num(n).expect("checked"));
            Ok(Val::TimeDelta(TimeDelta((t.0 as f64 * f).round() as i64)))
        }
        (BinOp::Div, Val::TimeDelta(x), Val::TimeDelta(y)) => {
            if y.0 == 0 {
                return Err("ZeroDivisionError: division by zero".into());
            }
            Ok(Val::Float(x.0 as f64 / y.0 as f64))
        }
        (BinOp::Div, Val::TimeDelta(t), n) if num(&b).is_some() => {
            let f = as_f64(num(n).expect("checked"));
            if f == 0.0 {
                return Err("ZeroDivisionError: division by zero".into());
            }
            Ok(Val::TimeDelta(TimeDelta((t.0 as f64 / f).round() as i64)))
        }
        _ => unsupported(op, &a, &b),
    }
}

fn date_add(d: Date, micros: i64) -> EResult {
    let days = micros.div_euclid(86_400_000_000);
    d.0.checked_add_signed(chrono::Duration::days(days))
        .filter(|n| {
            use chrono::Datelike;
            (1..=9999).contains(&n.year())
        })
        .map(|n| Val::Date(Date(n)))
        .ok_or_else(|| "OverflowError: date value out of range".into())
}

fn arith(op: BinOp, x: Num, y: Num) -> EResult {
    let zero = || Err("ZeroDivisionError: division by zero".to_string());
    match (x, y) {
        (Num::I(a), Num::I(b)) => match op {
            BinOp::Add => a.checked_add(b).map(Val::Int).ok_or_else(overflow),
            BinOp::Sub => a.checked_sub(b).map(Val::Int).ok_or_else(overflow),
            BinOp::Mul => a.checked_mul(b).map(Val::Int).ok_or_else(overflow),
            BinOp::Div => {
                if b == 0 {
                    zero()
                } else {
                    Ok(Val::Float(a as f64 / b as f64))
                }
            }
            BinOp::FloorDiv => {
                if b == 0 {
                    zero()
                } else {
                    Ok(Val::Int(
                        a.div_euclid(b) - if b < 0 && a.rem_euclid(b) != 0 { 1 } else { 0 },
                    ))
                }
            }
            BinOp::Mod => {
                if b == 0 {
                    zero()
                } else {
                    let r = a % b;
                    Ok(Val::Int(if r != 0 && (r < 0) != (b < 0) {
                        r + b
                    } else {
                        r
                    }))
                }
            }
            BinOp::Pow => {
                if b.abs() > 4_000_000 || a.abs() > 4_000_000 {
                    return Err(format!(
                        "NumberTooHigh: Sorry! I don't want to evaluate {a} ** {b}"
                    ));
                }
                if b < 0 {
                    if a == 0 {
                        return zero();
                    }
                    return Ok(Val::Float((a as f64).powf(b as f64)));
                }
                a.checked_pow(u32::try_from(b).map_err(|_| overflow())?)
                    .map(Val::Int)
                    .ok_or_else(overflow)
            }
        },
        (x, y) => {
            let (a, b) = (as_f64(x), as_f64(y));
            Ok(Val::Float(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err("ZeroDivisionError: float division by zero".into());
                    }
                    a / b
                }
                BinOp::FloorDiv => {
                    if b == 0.0 {
                        return Err("ZeroDivisionError: float floor division by zero".into());
                    }
                    (a / b).floor()
                }
                BinOp::Mod => {
                    if b == 0.0 {
                        return Err("ZeroDivisionError: float modulo".into());
                    }
                    let r = a % b;
                    if r != 0.0 && (r < 0.0) != (b < 0.0) {
                        r + b
                    } else {
                        r
                    }
                }
                BinOp::Pow => {
                    if a.abs() > 4_000_000.0 || b.abs() > 4_000_000.0 {
                        return Err(format!(
                            "NumberTooHigh: Sorry! I don't want to evaluate {a} ** {b}"
                        ));
                    }
                    if a == 0.0 && b < 0.0 {
                        return Err(
                            "ZeroDivisionError: 0.0 cannot be raised to a negative power".into(),
                        );
                    }
                    a.powf(b)
                }
            }))
        }
    }
}

/// Python's `==`.
pub fn eq(a: &Val, b: &Val) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::I(p), Num::I(q)) => p == q,
            (x, y) => as_f64(x) == as_f64(y),
        };
    }
    match (a, b) {
        (Val::None, Val::None) => true,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) | (Val::Tuple(x), Val::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| eq(p, q))
        }
        (Val::Dict(x), Val::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| dict_get(y, k).is_some_and(|w| eq(v, w)))
        }
        (Val::DateTime(x), Val::DateTime(y)) => {
            x.offset.is_some() == y.offset.is_some() && x.utc() == y.utc()
        }
        (Val::Date(x), Val::Date(y)) => x == y,
        (Val::TimeDelta(x), Val::TimeDelta(y)) => x == y,
        (Val::Tz(x), Val::Tz(y)) => x == y,
        (Val::Builtin(x), Val::Builtin(y)) => x == y,
        _ => false,
    }
}

fn order(a: &Val, b: &Val, sym: &str) -> Result<Option<Ordering>, String> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(match (x, y) {
            (Num::I(p), Num::I(q)) => Some(p.cmp(&q)),
            (x, y) => as_f64(x).partial_cmp(&as_f64(y)),
        });
    }
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(Some(x.cmp(y))),
        (Val::List(x), Val::List(y)) | (Val::Tuple(x), Val::Tuple(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                if !eq(p, q) {
                    return order(p, q, sym);
                }
            }
            Ok(Some(x.len().cmp(&y.len())))
        }
        (Val::DateTime(x), Val::DateTime(y)) => x
            .compare(y)
            .map(Some)
            .map_err(|e| format!("TypeError: {e}")),
        (Val::Date(x), Val::Date(y)) => Ok(Some(x.cmp(y))),
        (Val::TimeDelta(x), Val::TimeDelta(y)) => Ok(Some(x.cmp(y))),
        _ => type_error(format!(
            "'{sym}' not supported between instances of '{}' and '{}'",
            a.type_name(),
            b.type_name()
        )),
    }
}

fn contains(container: &Val, item: &Val) -> Result<bool, String> {
    match container {
        Val::Str(s) => match item {
            Val::Str(x) => Ok(s.contains(&**x)),
            other => type_error(format!(
                "'in <string>' requires string as left operand, not {}",
                other.type_name()
            )),
        },
        Val::List(items) | Val::Tuple(items) => Ok(items.iter().any(|v| eq(v, item))),
        Val::Dict(d) => Ok(dict_get(d, item).is_some()),
        other => type_error(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        )),
    }
}

fn compare(op: CmpOp, a: &Val, b: &Val) -> Result<bool, String> {
    use Ordering::*;
    Ok(match op {
        CmpOp::Eq => eq(a, b),
        CmpOp::NotEq => !eq(a, b),
        CmpOp::Lt => order(a, b, "<")? == Some(Less),
        CmpOp::LtE => matches!(order(a, b, "<=")?, Some(Less | Equal)),
        CmpOp::Gt => order(a, b, ">")? == Some(Greater),
        CmpOp::GtE => matches!(order(a, b, ">=")?, Some(Greater | Equal)),
        CmpOp::In => contains(b, a)?,
        CmpOp::NotIn => !contains(b, a)?,
        CmpOp::Is => same(a, b),
        CmpOp::IsNot => !same(a, b),
    })
}

/// `is`, for the singletons `check` allows it with.
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::None, Val::None) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        _ => false,
    }
}

fn arg<'v>(args: &'v [Val], kw: &'v [(&str, Val)], i: usize, name: &str) -> Option<&'v Val> {
    kw.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .or_else(|| args.get(i))
}

fn arity(
    name: &str,
    args: &[Val],
    kw: &[(&str, Val)],
    max: usize,
    kwnames: &[&str],
) -> Result<(), String> {
    if args.len() > max {
        return type_error(format!(
            "{name}() takes at most {max} arguments ({} given)",
            args.len()
        ));
    }
    if let Some((k, _)) = kw.iter().find(|(k, _)| !kwnames.contains(k)) {
        return type_error(format!("{name}() got an unexpected keyword argument '{k}'"));
    }
    Ok(())
}

fn need_str<'v>(v: Option<&'v Val>, what: &str) -> Result<&'v str, String> {
    match v {
        Some(Val::Str(s)) => Ok(s),
        Some(other) => type_error(format!("{what} must be str, not {}", other.type_name())),
        None => type_error(format!("{what}: missing argument")),
    }
}

fn need_int(v: Option<&Val>, what: &str, default: i64) -> Result<i64, String> {
    match v {
        None => Ok(default),
        Some(v) => int_index(v).ok_or_else(|| {
            format!(
                "TypeError: {what}: 'integer' argument expected, got {}",
                v.type_name()
            )
        }),
    }
}

fn tz_arg(v: Option<&Val>) -> Result<Option<i32>, String> {
    match v {
        None | Some(Val::None) => Ok(None),
        Some(Val::Tz(o)) => Ok(Some(*o)),
        Some(other) => type_error(format!(
            "tzinfo argument must be None or of a tzinfo subclass, not type '{}'",
            other.type_name()
        )),
    }
}

fn hexdigest<D: Digest>(text: &str) -> String {
    let digest = D::digest(text.as_bytes());
    let mut s = String::with_capacity(digest.len() * 2);
    for byte in digest {
        s.push(char::from_digit((byte >> 4) as u32, 16).expect("a nibble"));
        s.push(char::from_digit((byte & 15) as u32, 16).expect("a nibble"));
    }
    s
}

fn parse_py_int(text: &str, base: u32) -> Option<i64> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // Python takes the radix prefix that matches the base (`int('0x1f', 16)`).
    let prefix = match base {
        16 => ["0x", "0X"],
        8 => ["0o", "0O"],
        2 => ["0b", "0B"],
        _ => ["", ""],
    };
    let body = prefix
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| {
            body.strip_prefix(p)
                .map(|b| b.strip_prefix('_').unwrap_or(b))
        })
        .unwrap_or(body);
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let digits: String = body.chars().filter(|c| *c != '_').collect();
    let v = i64::from_str_radix(&digits, base).ok()?;
    Some(if neg { -v } else { v })
}

fn parse_py_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        let v = if unsigned == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if lower.starts_with('-') { -v } else { v });
    }
    if t.is_empty() || t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    if !cleaned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    cleaned.parse().ok()
}

fn iter_items(v: &Val, what: &str) -> Result<Vec<Val>, String> {
    match v {
        Val::List(items) | Val::Tuple(items) => Ok(items.to_vec()),
        Val::Str(s) => Ok(s.chars().map(|c| Val::str(c.to_string())).collect()),
        Val::Dict(d) => Ok(d.iter().map(|(k, _)| k.clone()).collect()),
        other => type_error(format!(
            "{what}: '{}' object is not iterable",
            other.type_name()
        )),
    }
}

fn call_builtin(b: Builtin, args: Vec<Val>, kw: Vec<(&str, Val)>) -> EResult {
    use Builtin::*;
    let name = b.name();
    match b {
        Md5 | Sha256 => {
            arity(name, &args, &kw, 1, &[])?;
            match args.first() {
                Some(Val::Str(s)) => Ok(Val::str(if b == Md5 {
                    hexdigest::<md5::Md5>(s)
                } else {
                    hexdigest::<sha2::Sha256>(s)
                })),
                Some(other) => Err(format!(
                    "AttributeError: '{}' object has no attribute 'encode' ({name}() takes a string; for a value that may be null write `{name}(x) if x else None`)",
                    other.type_name()
                )),
                None => type_error(format!("{name}() missing 1 required positional argument")),
            }
        }
        Int => {
            arity(name, &args, &kw, 2, &["base"])?;
            let base = arg(&args, &kw, 1, "base");
            match (args.first(), base) {
                (None, _) => Ok(Val::Int(0)),
                (Some(Val::Str(s)), b) => {
                    let base = need_int(b, "base", 10)?;
                    parse_py_int(s, base as u32).map(Val::Int).ok_or_else(|| {
                        format!("ValueError: invalid literal for int() with base {base}: {}", Val::Str(s.clone()).repr())
                    })
                }
                (Some(_), Some(_)) => type_error("int() can't convert non-string with explicit base"),
                (Some(Val::Int(i)), None) => Ok(Val::Int(*i)),
                (Some(Val::Bool(x)), None) => Ok(Val::Int(*x as i64)),
                (Some(Val::Float(f)), None) => {
                    if f.is_nan() {
                        Err("ValueError: cannot convert float NaN to integer".into())
                    } else if f.is_infinite() || f.abs() >= 9.2e18 {
                        Err("OverflowError: cannot convert float infinity to integer".into())
                    } else {
                        Ok(Val::Int(f.trunc() as i64))
                    }
                }
                (Some(other), None) => type_error(format!(
                    "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                    other.type_name()
                )),
            }
        }
        Float => {
            arity(name, &args, &kw, 1, &[])?;
            match args.first() {
                None => Ok(Val::Float(0.0)),
                Some(v) => match num(v) {
                    Some(n) => Ok(Val::Float(as_f64(n))),
                    None => match v {
                        Val::Str(s) => parse_py_float(s).map(Val::Float).ok_or_else(|| {
                            format!(
                                "ValueError: could not convert string to float: {}",
                                v.repr()
                            )
                        }),
                        other => type_error(format!(
                            "float() argument must be a string or a real number, not '{}'",
                            other.type_name()
                        )),
                    },
                },
            }
        }
        Str => {
            arity(name, &args, &kw, 1, &[])?;
            Ok(Val::str(args.first().map(Val::to_str).unwrap_or_default()))
        }
        Bool => {
            arity(name, &args, &kw, 1, &[])?;
            Ok(Val::Bool(args.first().is_some_and(Val::truthy)))
        }
        List | Tuple => {
            arity(name, &args, &kw, 1, &[])?;
            let items = match args.first() {
                None => Vec::new(),
                Some(v) => iter_items(v, name)?,
            };
            Ok(if b == List {
                Val::List(Arc::new(items))
            } else {
                Val::Tuple(Arc::new(items))
            })
        }
        Dict => {
            if args.len() > 1 {
                return type_error(format!(
                    "dict expected at most 1 argument, got {}",
                    args.len()
                ));
            }
            let mut out: Vec<(Val, Val)> = Vec::new();
            match args.first() {
                None => {}
                Some(Val::Dict(d)) => out = d.to_vec(),
                Some(v) => {
                    for pair in iter_items(v, "dict")? {
                        match pair {
                            Val::List(p) | Val::Tuple(p) if p.len() == 2 => {
                                dict_set(&mut out, p[0].clone(), p[1].clone())?
                            }
                            _ => {
                                return Err(
                                    "ValueError: dictionary update sequence element has the wrong length"
                                        .into(),
                                )
                            }
                        }
                    }
                }
            }
            for (k, v) in kw {
                dict_set(&mut out, Val::str(k), v)?;
            }
            Ok(Val::Dict(Arc::new(out)))
        }
        JsonDumps => {
            arity(name, &args, &kw, 1, &[])?;
            let mut s = String::new();
            py_json(args.first().unwrap_or(&Val::None), false, &mut s)
                .map_err(|e| format!("TypeError: {e}"))?;
            Ok(Val::str(s))
        }
        JsonLoads => {
            arity(name, &args, &kw, 1, &[])?;
            let text = need_str(args.first(), "the JSON object")?;
            serde_json::from_str::<serde_json::Value>(text)
                .map(|v| Val::from_json(&v))
                .map_err(|e| format!("JSONDecodeError: {e}"))
        }
        DatetimeClass => {
            const NAMES: [&str; 8] = [
                "year",
                "month",
                "day",
                "hour",
                "minute",
                "second",
                "microsecond",
                "tzinfo",
            ];
            arity(name, &args, &kw, 8, &NAMES)?;
            let mut v = [0i64; 7];
            for (i, n) in NAMES[..7].iter().enumerate() {
                match arg(&args, &kw, i, n) {
                    Some(x) => v[i] = need_int(Some(x), n, 0)?,
                    None if i < 3 => {
                        return type_error(format!("function missing required argument '{n}'"))
                    }
                    None => {}
                }
            }
            let tz = tz_arg(arg(&args, &kw, 7, "tzinfo"))?;
            Ok(Val::DateTime(
                DateTime::new(v[0], v[1], v[2], v[3], v[4], v[5], v[6], tz)
                    .map_err(|e| format!("ValueError: {e}"))?,
            ))
        }
        DateClass => {
            arity(name, &args, &kw, 3, &["year", "month", "day"])?;
            let mut v = [0i64; 3];
            for (i, n) in ["year", "month", "day"].iter().enumerate() {
                v[i] = need_int(
                    Some(arg(&args, &kw, i, n).ok_or_else(|| {
                        format!("TypeError: function missing required argument '{n}'")
                    })?),
                    n,
                    0,
                )?;
            }
            Ok(Val::Date(
                Date::new(v[0], v[1], v[2]).map_err(|e| format!("ValueError: {e}"))?,
            ))
        }
        TimedeltaClass => {
            const NAMES: [(&str, f64); 7] = [
                ("days", 86_400e6),
                ("seconds", 1e6),
                ("microseconds", 1.0),
                ("milliseconds", 1e3),
                ("minutes", 60e6),
                ("hours", 3600e6),
                ("weeks", 604_800e6),
            ];
            arity(name, &args, &kw, 7, &NAMES.map(|(n, _)| n))?;
            let mut micros = 0f64;
            for (i, (n, scale)) in NAMES.iter().enumerate() {
                if let Some(v) = arg(&args, &kw, i, n) {
                    let x = num(v).ok_or_else(|| {
                        format!(
                            "TypeError: unsupported type for timedelta {n} component: {}",
                            v.type_name()
                        )
                    })?;
                    micros += as_f64(x) * scale;
                }
            }
            if micros.abs() > 8.64e19 {
                return Err("OverflowError: days beyond 999999999".into());
            }
            Ok(Val::TimeDelta(TimeDelta(micros.round() as i64)))
        }
        TimezoneClass => {
            arity(name, &args, &kw, 1, &["offset"])?;
            match arg(&args, &kw, 0, "offset") {
                Some(Val::TimeDelta(t)) if t.0 % 1_000_000 == 0 && t.0.abs() < 86_400_000_000 => {
                    Ok(Val::Tz((t.0 / 1_000_000) as i32))
                }
                Some(Val::TimeDelta(_)) => Err("ValueError: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)".into()),
                _ => type_error("timezone() argument 1 must be datetime.timedelta"),
            }
        }
        DtFromIsoformat => {
            arity(name, &args, &kw, 1, &[])?;
            let s = need_str(args.first(), "fromisoformat: argument")?;
            DateTime::fromisoformat(s)
                .map(Val::DateTime)
                .map_err(|e| format!("ValueError: {e}"))
        }
        DateFromIsoformat => {
            arity(name, &args, &kw, 1, &[])?;
            let s = need_str(args.first(), "fromisoformat: argument")?;
            Date::fromisoformat(s)
                .map(Val::Date)
                .map_err(|e| format!("ValueError: {e}"))
        }
        DtNow => {
            arity(name, &args, &kw, 1, &["tz"])?;
            Ok(Val::DateTime(DateTime::now(tz_arg(arg(
                &args, &kw, 0, "tz",
            ))?)))
        }
        DtUtcnow => {
            arity(name, &args, &kw, 0, &[])?;
            Ok(Val::DateTime(DateTime::utcnow()))
        }
        DateToday => {
            arity(name, &args, &kw, 0, &[])?;
            Ok(Val::Date(Date::today()))
        }
        DtStrptime => {
            arity(name, &args, &kw, 2, &[])?;
            let s = need_str(args.first(), "strptime() argument 1")?;
            let f = need_str(args.get(1), "strptime() argument 2")?;
            DateTime::strptime(s, f)
                .map(Val::DateTime)
                .map_err(|e| format!("ValueError: {e}"))
        }
        DtFromTimestamp | DtUtcFromTimestamp | DateFromTimestamp => {
            arity(name, &args, &kw, 2, &["tz"])?;
            let ts = args.first().and_then(num).map(as_f64).ok_or_else(|| {
                "TypeError: an integer or float is required (got a non-number)".to_string()
            })?;
            let tz = if b == DtUtcFromTimestamp {
                Some(0)
            } else {
                tz_arg(arg(&args, &kw, 1, "tz"))?
            };
            let d = DateTime::from_timestamp(ts, tz).map_err(|e| format!("OverflowError: {e}"))?;
            Ok(match b {
                DateFromTimestamp => Val::Date(d.date()),
                DtUtcFromTimestamp => Val::DateTime(DateTime { offset: None, ..d }),
                _ => Val::DateTime(d),
            })
        }
        DatetimeModule | JsonModule => {
            type_error(format!("'module' object {name} is not callable"))
        }
    }
}

fn str_arg<'v>(args: &'v [Val], i: usize, method: &str) -> Result<Option<&'v str>, String> {
    match args.get(i) {
        None | Some(Val::None) => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s)),
        Some(other) => type_error(format!(
            "{method}() argument {} must be str or None, not {}",
            i + 1,
            other.type_name()
        )),
    }
}

fn strs(v: Vec<String>) -> Val {
    Val::List(Arc::new(v.into_iter().map(Val::str).collect()))
}

fn split_ws(s: &str, maxsplit: i64, from_right: bool) -> Vec<String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if maxsplit < 0 || (maxsplit as usize) >= words.len() {
        return words.into_iter().map(String::from).collect();
    }
    let n = maxsplit as usize;
    if from_right {
        // The last n words split off; the rest stays one piece, trimmed at its start.
        let mut cut = s.trim_end();
        let mut tail = Vec::new();
        for _ in 0..n {
            let at = cut.rfind(char::is_whitespace).unwrap_or(0);
            tail.push(cut[at..].trim_start().to_string());
            cut = cut[..at].trim_end();
        }
        let mut out = vec![cut.trim_start().to_string()];
        out.extend(tail.into_iter().rev());
        out
    } else {
        let mut rest = s.trim_start();
        let mut out = Vec::new();
        for _ in 0..n {
            let at = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..at].to_string());
            rest = rest[at..].trim_start();
        }
        out.push(rest.to_string());
        out
    }
}

fn python_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

fn method(recv: Val, name: &str, args: Vec<Val>, kw: Vec<(&str, Val)>) -> EResult {
    match &recv {
        Val::Str(s) => str_method(s, name, &args, &kw),
        Val::Dict(d) => {
            arity(name, &args, &kw, 2, &[])?;
            match name {
                "get" => Ok(args
                    .first()
                    .and_then(|k| dict_get(d, k))
                    .cloned()
                    .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Val::None))),
                "keys" => Ok(Val::List(Arc::new(
                    d.iter().map(|(k, _)| k.clone()).collect(),
                ))),
                "values" => Ok(Val::List(Arc::new(
                    d.iter().map(|(_, v)| v.clone()).collect(),
                ))),
                "items" => Ok(Val::List(Arc::new(
                    d.iter()
                        .map(|(k, v)| Val::Tuple(Arc::new(vec![k.clone(), v.clone()])))
                        .collect(),
                ))),
                _ => no_attr(&recv, name),
            }
        }
        Val::List(items) | Val::Tuple(items) => {
            arity(name, &args, &kw, 1, &[])?;
            let x = args.first().cloned().unwrap_or(Val::None);
            match name {
                "count" => Ok(Val::Int(items.iter().filter(|v| eq(v, &x)).count() as i64)),
                "index" => items
                    .iter()
                    .position(|v| eq(v, &x))
                    .map(|i| Val::Int(i as i64))
                    .ok_or_else(|| {
                        format!("ValueError: {} is not in {}", x.repr(), recv.type_name())
                    }),
                _ => no_attr(&recv, name),
            }
        }
        Val::DateTime(d) => datetime_method(d, name, &args, &kw),
        Val::Date(d) => {
            let dt = DateTime {
                local: d.0.and_time(chrono::NaiveTime::MIN),
                offset: None,
            };
            match name {
                "isoformat" => Ok(Val::str(d.isoformat())),
                "replace" => {
                    arity(name, &args, &kw, 3, &["year", "month", "day"])?;
                    use chrono::Datelike;
                    let y = need_int(arg(&args, &kw, 0, "year"), "year", d.0.year() as i64)?;
                    let m = need_int(arg(&args, &kw, 1, "month"), "month", d.0.month() as i64)?;
                    let day = need_int(arg(&args, &kw, 2, "day"), "day", d.0.day() as i64)?;
                    Ok(Val::Date(
                        Date::new(y, m, day).map_err(|e| format!("ValueError: {e}"))?,
                    ))
                }
                "strftime" | "weekday" | "isoweekday" => datetime_method(&dt, name, &args, &kw),
                _ => no_attr(&recv, name),
            }
        }
        Val::TimeDelta(t) if name == "total_seconds" => {
            arity(name, &args, &kw, 0, &[])?;
            Ok(Val::Float(t.total_seconds()))
        }
        Val::Tz(o) if name == "utcoffset" => Ok(Val::TimeDelta(TimeDelta(*o as i64 * 1_000_000))),
        _ => no_attr(&recv, name),
    }
}

fn no_attr(recv: &Val, name: &str) -> EResult {
    Err(format!(
        "AttributeDoesNotExist: '{}' object has no attribute '{name}'",
        recv.type_name()
    ))
}

fn datetime_method(d: &DateTime, name: &str, args: &[Val], kw: &[(&str, Val)]) -> EResult {
    use chrono::{Datelike, Timelike};
    match name {
        "isoformat" => {
            arity(name, args, kw, 2, &["sep", "timespec"])?;
            let sep = match arg(args, kw, 0, "sep") {
                None => 'T',
                Some(Val::Str(s)) if s.chars().count() == 1 => s.chars().next().unwrap_or('T'),
                Some(_) => return type_error("isoformat() argument 1 must be a unicode character"),
            };
            match arg(args, kw, 1, "timespec") {
                None => {}
                Some(Val::Str(s)) if &**s == "auto" => {}
                Some(_) => return Err("isoformat(timespec=...) is not supported".into()),
            }
            Ok(Val::str(d.isoformat(sep)))
        }
        "strftime" => {
            arity(name, args, kw, 1, &[])?;
            let f = need_str(args.first(), "strftime() argument 1")?;
            Ok(Val::str(strftime(d.local, d.offset, f)))
        }
        "date" => Ok(Val::Date(d.date())),
        "timestamp" => Ok(Val::Float(d.timestamp())),
        "weekday" => Ok(Val::Int(d.local.weekday().num_days_from_monday() as i64)),
        "isoweekday" => Ok(Val::Int(d.local.weekday().number_from_monday() as i64)),
        "utcoffset" => Ok(d
            .offset
            .map(|o| Val::TimeDelta(TimeDelta(o as i64 * 1_000_000)))
            .unwrap_or(Val::None)),
        "astimezone" => {
            arity(name, args, kw, 1, &["tz"])?;
            match tz_arg(arg(args, kw, 0, "tz"))? {
                Some(o) => Ok(Val::DateTime(d.astimezone(o)?)),
                None => Err("astimezone() without a time zone (the machine's) is not supported: pass datetime.timezone.utc".into()),
            }
        }
        "replace" => {
            const NAMES: [&str; 8] = [
                "year",
                "month",
                "day",
                "hour",
                "minute",
                "second",
                "microsecond",
                "tzinfo",
            ];
            arity(name, args, kw, 8, &NAMES)?;
            let l = &d.local;
            let cur = [
                l.year() as i64,
                l.month() as i64,
                l.day() as i64,
                l.hour() as i64,
                l.minute() as i64,
                l.second() as i64,
                d.micro() as i64,
            ];
            let mut v = cur;
            for (i, n) in NAMES[..7].iter().enumerate() {
                v[i] = need_int(arg(args, kw, i, n), n, cur[i])?;
            }
            let tz = match arg(args, kw, 7, "tzinfo") {
                None => d.offset,
                some => tz_arg(some)?,
            };
            Ok(Val::DateTime(
                DateTime::new(v[0], v[1], v[2], v[3], v[4], v[5], v[6], tz)
                    .map_err(|e| format!("ValueError: {e}"))?,
            ))
        }
        _ => no_attr(&Val::DateTime(*d), name),
    }
}

fn str_method(s: &Arc<str>, name: &str, args: &[Val], kw: &[(&str, Val)]) -> EResult {
    let s: &str = s;
    let one = |v: String| Ok(Val::str(v));
    match name {
        "upper" => one(s.to_uppercase()),
        "lower" => one(s.to_lowercase()),
        "casefold" => one(s.to_lowercase()),
        "swapcase" => one(s
            .chars()
            .flat_map(|c| -> Vec<char> {
                if c.is_uppercase() {
                    c.to_lowercase().collect()
                } else {
                    c.to_uppercase().collect()
                }
            })
            .collect()),
        "title" => one(python_title(s)),
        "capitalize" => {
            let mut c = s.chars();
            one(match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.as_str().to_lowercase().chars())
                    .collect(),
                None => String::new(),
            })
        }
        "strip" | "lstrip" | "rstrip" => {
            arity(name, args, kw, 1, &[])?;
            let chars: Option<Vec<char>> = str_arg(args, 0, name)?.map(|c| c.chars().collect());
            let pred = |c: char| match &chars {
                Some(set) => set.contains(&c),
                None => c.is_whitespace(),
            };
            one(match name {
                "strip" => s.trim_matches(pred),
                "lstrip" => s.trim_start_matches(pred),
                _ => s.trim_end_matches(pred),
            }
            .to_string())
        }
        "replace" => {
            arity(name, args, kw, 3, &["count"])?;
            let old = need_str(args.first(), "replace() argument 1")?;
            let new = need_str(args.get(1), "replace() argument 2")?;
            let count = need_int(arg(args, kw, 2, "count"), "count", -1)?;
            if count < 0 {
                one(s.replace(old, new))
            } else {
                one(s.replacen(old, new, count as usize))
            }
        }
        "startswith" | "endswith" => {
            arity(name, args, kw, 1, &[])?;
            let test = |p: &str| {
                if name == "startswith" {
                    s.starts_with(p)
                } else {
                    s.ends_with(p)
                }
            };
            match args.first() {
                Some(Val::Str(p)) => Ok(Val::Bool(test(p))),
                Some(Val::Tuple(ps)) => {
                    let mut any = false;
                    for p in ps.iter() {
                        any |= test(need_str(Some(p), "tuple for startswith")?);
                    }
                    Ok(Val::Bool(any))
                }
                other => type_error(format!(
                    "{name} first arg must be str or a tuple of str, not {}",
                    other.map_or("nothing", Val::type_name)
                )),
            }
        }
        "split" | "rsplit" => {
            arity(name, args, kw, 2, &["sep", "maxsplit"])?;
            let sep = match arg(args, kw, 0, "sep") {
                None | Some(Val::None) => None,
                Some(Val::Str(p)) if p.is_empty() => {
                    return Err("ValueError: empty separator".into())
                }
                Some(Val::Str(p)) => Some(p.to_string()),
                Some(o) => {
                    return type_error(format!("must be str or None, not {}", o.type_name()))
                }
            };
            let max = need_int(arg(args, kw, 1, "maxsplit"), "maxsplit", -1)?;
            let parts: Vec<String> = match (&sep, max < 0, name == "split") {
                (None, _, left) => split_ws(s, max, !left),
                (Some(p), true, _) => s.split(p.as_str()).map(String::from).collect(),
                (Some(p), false, true) => s
                    .splitn(max as usize + 1, p.as_str())
                    .map(String::from)
                    .collect(),
                (Some(p), false, false) => {
                    let mut v: Vec<String> = s
                        .rsplitn(max as usize + 1, p.as_str())
                        .map(String::from)
                        .collect();
                    v.reverse();
                    v
                }
            };
            Ok(strs(parts))
        }
        "splitlines" => Ok(strs(s.lines().map(String::from).collect())),
        "join" => {
            arity(name, args, kw, 1, &[])?;
            let items = iter_items(
                args.first().unwrap_or(&Val::None),
                "can only join an iterable",
            )?;
            let mut out = String::new();
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(s);
                }
                match it {
                    Val::Str(x) => out.push_str(x),
                    other => {
                        return type_error(format!(
                            "sequence item {i}: expected str instance, {} found",
                            other.type_name()
                        ))
                    }
                }
            }
            one(out)
        }
        "find" | "rfind" | "index" | "rindex" | "count" => {
            arity(name, args, kw, 1, &[])?;
            let sub = need_str(args.first(), &format!("{name}() argument"))?;
            if name == "count" {
                let n = if sub.is_empty() {
                    s.chars().count() + 1
                } else {
                    s.matches(sub).count()
                };
                return Ok(Val::Int(n as i64));
            }
            let found = if name.starts_with('r') {
                s.rfind(sub)
            } else {
                s.find(sub)
            };
            match found {
                Some(byte) => Ok(Val::Int(s[..byte].chars().count() as i64)),
                None if name.ends_with("find") => Ok(Val::Int(-1)),
                None => Err("ValueError: substring not found".into()),
            }
        }
        "isdigit" | "isnumeric" | "isdecimal" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(|c| c.is_numeric()),
        )),
        "isalpha" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_alphabetic),
        )),
        "isalnum" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_alphanumeric),
        )),
        "isspace" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_whitespace),
        )),
        "islower" => Ok(Val::Bool(
            s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase),
        )),
        "isupper" => Ok(Val::Bool(
            s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase),
        )),
        "zfill" => {
            let width = need_int(args.first(), "zfill", 0)?.max(0) as usize;
            let n = s.chars().count();
            if n >= width {
                return one(s.to_string());
            }
            let (sign, body) = match s.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                _ => (String::new(), s),
            };
            one(format!("{sign}{}{body}", "0".repeat(width - n)))
        }
        "center" | "ljust" | "rjust" => {
            let width = need_int(args.first(), name, 0)?.max(0) as usize;
            let fill = match args.get(1) {
                None => ' ',
                Some(Val::Str(f)) if f.chars().count() == 1 => f.chars().next().unwrap_or(' '),
                Some(_) => {
                    return type_error("The fill character must be exactly one character long")
                }
            };
            let n = s.chars().count();
            if n >= width {
                return one(s.to_string());
            }
            let pad = width - n;
            let (left, right) = match name {
                "ljust" => (0, pad),
                "rjust" => (pad, 0),
                _ => {
                    let left = pad / 2 + (pad & width & 1);
                    (left, pad - left)
                }
            };
            let f = fill.to_string();
            one(format!("{}{s}{}", f.repeat(left), f.repeat(right)))
        }
        "removeprefix" => {
            let p = need_str(args.first(), "removeprefix() argument")?;
            one(s.strip_prefix(p).unwrap_or(s).to_string())
        }
        "removesuffix" => {
            let p = need_str(args.first(), "removesuffix() argument")?;
            one(s.strip_suffix(p).unwrap_or(s).to_string())
        }
        "partition" | "rpartition" => {
            let sep = need_str(args.first(), &format!("{name}() argument"))?;
            if sep.is_empty() {
                return Err("ValueError: empty separator".into());
            }
            let found = if name == "partition" {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep, &s[i + sep.len()..]],
                None if name == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            Ok(Val::Tuple(Arc::new(
                parts.iter().map(|p| Val::str(*p)).collect(),
            )))
        }
        _ => no_attr(&Val::str(s), name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::expr::parse;

    struct Rec(Vec<(&'static str, Val)>);

    impl Scope for Rec {
        fn field(&self, name: &str) -> Option<Val> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
        fn record(&self) -> Val {
            Val::Dict(Arc::new(
                self.0
                    .iter()
                    .map(|(k, v)| (Val::str(*k), v.clone()))
                    .collect(),
            ))
        }
        fn config(&self) -> &Val {
            static EMPTY: std::sync::OnceLock<Val> = std::sync::OnceLock::new();
            EMPTY.get_or_init(|| Val::Dict(Arc::new(vec![(Val::str("salt"), Val::str("s"))])))
        }
        fn stream_name(&self) -> &str {
            "tickets"
        }
        fn original_stream_name(&self) -> &str {
            "tickets"
        }
        fn property(&self) -> Option<&str> {
            Some("email")
        }
    }

    fn rec() -> Rec {
        Rec(vec![
            ("id", Val::str("a1")),
            ("email", Val::str("Foo@Example.com")),
            ("n", Val::Int(3)),
            ("f", Val::Float(1.5)),
            ("none", Val::None),
            (
                "tags",
                Val::List(Arc::new(vec![Val::str("t1"), Val::str("t2")])),
            ),
            ("updatedAt", Val::str("2024-05-01T10:00:00.000Z")),
        ])
    }

    fn props() -> Vec<String> {
        ["id", "email", "n", "f", "none", "tags", "updatedAt"]
            .map(String::from)
            .to_vec()
    }

    fn run(src: &str) -> Result<String, String> {
        let mut e = parse(src).map_err(|e| e.0)?;
        let p = props();
        let keys = vec!["salt".to_string()];
        check(
            &mut e,
            &CheckEnv {
                properties: &p,
                stream: "tickets",
                config_keys: &keys,
                property: Some("email"),
            },
        )?;
        let v = eval(&e, &rec())?;
        let mut out = Vec::new();
        crate::maps::value::write_json(&v, &mut out);
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn values_match_the_sdk() {
        // Expected values: what meltano-map-transform 0.12.3 (singer-sdk 0.54.9) wrote.
        for (src, want) in [
            ("md5(email)", r#""440068bee91299137007379cc7eb87c3""#),
            (
                "sha256(email)",
                r#""77102dd8453477b956bcc8d952afad4491010d7d62418a6cc51ead08afe92f5e""#,
            ),
            ("record.get('email')", r#""Foo@Example.com""#),
            ("config.salt", r#""s""#),
            ("config['salt']", r#""s""#),
            ("email.split('@')[1]", r#""Example.com""#),
            ("'@' in email", "true"),
            ("__stream_name__", r#""tickets""#),
            ("_['email']", r#""Foo@Example.com""#),
            ("self", r#""Foo@Example.com""#),
            ("tags[0:1]", r#"["t1"]"#),
            ("n / 2", "1.5"),
            ("n // 2", "1"),
            ("-n % 5", "2"),
            ("2 ** 10", "1024"),
            ("n is None", "false"),
            ("str(None)", r#""None""#),
            ("str([1, 'a', None, True])", r#""[1, 'a', None, True]""#),
            ("str({'a': 1.5})", r#""{'a': 1.5}""#),
            ("1e16", "1e+16"),
            ("0.1+0.2", "0.30000000000000004"),
            (
                "datetime.datetime.fromisoformat(updatedAt).strftime('%Y-%m')",
                r#""2024-05""#,
            ),
            ("datetime.timedelta(days=1)", r#""1 day, 0:00:00""#),
            ("email[:3]", r#""Foo""#),
            ("email.title()", r#""Foo@Example.Com""#),
            ("{'a': n}", r#"{"a":3}"#),
            ("(n, email)", r#"[3,"Foo@Example.com"]"#),
            ("tags + ['x']", r#"["t1","t2","x"]"#),
            ("not email", "false"),
            ("email and n", "3"),
            ("email or n", r#""Foo@Example.com""#),
            ("json.loads('{\"a\": 1}')", r#"{"a":1}"#),
            (
                "datetime.datetime.fromisoformat(updatedAt).timestamp()",
                "1714557600.0",
            ),
            ("int('12')", "12"),
            ("int('0x1f', 16)", "31"),
            ("int(' -1_000 ')", "-1000"),
            ("float('1e3')", "1000.0"),
            ("str(1e16)", r#""1e+16""#),
            ("str(123456789.123456789)", r#""123456789.12345679""#),
            (
                "datetime.datetime.fromisoformat(updatedAt).isoformat()",
                r#""2024-05-01T10:00:00+00:00""#,
            ),
            (
                "datetime.datetime.fromisoformat(updatedAt)",
                r#""2024-05-01T10:00:00+00:00""#,
            ),
            (
                "datetime.datetime.fromisoformat(updatedAt).date()",
                r#""2024-05-01""#,
            ),
            (
                "datetime.datetime(2024,1,2,3,4,5)",
                r#""2024-01-02T03:04:05""#,
            ),
            (
                "json.dumps({'a':[1,'é']})",
                r#""{\"a\": [1, \"\\u00e9\"]}""#,
            ),
            ("str(True)", r#""True""#),
            ("int(True)", "1"),
            (
                "str(datetime.datetime.fromisoformat(updatedAt))",
                r#""2024-05-01 10:00:00+00:00""#,
            ),
            (
                "datetime.datetime.strptime('2024-01-02', '%Y-%m-%d')",
                r#""2024-01-02T00:00:00""#,
            ),
            ("dict(a=1)", r#"{"a":1}"#),
            ("int(f)", "1"),
            ("float(n)", "3.0"),
            ("True + 1", "2"),
            ("email[-3:]", r#""com""#),
            ("email.find('@')", "3"),
            ("n if n > 1 else None", "3"),
            ("3 < n < 5", "false"),
            ("2 < n < 5", "true"),
            ("1 < 2 < 0", "false"),
            ("str(-0.0)", r#""-0.0""#),
            ("f'{email}-{n}'", r#""Foo@Example.com-3""#),
            (
                "md5(email) if email else None",
                r#""440068bee91299137007379cc7eb87c3""#,
            ),
            ("md5(none) if none else None", "null"),
        ] {
            assert_eq!(run(src).as_deref(), Ok(want), "{src}");
        }
    }

    #[test]
    fn data_errors_are_the_sdks() {
        for (src, needle) in [
            (
                "n > 'a'",
                "'>' not supported between instances of 'int' and 'str'",
            ),
            ("md5(none)", "'NoneType' object has no attribute 'encode'"),
            (
                "email + none",
                "can only concatenate str (not \"NoneType\") to str",
            ),
            ("email[100]", "IndexError: string index out of range"),
            ("n/0", "ZeroDivisionError"),
            ("int('x')", "invalid literal for int()"),
        ] {
            let e = run(src).expect_err(src);
            assert!(e.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn config_time_refusals_name_the_construct() {
        for (src, needle) in [
            ("len(email)", "len() is not available"),
            ("nope", "unknown name 'nope'"),
            ("record['nope']", "no property 'nope'"),
            ("record.nope", "no property 'nope'"),
            ("config['pepper']", "no key 'pepper'"),
            ("email.nope()", "unknown method .nope()"),
            ("email.upper", "without calling"),
            ("tags.__class__", "starting with '_'"),
            ("email.format()", "refused by simpleeval"),
            (
                "datetime.datetime.foo()",
                "datetime.datetime.foo is not supported",
            ),
            ("rand()", "random"),
            ("fake.email()", "Faker"),
            ("email is 'x'", "'is'"),
            ("md5", "without calling"),
        ] {
            let e = run(src).expect_err(src);
            assert!(e.contains(needle), "{src}: {e}");
        }
    }
}
