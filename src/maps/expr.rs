//! Stream-map expressions: the Python expression syntax the Meltano SDK
//! evaluates with simpleeval, parsed into a tree. Only expressions (no
//! statements), and of those the subset `eval` knows; anything else is
//! refused here or by `eval::check` with the construct named.

use std::fmt;

use super::value::Val;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
    Pos,
}

/// A name, once `eval::check` has resolved it.
#[derive(Clone, Debug)]
pub enum Ref {
    /// A property of the record (absent from a record: `None`).
    Field(Box<str>),
    /// `record` or `_`: the whole record.
    Record,
    /// `config`: the `stream_map_config` object.
    Config,
    /// `__stream_name__`: the output stream's name (after aliasing).
    StreamName,
    /// `__original_stream_name__`: the tap's stream name.
    OriginalStreamName,
    /// `self`: the current value of the property being computed.
    SelfValue,
    /// A function, module or class.
    Builtin(super::builtin::Builtin),
}

#[derive(Clone, Debug)]
pub enum Expr {
    Const(Val),
    Name(String),
    Ref(Ref),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    /// An f-string: literal text and `{expression}` parts.
    FString(Vec<FPart>),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Expr>, Vec<(String, Expr)>),
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, [Option<Box<Expr>>; 3]),
    Unary(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `and` (true) or `or` (false) over two or more operands.
    Bool(bool, Vec<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    IfElse {
        test: Box<Expr>,
        body: Box<Expr>,
        orelse: Box<Expr>,
    },
}

#[derive(Clone, Debug)]
pub enum FPart {
    Text(String),
    Value(Expr),
}

/// Why an expression was refused: the construct, said so a user recognises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type PResult<T> = Result<T, SyntaxError>;

/// A call's positional and keyword arguments.
type Args = (Vec<Expr>, Vec<(String, Expr)>);

fn err<T>(msg: impl Into<String>) -> PResult<T> {
    Err(SyntaxError(msg.into()))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    FStr(String),
    Op(&'static str),
    End,
}

const OPS: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "<<", ">>", ":=", "->", "+", "-", "*", "/", "%", "<", ">",
    "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "&", "|", "^", "~", "@", ";",
];

fn tokenize(src: &str) -> PResult<Vec<Tok>> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == b' '
            || c == b'\t'
            || c == b'\n'
            || c == b'\r'
            || c == b'\\' && b.get(i + 1) == Some(&b'\n')
        {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, n) = number(&src[i..])?;
            out.push(tok);
            i += n;
            continue;
        }
        if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 {
            let start = i;
            while i < b.len() {
                let ch = src[i..].chars().next().expect("in bounds");
                if ch == '_' || ch.is_alphanumeric() {
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            let word = &src[start..i];
            if word.is_empty() {
                return err(format!(
                    "unexpected character {:?}",
                    src[start..].chars().next().unwrap_or(' ')
                ));
            }
            // A string prefix: r, u, f, b and their combinations.
            if let Some(q @ (b'\'' | b'"')) = b.get(i).copied() {
                let lower = word.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "r" | "u" | "f" | "fr" | "rf" | "b" | "br" | "rb"
                ) {
                    if lower.contains('b') {
                        return err("bytes literals (b'...') are not supported");
                    }
                    let (text, n) = string(&src[i..], q, lower.contains('r'))?;
                    i += n;
                    out.push(if lower.contains('f') {
                        Tok::FStr(text)
                    } else {
                        Tok::Str(text)
                    });
                    continue;
                }
            }
            out.push(Tok::Name(word.to_string()));
            continue;
        }
        if c == b'\'' || c == b'"' {
            let (text, n) = string(&src[i..], c, false)?;
            i += n;
            out.push(Tok::Str(text));
            continue;
        }
        match OPS.iter().find(|op| src[i..].starts_with(**op)) {
            Some(op) => {
                out.push(Tok::Op(op));
                i += op.len();
            }
            None => {
                return err(format!(
                    "unexpected character {:?}",
                    src[i..].chars().next().unwrap_or(' ')
                ))
            }
        }
    }
    out.push(Tok::End);
    Ok(out)
}

fn number(s: &str) -> PResult<(Tok, usize)> {
    let b = s.as_bytes();
    let radix = match (b[0], b.get(1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'x')) => 16,
        (b'0', Some(b'o')) => 8,
        (b'0', Some(b'b')) => 2,
        _ => 10,
    };
    if radix != 10 {
        let mut n = 2;
        while n < b.len() && (b[n].is_ascii_alphanumeric() || b[n] == b'_') {
            n += 1;
        }
        let digits: String = s[2..n].chars().filter(|c| *c != '_').collect();
        return i64::from_str_radix(&digits, radix)
            .map(|v| (Tok::Int(v), n))
            .or_else(|_| err(format!("invalid number literal {}", &s[..n])));
    }
    let mut n = 0;
    let mut float = false;
    while n < b.len() {
        match b[n] {
            b'0'..=b'9' | b'_' => n += 1,
            b'.' if !float => {
                float = true;
                n += 1;
            }
            b'e' | b'E' => {
                float = true;
                n += 1;
                if n < b.len() && (b[n] == b'+' || b[n] == b'-') {
                    n += 1;
                }
            }
            b'j' | b'J' => return err("complex numbers are not supported"),
            _ => break,
        }
    }
    let text: String = s[..n].chars().filter(|c| *c != '_').collect();
    if float {
        text.parse::<f64>()
            .map(|v| (Tok::Float(v), n))
            .or_else(|_| err(format!("invalid number literal {}", &s[..n])))
    } else {
        if text.len() > 1 && text.starts_with('0') && text.bytes().any(|d| d != b'0') {
            return err(format!(
                "invalid number literal {} (leading zeros)",
                &s[..n]
            ));
        }
        text.parse::<i64>()
            .map(|v| (Tok::Int(v), n))
            .or_else(|_| err(format!("integer literal {} is beyond 64 bits", &s[..n])))
    }
}

/// A string literal starting at `s[0]` (its quote): its value and length.
fn string(s: &str, q: u8, raw: bool) -> PResult<(String, usize)> {
    let b = s.as_bytes();
    let triple = b.len() >= 3 && b[1] == q && b[2] == q;
    let open = if triple { 3 } else { 1 };
    let mut i = open;
    let mut out = String::new();
    loop {
        if i >= b.len() {
            return err("unterminated string literal");
        }
        let c = b[i];
        if c == q && (!triple || (b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q))) {
            return Ok((out, i + open));
        }
        if c == b'\n' && !triple {
            return err("unterminated string literal");
        }
        if c == b'\\' {
            let next = *b
                .get(i + 1)
                .ok_or(SyntaxError("unterminated string literal".into()))?;
            if raw {
                out.push('\\');
                out.push(next as char);
                i += 2;
                continue;
            }
            i += 2;
            match next {
                b'\n' => {}
                b'\\' => out.push('\\'),
                b'\'' => out.push('\''),
                b'"' => out.push('"'),
                b'a' => out.push('\x07'),
                b'b' => out.push('\x08'),
                b'f' => out.push('\x0c'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'v' => out.push('\x0b'),
                b'0'..=b'7' => {
                    let mut v = (next - b'0') as u32;
                    let mut k = 0;
                    while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                        v = v * 8 + (b[i] - b'0') as u32;
                        i += 1;
                        k += 1;
                    }
                    out.push(char::from_u32(v).expect("octal escapes are below 512"));
                }
                b'x' | b'u' | b'U' => {
                    let len = match next {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = s
                        .get(i..i + len)
                        .ok_or(SyntaxError("truncated escape".into()))?;
                    let v = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or(SyntaxError(format!(
                            "invalid escape \\{}{hex}",
                            next as char
                        )))?;
                    out.push(v);
                    i += len;
                }
                b'N' => return err("\\N{...} escapes are not supported"),
                other => {
                    // Python keeps unknown escapes as they are.
                    out.push('\\');
                    let ch = s[i - 1..].chars().next().unwrap_or(other as char);
                    out.push(ch);
                    i += ch.len_utf8() - 1;
                }
            }
            continue;
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
}

const KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

/// Parses one expression (what `ast.parse(text).body[0]` would hold, when
/// the text is a single expression).
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    if src.trim().is_empty() {
        return err("an empty expression");
    }
    let mut p = Parser {
        toks: tokenize(src)?,
        at: 0,
    };
    let e = p.test()?;
    match p.peek() {
        Tok::End => Ok(e),
        Tok::Op("=") | Tok::Op(":=") => err("assignments are not expressions"),
        Tok::Op(";") => err("more than one statement (';')"),
        Tok::Name(n) if n == "for" => err("comprehensions are not supported"),
        t => err(format!("unexpected {}", describe(t))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("'{n}'"),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(_) | Tok::FStr(_) => "string".into(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "end of expression".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at]
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == kw)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.next();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> PResult<()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            err(format!("expected '{op}', found {}", describe(self.peek())))
        }
    }

    /// `a if c else b`, or lambda (refused).
    fn test(&mut self) -> PResult<Expr> {
        if self.is_kw("lambda") {
            return err("lambda is not supported");
        }
        let body = self.or_test()?;
        if self.eat_kw("if") {
            let test = self.or_test()?;
            if !self.eat_kw("else") {
                return err("a conditional expression needs 'else'");
            }
            let orelse = self.test()?;
            return Ok(Expr::IfElse {
                test: Box::new(test),
                body: Box::new(body),
                orelse: Box::new(orelse),
            });
        }
        Ok(body)
    }

    fn or_test(&mut self) -> PResult<Expr> {
        let first = self.and_test()?;
        if !self.is_kw("or") {
            return Ok(first);
        }
        let mut all = vec![first];
        while self.eat_kw("or") {
            all.push(self.and_test()?);
        }
        Ok(Expr::Bool(false, all))
    }

    fn and_test(&mut self) -> PResult<Expr> {
        let first = self.not_test()?;
        if !self.is_kw("and") {
            return Ok(first);
        }
        let mut all = vec![first];
        while self.eat_kw("and") {
            all.push(self.not_test()?);
        }
        Ok(Expr::Bool(true, all))
    }

    fn not_test(&mut self) -> PResult<Expr> {
        if self.eat_kw("not") {
            return Ok(Expr::Unary(UnOp::Not, Box::new(self.not_test()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let left = self.arith()?;
        let mut ops = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::NotEq,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::LtE,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::GtE,
                Tok::Name(n) if n == "in" => CmpOp::In,
                Tok::Name(n) if n == "is" => {
                    self.next();
                    let op = if self.eat_kw("not") {
                        CmpOp::IsNot
                    } else {
                        CmpOp::Is
                    };
                    ops.push((op, self.arith()?));
                    continue;
                }
                Tok::Name(n) if n == "not" => {
                    self.next();
                    if !self.is_kw("in") {
                        return err("expected 'in' after 'not'");
                    }
                    CmpOp::NotIn
                }
                Tok::Op(o @ ("|" | "&" | "^" | "<<" | ">>")) => {
                    return err(format!("the bitwise operator '{o}' is not supported"))
                }
                _ => break,
            };
            self.next();
            ops.push((op, self.arith()?));
        }
        if ops.is_empty() {
            Ok(left)
        } else {
            Ok(Expr::Compare(Box::new(left), ops))
        }
    }

    fn arith(&mut self) -> PResult<Expr> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.next();
            let right = self.term()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> PResult<Expr> {
        let mut left = self.factor()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("//") => BinOp::FloorDiv,
                Tok::Op("%") => BinOp::Mod,
                Tok::Op("@") => return err("the operator '@' is not supported"),
                _ => return Ok(left),
            };
            self.next();
            let right = self.factor()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn factor(&mut self) -> PResult<Expr> {
        let op = match self.peek() {
            Tok::Op("-") => UnOp::Neg,
            Tok::Op("+") => UnOp::Pos,
            Tok::Op("~") => return err("the bitwise operator '~' is not supported"),
            _ => return self.power(),
        };
        self.next();
        let operand = self.factor()?;
        // Fold negative literals, as Python's constant folding would.
        Ok(match (op, operand) {
            (UnOp::Neg, Expr::Const(Val::Int(i))) => Expr::Const(Val::Int(-i)),
            (UnOp::Neg, Expr::Const(Val::Float(f))) => Expr::Const(Val::Float(-f)),
            (op, e) => Expr::Unary(op, Box::new(e)),
        })
    }

    fn power(&mut self) -> PResult<Expr> {
        let base = self.primary()?;
        if self.eat_op("**") {
            let exp = self.factor()?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let mut e = self.atom()?;
        loop {
            if self.eat_op(".") {
                match self.next() {
                    Tok::Name(n) => e = Expr::Attr(Box::new(e), n),
                    t => return err(format!("expected a name after '.', found {}", describe(&t))),
                }
            } else if self.eat_op("(") {
                let (args, kwargs) = self.call_args()?;
                e = Expr::Call(Box::new(e), args, kwargs);
            } else if self.eat_op("[") {
                e = self.subscript(e)?;
            } else {
                return Ok(e);
            }
        }
    }

    fn call_args(&mut self) -> PResult<Args> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, Expr)> = Vec::new();
        while !self.eat_op(")") {
            if self.is_op("*") || self.is_op("**") {
                return err("unpacking arguments (*args, **kwargs) is not supported");
            }
            let is_kw = matches!(self.peek(), Tok::Name(_))
                && matches!(self.toks.get(self.at + 1), Some(Tok::Op("=")));
            if is_kw {
                let Tok::Name(name) = self.next() else {
                    unreachable!("checked above")
                };
                self.next();
                kwargs.push((name, self.test()?));
            } else {
                if !kwargs.is_empty() {
                    return err("a positional argument after a keyword argument");
                }
                args.push(self.test()?);
            }
            if self.is_kw("for") {
                return err("comprehensions are not supported");
            }
            if !self.eat_op(",") {
                self.expect_op(")")?;
                break;
            }
        }
        Ok((args, kwargs))
    }

    fn subscript(&mut self, base: Expr) -> PResult<Expr> {
        let mut parts: [Option<Box<Expr>>; 3] = [None, None, None];
        let mut colons = 0;
        let mut first: Option<Expr> = None;
        loop {
            if self.eat_op("]") {
                break;
            }
            if self.eat_op(":") {
                colons += 1;
                if colons > 2 {
                    return err("a slice takes at most two ':'");
                }
                continue;
            }
            if self.is_op(",") {
                return err("subscripts with ',' (tuples) are not supported");
            }
            let e = self.test()?;
            if colons == 0 {
                first = Some(e);
            } else {
                parts[colons] = Some(Box::new(e));
            }
        }
        if colons == 0 {
            match first {
                Some(i) => Ok(Expr::Index(Box::new(base), Box::new(i))),
                None => err("an empty subscript '[]'"),
            }
        } else {
            parts[0] = first.map(Box::new);
            Ok(Expr::Slice(Box::new(base), parts))
        }
    }

    fn atom(&mut self) -> PResult<Expr> {
        match self.next() {
            Tok::Int(i) => Ok(Expr::Const(Val::Int(i))),
            Tok::Float(f) => Ok(Expr::Const(Val::Float(f))),
            Tok::Str(s) => self.more_strings(vec![FPart::Text(s)]),
            Tok::FStr(s) => {
                let parts = fstring(&s)?;
                self.more_strings(parts)
            }
            Tok::Name(n) => match n.as_str() {
                "True" => Ok(Expr::Const(Val::Bool(true))),
                "False" => Ok(Expr::Const(Val::Bool(false))),
                "None" => Ok(Expr::Const(Val::None)),
                kw if KEYWORDS.contains(&kw) => err(format!("unexpected keyword '{kw}'")),
                _ => Ok(Expr::Name(n)),
            },
            Tok::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let first = self.test()?;
                if self.is_kw("for") {
                    return err("generator expressions are not supported");
                }
                if self.eat_op(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.is_op(")") {
                        break;
                    }
                    items.push(self.test()?);
                }
                self.expect_op(")")?;
                Ok(Expr::Tuple(items))
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat_op("]") {
                    if self.is_op("*") {
                        return err("unpacking (*x) is not supported");
                    }
                    items.push(self.test()?);
                    if self.is_kw("for") {
                        return err("list comprehensions are not supported");
                    }
                    if !self.eat_op(",") {
                        self.expect_op("]")?;
                        break;
                    }
                }
                Ok(Expr::List(items))
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while !self.eat_op("}") {
                    if self.is_op("**") {
                        return err("unpacking (**x) is not supported");
                    }
                    let k = self.test()?;
                    if !self.eat_op(":") {
                        return err("set literals are not supported (a dict needs 'key: value')");
                    }
                    let v = self.test()?;
                    if self.is_kw("for") {
                        return err("dict comprehensions are not supported");
                    }
                    items.push((k, v));
                    if !self.eat_op(",") {
                        self.expect_op("}")?;
                        break;
                    }
                }
                Ok(Expr::Dict(items))
            }
            t => err(format!("unexpected {}", describe(&t))),
        }
    }

    /// Adjacent string literals concatenate: `'a' 'b'`.
    fn more_strings(&mut self, mut parts: Vec<FPart>) -> PResult<Expr> {
        loop {
            match self.peek().clone() {
                Tok::Str(s) => {
                    self.next();
                    parts.push(FPart::Text(s));
                }
                Tok::FStr(s) => {
                    self.next();
                    parts.extend(fstring(&s)?);
                }
                _ => break,
            }
        }
        if parts.iter().all(|p| matches!(p, FPart::Text(_))) {
            let text: String = parts
                .into_iter()
                .map(|p| match p {
                    FPart::Text(t) => t,
                    FPart::Value(_) => unreachable!("all text"),
                })
                .collect();
            return Ok(Expr::Const(Val::str(text)));
        }
        Ok(Expr::FString(parts))
    }
}

/// The parts of an f-string's body (escapes already decoded): text, `{{`
/// and `}}`, and `{expression}` without conversions or format specs.
fn fstring(body: &str) -> PResult<Vec<FPart>> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                text.push('}');
            }
            '}' => return err("a single '}' in an f-string"),
            '{' => {
                let start = i + 1;
                let mut depth = 0;
                let mut end = None;
                let mut quote: Option<char> = None;
                for (j, d) in chars.by_ref() {
                    match (quote, d) {
                        (Some(q), d) if d == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(d),
                        (None, '(' | '[' | '{') => depth += 1,
                        (None, ')' | ']') => depth -= 1,
                        (None, '}') if depth > 0 => depth -= 1,
                        (None, '}') => {
                            end = Some(j);
                            break;
                        }
                        (None, '!' | ':') if depth == 0 => {
                            return err(
                                "format specs and conversions in f-strings ({x:...}, {x!r}) are not supported",
                            )
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or(SyntaxError("an unclosed '{' in an f-string".into()))?;
                if !text.is_empty() {
                    parts.push(FPart::Text(std::mem::take(&mut text)));
                }
                let inner = &body[start..end];
                if inner.trim().ends_with('=') {
                    return err("self-documenting f-string expressions ({x=}) are not supported");
                }
                parts.push(FPart::Value(parse(inner)?));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(FPart::Text(text));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_what_users_write() {
        for s in [
            "md5(email)",
            "md5(config['salt'] + email) if email else None",
            "email.split('@')[1].lower()",
            "record['a'] in ('x', 'y') and not b",
            "n // 2 ** -1 % 3",
            "datetime.datetime.fromisoformat(updatedAt).date()",
            "3 < n < 5",
            "x is not None",
            "tags[1:] + [f'{a}-{b}']",
            "{'a': 1, 'b': [1, 2.5e3]}",
            "'a' 'b'",
            "x not in y",
            "dict(a=1, b=2)",
        ] {
            ok(s);
        }
        assert!(matches!(ok("-1"), Expr::Const(Val::Int(-1))));
        assert!(matches!(ok("'a' \"b\""), Expr::Const(Val::Str(s)) if &*s == "ab"));
    }

    #[test]
    fn refuses_what_is_not_an_expression_of_the_subset() {
        for (s, needle) in [
            ("x = 1", "assignment"),
            ("a; b", "statement"),
            ("lambda x: x", "lambda"),
            ("[x for x in y]", "comprehension"),
            ("{1, 2}", "set literal"),
            ("a | b", "bitwise"),
            ("f'{x:03d}'", "format spec"),
            ("'abc", "unterminated"),
            ("", "empty"),
            ("a b", "unexpected"),
            ("import os", "keyword"),
        ] {
            let e = parse(s).expect_err(s).0;
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}
