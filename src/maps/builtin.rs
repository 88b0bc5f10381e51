//! The functions, modules and classes a map expression can name
//! (`md5`, `datetime.datetime.now`, `json.dumps`...). Their own file since
//! values (`value.rs`), parsed expressions (`expr.rs`) and the evaluator
//! (`eval.rs`) all hold them: none of those need import another for it.

/// Functions, modules and classes an expression can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Md5,
    Sha256,
    Int,
    Float,
    Str,
    Bool,
    List,
    Tuple,
    Dict,
    DatetimeModule,
    DatetimeClass,
    DateClass,
    TimedeltaClass,
    TimezoneClass,
    JsonModule,
    JsonDumps,
    JsonLoads,
    DtFromIsoformat,
    DtNow,
    DtUtcnow,
    DtStrptime,
    DtFromTimestamp,
    DtUtcFromTimestamp,
    DateFromIsoformat,
    DateToday,
    DateFromTimestamp,
}

impl Builtin {
    pub fn name(&self) -> &'static str {
        use Builtin::*;
        match self {
            Md5 => "md5",
            Sha256 => "sha256",
            Int => "int",
            Float => "float",
            Str => "str",
            Bool => "bool",
            List => "list",
            Tuple => "tuple",
            Dict => "dict",
            DatetimeModule => "datetime",
            DatetimeClass => "datetime.datetime",
            DateClass => "datetime.date",
            TimedeltaClass => "datetime.timedelta",
            TimezoneClass => "datetime.timezone",
            JsonModule => "json",
            JsonDumps => "json.dumps",
            JsonLoads => "json.loads",
            DtFromIsoformat => "datetime.datetime.fromisoformat",
            DtNow => "datetime.datetime.now",
            DtUtcnow => "datetime.datetime.utcnow",
            DtStrptime => "datetime.datetime.strptime",
            DtFromTimestamp => "datetime.datetime.fromtimestamp",
            DtUtcFromTimestamp => "datetime.datetime.utcfromtimestamp",
            DateFromIsoformat => "datetime.date.fromisoformat",
            DateToday => "datetime.date.today",
            DateFromTimestamp => "datetime.date.fromtimestamp",
        }
    }

    pub(super) fn callable(&self) -> bool {
        !matches!(self, Builtin::DatetimeModule | Builtin::JsonModule)
    }
}
