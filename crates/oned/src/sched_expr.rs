//! OpenNebula's requirement and rank expressions (`SCHED_REQUIREMENTS`, `SCHED_RANK`,
//! `AUTOMATIC_REQUIREMENTS`...), evaluated against a host's or a datastore's XML body as
//! `src/parsers/expr_bool.y`, `expr_arith.y` and `expr_parser.l` evaluate them:
//!
//! - tokens as the flex scanner cuts them: names `[A-Za-z][0-9A-Za-z_]*` or `"quoted"` (an empty
//!   `""` compares false), integers `-?[0-9]+` (so `A-1` is a name then `-1`), floats
//!   `-?[0-9]+.[0-9]+`, the characters `@!&|=><()*+/^-`; blanks are skipped and any other
//!   character ignored, as flex's default rule does;
//! - boolean: `NAME = v`, `NAME != v`, `NAME > n`, `NAME < n`, `NAME @> v` (any of the values),
//!   `&`, `|` and `!` all of one precedence, left to right, and parentheses; a string is an
//!   `fnmatch` pattern; a missing attribute makes every comparison false;
//! - arithmetic: `+ - * /`, unary minus, parentheses, names read as numbers (0 if missing), in
//!   single precision, the result truncated to an integer as the rank policy keeps it.
//!
//! A name is looked up under the resource's search paths (`Host::Host`'s `ObjectXML::paths`)
//! and the first value in document order wins, as the union XPath OpenNebula builds; a name
//! starting with `/` is an absolute path. The template is written by users, so the expression
//! length and its nesting are bounded.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Longest expression evaluated, in bytes.
pub const MAX_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses and `!` (and unary minus) accepted.
pub const MAX_DEPTH: usize = 64;
/// Values kept per resource body, so a huge template cannot make a lookup table without end.
const MAX_VALUES: usize = 16 * 1024;

/// Search paths of a host (`src/host/Host.cc`).
pub const HOST_PATHS: &[&str] = &[
    "/HOST/TEMPLATE/",
    "/HOST/HOST_SHARE/",
    "/HOST/HOST_SHARE/DATASTORES/",
    "/HOST/MONITORING/CAPACITY/",
    "/HOST/MONITORING/SYSTEM/",
    "/HOST/",
    "/HOST/CLUSTER_TEMPLATE/",
];

/// Search paths of a datastore (`src/datastore/Datastore.cc`).
pub const DATASTORE_PATHS: &[&str] = &["/DATASTORE/TEMPLATE/", "/DATASTORE/"];

/// The values of an object's XML body: each element's text with its absolute path, in
/// document order, and the paths a bare name is searched under.
#[derive(Debug, Clone, Default)]
pub struct Resource {
    values: Vec<(String, String)>,
    /// Where each absolute path's values are in `values`, so a lookup costs a few map reads
    /// however large the body.
    by_path: std::collections::HashMap<String, Vec<usize>>,
    paths: &'static [&'static str],
}

impl Resource {
    /// Reads `xml` (an object body such as `one.host.info`'s); a body that does not parse
    /// keeps what was read before the error.
    pub fn from_xml(xml: &str, paths: &'static [&'static str]) -> Resource {
        let mut values = Vec::new();
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<String> = Vec::new();
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    stack.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                    text.clear();
                }
                Ok(Event::Empty(_)) => {}
                Ok(Event::Text(t)) => {
                    if let Ok(s) = t.unescape() {
                        text.push_str(&s);
                    }
                }
                Ok(Event::CData(t)) => text.push_str(&String::from_utf8_lossy(&t)),
                Ok(Event::End(_)) => {
                    let path = format!("/{}", stack.join("/"));
                    stack.pop();
                    if !text.trim().is_empty() && values.len() < MAX_VALUES {
                        values.push((path, std::mem::take(&mut text)));
                    }
                    text.clear();
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut by_path: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, (path, _)) in values.iter().enumerate() {
            by_path.entry(path.clone()).or_default().push(i);
        }
        Resource {
            values,
            by_path,
            paths,
        }
    }

    /// Every value `name` finds, in document order.
    fn search<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut at: Vec<usize> = if name.starts_with('/') {
            self.by_path.get(name).cloned().unwrap_or_default()
        } else {
            self.paths
                .iter()
                .filter_map(|p| self.by_path.get(&format!("{p}{name}")))
                .flatten()
                .copied()
                .collect()
        };
        at.sort_unstable();
        at.into_iter().map(|i| self.values[i].1.as_str())
    }

    fn ints<'a>(&'a self, name: &'a str) -> impl Iterator<Item = i64> + 'a {
        self.search(name).filter_map(leading_int)
    }

    fn floats<'a>(&'a self, name: &'a str) -> impl Iterator<Item = f32> + 'a {
        self.search(name).filter_map(leading_float)
    }
}

/// `istringstream >> int`: blanks, a sign and digits at the start; `None` if no digit.
fn leading_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let v: i64 = rest[..digits].parse().ok()?;
    let v = i32::try_from(v).ok()? as i64;
    Some(if neg { -v } else { v })
}

/// `istringstream >> float`: the longest number at the start.
fn leading_float(s: &str) -> Option<f32> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        end = 1;
    }
    let int_digits = b[end..].iter().take_while(|c| c.is_ascii_digit()).count();
    end += int_digits;
    let mut frac_digits = 0;
    if b.get(end) == Some(&b'.') {
        frac_digits = b[end + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if int_digits + frac_digits > 0 {
            end += 1 + frac_digits;
        }
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(b.get(e), Some(b'-' | b'+')) {
            e += 1;
        }
        let exp = b[e..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp > 0 {
            end = e + exp;
        }
    }
    t[..end].parse().ok()
}

/// `fnmatch(pattern, s, 0)`: `*`, `?`, `[...]` (with `!` or `^` and ranges) and `\` escapes,
/// by backtracking to the last `*` only, so a hostile pattern costs at most
/// `pattern.len() * s.len()` steps.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let mut unlimited = u64::MAX;
    fnmatch_within(pattern, s, &mut unlimited).unwrap_or(false)
}

/// [`fnmatch`] taking one unit of `budget` per step; `None` when it runs out.
fn fnmatch_within(pattern: &str, s: &str, budget: &mut u64) -> Option<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        *budget = budget.checked_sub(1)?;
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p, pi, s[si]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // An unclosed `[` is an ordinary character.
                None => (s[si] == '[').then_some(pi + 1),
            },
            Some('\\') if pi + 1 < p.len() => (s[si] == p[pi + 1]).then_some(pi + 2),
            Some(&c) => (c == s[si]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    pi = sp;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return Some(false),
            },
        }
    }
    Some(p[pi..].iter().all(|&c| c == '*'))
}

/// Whether `c` is in the bracket expression starting at `p[start]`, and the index after it;
/// `None` if it is not closed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = p[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Sym(char),
    /// A name or quoted string; `None` for `""`.
    Str(Option<String>),
    Int(i64),
    Float(f32),
    End,
}

impl Tok {
    /// The token as bison's messages name it (`yytname`).
    fn describe(&self, arith: bool) -> String {
        match self {
            Tok::End => "$end".into(),
            Tok::Str(_) => "STRING".into(),
            Tok::Int(_) => "INTEGER".into(),
            Tok::Float(_) => "FLOAT".into(),
            Tok::Sym(c) => {
                let known = if arith { "+-*/()" } else { "!&|=><@()" };
                if known.contains(*c) {
                    format!("'{c}'")
                } else {
                    "$undefined".into()
                }
            }
        }
    }
}

/// A token and its columns as the scanner counts them (`first_column:last_column`, from 1).
#[derive(Debug, Clone)]
struct Lexed {
    tok: Tok,
    first: usize,
    last: usize,
}

fn lex(text: &str) -> Vec<Lexed> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // `llocp->last_column` and `first_column` after the scanner's last action (a token, a
    // run of blanks or an ignored byte): the end of input reports the last action's columns.
    let mut col = 1;
    let mut first = 1;
    let mut act = |tok: Option<Tok>, len: usize, col: &mut usize, first: &mut usize| {
        *first = *col;
        *col += len;
        if let Some(tok) = tok {
            out.push(Lexed {
                tok,
                first: *first,
                last: *col,
            });
        }
    };
    while i < b.len() {
        let c = b[i];
        let digits_at = |j: usize| b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        let num_start = if c == b'-' { i + 1 } else { i };
        let int_len = if c.is_ascii_digit() || (c == b'-' && num_start < b.len()) {
            digits_at(num_start)
        } else {
            0
        };
        let (tok, len) = if int_len > 0 {
            let mut end = num_start + int_len;
            let frac = if b.get(end) == Some(&b'.') {
                digits_at(end + 1)
            } else {
                0
            };
            let tok = if frac > 0 {
                end += 1 + frac;
                Tok::Float(text[i..end].parse().unwrap_or(0.0))
            } else {
                // `atoi`: what does not fit an int is clamped rather than undefined.
                let v = text[i..end].parse::<i64>().unwrap_or(if c == b'-' {
                    i64::MIN
                } else {
                    i64::MAX
                });
                Tok::Int(v.clamp(i32::MIN as i64, i32::MAX as i64))
            };
            (Some(tok), end - i)
        } else if c.is_ascii_alphabetic() {
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (Some(Tok::Str(Some(text[i..i + len].to_string()))), len)
        } else if c == b'"' {
            match b[i + 1..].iter().position(|&x| x == b'"') {
                Some(n) => {
                    let s = &text[i + 1..i + 1 + n];
                    (
                        Some(Tok::Str((!s.is_empty()).then(|| s.to_string()))),
                        n + 2,
                    )
                }
                // A lone quote is not a token: flex echoes it.
                None => (None, 1),
            }
        } else if b"@!&|=><()*+/^-".contains(&c) {
            (Some(Tok::Sym(c as char)), 1)
        } else if c == b' ' || c == b'\t' {
            (
                None,
                b[i..]
                    .iter()
                    .take_while(|c| **c == b' ' || **c == b'\t')
                    .count(),
            )
        } else {
            // Any other byte is echoed by flex's default rule: no token, one column.
            (None, 1)
        };
        act(tok, len, &mut col, &mut first);
        i += len;
    }
    out.push(Lexed {
        tok: Tok::End,
        first,
        last: col,
    });
    out
}

struct Parser<'a> {
    /// Work left (pattern steps and lookups), shared by the evaluations of one VM.
    budget: &'a mut u64,
    toks: Vec<Lexed>,
    pos: usize,
    depth: usize,
    arith: bool,
    res: &'a Resource,
}

type Parsed<T> = Result<T, String>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self) -> String {
        let l = &self.toks[self.pos.min(self.toks.len() - 1)];
        format!(
            "syntax error, unexpected {} at line 1, columns {}:{}",
            l.tok.describe(self.arith),
            l.first,
            l.last
        )
    }

    fn deeper(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "expression nested deeper than {MAX_DEPTH} levels at line 1"
            ));
        }
        Ok(())
    }

    fn bool_expr(&mut self) -> Parsed<bool> {
        let mut v = self.bool_unary()?;
        loop {
            match self.peek() {
                Tok::Sym('&') => {
                    self.next();
                    let r = self.bool_unary()?;
                    v = v && r;
                }
                Tok::Sym('|') => {
                    self.next();
                    let r = self.bool_unary()?;
                    v = v || r;
                }
                _ => return Ok(v),
            }
        }
    }

    fn bool_unary(&mut self) -> Parsed<bool> {
        match self.peek().clone() {
            Tok::Sym('!') => {
                self.deeper()?;
                self.next();
                let v = !self.bool_unary()?;
                self.depth -= 1;
                Ok(v)
            }
            Tok::Sym('(') => {
                self.deeper()?;
                self.next();
                let v = self.bool_expr()?;
                if self.peek() != &Tok::Sym(')') {
                    return Err(self.error());
                }
                self.next();
                self.depth -= 1;
                Ok(v)
            }
            Tok::Str(name) => {
                self.next();
                self.comparison(name.as_deref().unwrap_or(""))
            }
            _ => Err(self.error()),
        }
    }

    fn comparison(&mut self, name: &str) -> Parsed<bool> {
        let op = match self.next() {
            Tok::Sym('=') => "=",
            Tok::Sym('>') => ">",
            Tok::Sym('<') => "<",
            Tok::Sym('!') if self.peek() == &Tok::Sym('=') => {
                self.next();
                "!="
            }
            Tok::Sym('@') if self.peek() == &Tok::Sym('>') => {
                self.next();
                "@>"
            }
            _ => return Err(self.error_at_previous()),
        };
        let r = self.res;
        let value = self.next();
        self.charge(8)?;
        let first_int = || r.ints(name).next();
        let first_float = || r.floats(name).next();
        let mut budget = *self.budget;
        let mut exhausted = false;
        let mut fnmatch = |p: &str, v: &str| {
            fnmatch_within(p, v, &mut budget).unwrap_or_else(|| {
                exhausted = true;
                false
            })
        };
        let found = match (op, value) {
            ("=", Tok::Int(n)) => first_int() == Some(n),
            ("!=", Tok::Int(n)) => first_int().is_some_and(|v| v != n),
            (">", Tok::Int(n)) => first_int().is_some_and(|v| v > n),
            ("<", Tok::Int(n)) => first_int().is_some_and(|v| v < n),
            ("@>", Tok::Int(n)) => r.ints(name).any(|v| v == n),
            ("=", Tok::Float(f)) => first_float() == Some(f),
            ("!=", Tok::Float(f)) => first_float().is_some_and(|v| v != f),
            (">", Tok::Float(f)) => first_float().is_some_and(|v| v > f),
            ("<", Tok::Float(f)) => first_float().is_some_and(|v| v < f),
            ("@>", Tok::Float(f)) => r.floats(name).any(|v| v == f),
            ("=", Tok::Str(p)) => match (p, r.search(name).next()) {
                (Some(p), Some(v)) => fnmatch(&p, v),
                _ => false,
            },
            ("!=", Tok::Str(p)) => match (p, r.search(name).next()) {
                (Some(p), Some(v)) => !fnmatch(&p, v),
                _ => false,
            },
            ("@>", Tok::Str(Some(p))) => r.search(name).any(|v| fnmatch(&p, v)),
            ("@>", Tok::Str(None)) => false,
            _ => return Err(self.error_at_previous()),
        };
        *self.budget = budget;
        if exhausted {
            return Err(TOO_COSTLY.into());
        }
        Ok(found)
    }

    fn charge(&mut self, n: u64) -> Parsed<()> {
        *self.budget = self.budget.checked_sub(n).ok_or(TOO_COSTLY)?;
        Ok(())
    }

    /// The error at the token just consumed.
    fn error_at_previous(&mut self) -> String {
        self.pos = self.pos.saturating_sub(1);
        self.error()
    }

    fn arith_expr(&mut self) -> Parsed<f32> {
        let mut v = self.arith_term()?;
        loop {
            match self.peek() {
                Tok::Sym('+') => {
                    self.next();
                    v += self.arith_term()?;
                }
                Tok::Sym('-') => {
                    self.next();
                    v -= self.arith_term()?;
                }
                _ => return Ok(v),
            }
        }
    }

    fn arith_term(&mut self) -> Parsed<f32> {
        let mut v = self.arith_factor()?;
        loop {
            match self.peek() {
                Tok::Sym('*') => {
                    self.next();
                    v *= self.arith_factor()?;
                }
                Tok::Sym('/') => {
                    self.next();
                    v /= self.arith_factor()?;
                }
                _ => return Ok(v),
            }
        }
    }

    fn arith_factor(&mut self) -> Parsed<f32> {
        match self.next() {
            Tok::Sym('-') => {
                self.deeper()?;
                let v = -self.arith_factor()?;
                self.depth -= 1;
                Ok(v)
            }
            Tok::Sym('(') => {
                self.deeper()?;
                let v = self.arith_expr()?;
                if self.next() != Tok::Sym(')') {
                    return Err(self.error_at_previous());
                }
                self.depth -= 1;
                Ok(v)
            }
            Tok::Int(n) => Ok(n as f32),
            Tok::Float(f) => Ok(f),
            Tok::Str(Some(name)) => {
                self.charge(8)?;
                Ok(self.res.floats(&name).next().unwrap_or(0.0))
            }
            Tok::Str(None) => Ok(0.0),
            _ => Err(self.error_at_previous()),
        }
    }

    fn finish(&self) -> Parsed<()> {
        if self.peek() == &Tok::End {
            Ok(())
        } else {
            Err(self.error())
        }
    }
}

/// Work one VM's requirements and rank may cost over every host in one period: a hostile
/// pattern against long values, or a long expression against many hosts, ends there.
pub const BUDGET: u64 = 4_000_000;

const TOO_COSTLY: &str = "expression too costly to evaluate";

fn parser<'a>(
    text: &str,
    res: &'a Resource,
    arith: bool,
    budget: &'a mut u64,
) -> Parsed<Parser<'a>> {
    if text.len() > MAX_LEN {
        return Err(format!("expression longer than {MAX_LEN} bytes"));
    }
    Ok(Parser {
        budget,
        toks: lex(text),
        pos: 0,
        depth: 0,
        arith,
        res,
    })
}

/// Evaluates a requirement expression against `res`; an empty one is true. The error is
/// bison's message with the columns, as OpenNebula puts it after `error: `.
pub fn eval_bool(text: &str, res: &Resource) -> Result<bool, String> {
    let mut budget = BUDGET;
    eval_bool_within(text, res, &mut budget)
}

/// [`eval_bool`] spending `budget`.
pub fn eval_bool_within(text: &str, res: &Resource, budget: &mut u64) -> Result<bool, String> {
    let mut p = parser(text, res, false, budget)?;
    if p.peek() == &Tok::End {
        return Ok(true);
    }
    let v = p.bool_expr()?;
    p.finish()?;
    Ok(v)
}

/// Evaluates a rank expression against `res`, truncated to an integer; an empty one is 0.
pub fn eval_rank(text: &str, res: &Resource) -> Result<i64, String> {
    let mut budget = BUDGET;
    eval_rank_within(text, res, &mut budget)
}

/// [`eval_rank`] spending `budget`.
pub fn eval_rank_within(text: &str, res: &Resource, budget: &mut u64) -> Result<i64, String> {
    let mut p = parser(text, res, true, budget)?;
    if p.peek() == &Tok::End {
        return Ok(0);
    }
    let v = p.arith_expr()?;
    p.finish()?;
    // `static_cast<int>`: out of range (or NaN) saturates here instead of being undefined.
    Ok(if v.is_nan() { 0 } else { v as i32 as i64 })
}

/// Whether `text` parses as a requirement expression (evaluated against nothing).
pub fn check_bool(text: &str) -> Result<(), String> {
    eval_bool(text, &Resource::default()).map(|_| ())
}

/// OpenNebula's `build_requirements`: the automatic requirements and the user's, joined.
pub fn build_requirements(automatic: &str, user: &str) -> String {
    match (automatic.is_empty(), user.is_empty()) {
        (_, true) => automatic.to_string(),
        (true, false) => user.to_string(),
        (false, false) => format!("{automatic} & ( {user} )"),
    }
}

/// What a VM asks of a host: its requirements (the automatic ones joined to the user's) and,
/// if it has one, its own rank.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmAsk {
    pub requirements: String,
    pub rank: Option<String>,
}

impl VmAsk {
    /// Read from a VM's template (AUTOMATIC_REQUIREMENTS) and user template (SCHED_REQUIREMENTS,
    /// SCHED_RANK), as `match_hosts` and the rank policy read them.
    pub fn of(template: &str, user_template: &str) -> VmAsk {
        let single = |text: &str, name: &str| {
            template::Template::parse(text)
                .ok()
                .and_then(|t| t.single(name).map(|v| v.trim().to_string()))
                .unwrap_or_default()
        };
        let rank = single(user_template, "SCHED_RANK");
        VmAsk {
            requirements: build_requirements(
                &single(template, "AUTOMATIC_REQUIREMENTS"),
                &single(user_template, "SCHED_REQUIREMENTS"),
            ),
            rank: (!rank.is_empty()).then_some(rank),
        }
    }
}

/// The hosts a VM's requirements keep, with its rank on each (`None` where the default
/// policy, least running VMs first, orders them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    pub hosts: std::collections::BTreeMap<i64, Option<i64>>,
}

/// OpenNebula's `match_hosts` and rank policy for one VM over `hosts` (id, body): the hosts
/// it may use, or the SCHED_MESSAGE reason (after `Cannot dispatch VM: `) when its
/// requirements do not parse. A rank that does not evaluate counts as 0, as the policy does.
pub fn match_hosts(ask: &VmAsk, hosts: &[(i64, Resource)]) -> Result<Matched, String> {
    let mut out = Matched::default();
    let mut budget = BUDGET;
    for (oid, res) in hosts {
        let keep = eval_bool_within(&ask.requirements, res, &mut budget).map_err(|e| {
            format!(
                "Error in SCHED_REQUIREMENTS: '{}', error: {e}",
                ask.requirements
            )
        })?;
        if keep {
            let rank = ask
                .rank
                .as_ref()
                .map(|r| eval_rank_within(r, res, &mut budget).unwrap_or(0));
            out.hosts.insert(*oid, rank);
        }
    }
    Ok(out)
}

/// Why a VM whose requirements keep no host stays PENDING.
pub const NO_HOST_MEETS: &str = "No host meets SCHED_REQUIREMENTS";

/// The MONITORED hosts with their bodies as `one.host.info` prints them.
pub fn host_resources(c: &sqlstore::Conn) -> Result<Vec<(i64, Resource)>, sqlstore::SqlError> {
    Ok(sqlstore::objects::host::monitored(c)?
        .iter()
        .map(|h| {
            let body = crate::api::xml::build_with(|out| crate::api::host::host_xml(h, out));
            (h.oid, Resource::from_xml(&body, HOST_PATHS))
        })
        .collect())
}

/// At allocate: reads the clusters of the new VM's images' datastores and networks and sets
/// its automatic requirements ([`set_automatic`]) in its TEMPLATE `system`.
pub async fn at_allocate(
    ctx: &crate::api::Ctx,
    system: &mut template::Template,
) -> Result<(), crate::api::Failure> {
    let (images, nets) = crate::scheduler::images_and_networks_of(system);
    let mut stores: Vec<i64> = system
        .get_all("DISK")
        .filter_map(|a| a.vector_get("DATASTORE_ID"))
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    stores.sort_unstable();
    stores.dedup();
    // Most VMs name no image and no network: nothing to read then. Otherwise a few rows by
    // key, read here rather than on a blocking thread.
    let (clusters, of_stores) = if images.is_empty() && nets.is_empty() {
        (None, Vec::new())
    } else {
        crate::api::read_row_in(&ctx.pool, move |c| {
            use sqlstore::objects::cluster::{allowed_for, clusters_of, Member};
            let mut of_stores = Vec::new();
            for ds in stores {
                of_stores.push((ds, clusters_of(c, Member::Datastore, ds)?));
            }
            Ok((allowed_for(c, &images, &nets)?, of_stores))
        })
        .await?
    };
    // `update_disk_cluster_id`: each disk says the clusters of its datastore.
    for a in system.attrs.iter_mut().filter(|a| a.name == "DISK") {
        let template::Value::Vector(disk) = &mut a.value else {
            continue;
        };
        let ds = template::vector_get(disk, "DATASTORE_ID").and_then(|d| d.trim().parse().ok());
        if let Some((_, mut ids)) = of_stores.iter().find(|(d, _)| Some(*d) == ds).cloned() {
            ids.sort_unstable();
            let joined = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            disk.retain(|(k, _)| k != "CLUSTER_ID");
            disk.push(("CLUSTER_ID".into(), joined));
            disk.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    set_automatic(system, clusters.as_deref());
    Ok(())
}

/// Sets a new VM's AUTOMATIC_REQUIREMENTS, AUTOMATIC_DS_REQUIREMENTS and
/// AUTOMATIC_NIC_REQUIREMENTS as `VirtualMachine::automatic_requirements` builds them, from
/// the clusters its images' datastores and its networks are in (`clusters`, `None` when they
/// name none). Our system datastores have no COMPATIBLE_SYS_DS, so no `"ID" @>` terms.
pub fn set_automatic(t: &mut template::Template, clusters: Option<&[i64]>) {
    use template::Value;
    for name in [
        "AUTOMATIC_REQUIREMENTS",
        "AUTOMATIC_DS_REQUIREMENTS",
        "AUTOMATIC_NIC_REQUIREMENTS",
    ] {
        t.remove(name);
    }
    let mut ids: Vec<i64> = clusters.unwrap_or_default().to_vec();
    ids.sort_unstable();
    ids.dedup();
    let join = |term: &str| {
        ids.iter()
            .map(|id| format!("{term}{id}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut host = String::new();
    if !ids.is_empty() {
        host = format!("({}) & ", join("CLUSTER_ID = "));
    }
    let pinned = t
        .vector("TOPOLOGY")
        .and_then(|v| template::vector_get(v, "PIN_POLICY"))
        .is_some_and(|p| {
            matches!(
                p.trim().to_ascii_uppercase().as_str(),
                "CORE" | "THREAD" | "SHARED"
            )
        });
    host.push_str(if pinned {
        "(PIN_POLICY = PINNED)"
    } else {
        "!(PIN_POLICY = PINNED)"
    });
    if let Some(features) = t
        .vector("CPU_MODEL")
        .and_then(|v| template::vector_get(v, "FEATURES"))
    {
        for f in features.split(',').filter(|f| !f.is_empty()) {
            host.push_str(&format!(" & (KVM_CPU_FEATURES = \"*{f}*\")"));
        }
    }
    let shareable = t.get_all("DISK").any(|d| {
        d.vector_get("SHAREABLE")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("YES"))
    });
    let mut ds = String::new();
    if !ids.is_empty() {
        ds = format!("({})", join("\"CLUSTERS/ID\" @> "));
        t.push("AUTOMATIC_REQUIREMENTS", Value::Single(host));
        t.push("AUTOMATIC_NIC_REQUIREMENTS", Value::Single(ds.clone()));
        if let Some(tm) = t.single("TM_MAD_SYSTEM") {
            ds.push_str(&format!(" & (TM_MAD = \"{}\")", tm.trim()));
        }
    } else {
        t.push("AUTOMATIC_REQUIREMENTS", Value::Single(host));
    }
    if shareable {
        if !ds.is_empty() {
            ds.push_str(" & ");
        }
        ds.push_str("(SHARED = \"YES\")");
    }
    if !ds.is_empty() {
        t.push("AUTOMATIC_DS_REQUIREMENTS", Value::Single(ds));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn host() -> Resource {
        let xml = "<HOST><ID>2</ID><NAME>node-02</NAME><STATE>2</STATE>\
            <CLUSTER_ID>100</CLUSTER_ID><CLUSTER>prod</CLUSTER>\
            <HOST_SHARE><MEM_USAGE>0</MEM_USAGE><CPU_USAGE>100</CPU_USAGE>\
            <TOTAL_MEM>16777216</TOTAL_MEM><TOTAL_CPU>800</TOTAL_CPU>\
            <RUNNING_VMS>3</RUNNING_VMS><DATASTORES/></HOST_SHARE><VMS><ID>4</ID><ID>7</ID></VMS>\
            <TEMPLATE><HYPERVISOR><![CDATA[kvm]]></HYPERVISOR>\
            <KVM_CPU_FEATURES>vmx,sse4_2,avx</KVM_CPU_FEATURES>\
            <NETS>blue</NETS><NETS>green</NETS><CPUSPEED>2.5</CPUSPEED>\
            <PRIORITY>7</PRIORITY></TEMPLATE>\
            <MONITORING><CAPACITY><FREE_CPU>650</FREE_CPU><FREE_MEMORY>1000</FREE_MEMORY>\
            </CAPACITY></MONITORING></HOST>";
        Resource::from_xml(xml, HOST_PATHS)
    }

    fn yes(e: &str) -> bool {
        eval_bool(e, &host()).unwrap()
    }

    #[test]
    fn opennebulas_documented_requirements_match_as_in_oned() {
        // Examples from OpenNebula's "Scheduler" and template reference documentation.
        assert!(yes("ID = 2"));
        assert!(!yes("ID = 3"));
        assert!(yes("NAME = \"node-0*\""));
        assert!(yes("HYPERVISOR = kvm"));
        assert!(yes("CPUSPEED > 2.0"));
        assert!(yes("(CLUSTER_ID = 100) & !(PIN_POLICY = PINNED)"));
        assert!(yes("!(PIN_POLICY = PINNED)"));
        assert!(!yes(
            "(CLUSTER_ID = 0 | CLUSTER_ID = 101) & !(PIN_POLICY = PINNED)"
        ));
        assert!(yes("KVM_CPU_FEATURES = \"*sse4_2*\""));
        assert!(!yes("KVM_CPU_FEATURES = \"*avx512*\""));
        assert!(yes("NETS @> green") && !yes("NETS = green") && yes("NETS = blue"));
        assert!(yes("RUNNING_VMS < 10 & FREE_CPU > 600"));
        assert!(yes("CLUSTER = prod & NAME != \"other*\""));
        assert!(!yes("MISSING != 3") && !yes("MISSING != x") && !yes("MISSING = x"));
        assert!(yes("\"VMS/ID\" @> 7") && !yes("\"VMS/ID\" @> 5"));
        assert!(yes("\"/HOST/TEMPLATE/PRIORITY\" = 7"));
        assert!(!yes("NAME = \"\""));
        assert!(yes(""));
    }

    #[test]
    fn and_or_and_not_share_one_precedence_left_to_right() {
        // ((false | true) & false) as bison reads `%left '!' '&' '|'`.
        assert!(!yes("ID = 9 | ID = 2 & ID = 9"));
        assert!(yes("ID = 2 & ID = 9 | ID = 2"));
        assert!(yes("! ID = 9 & ID = 2"));
    }

    #[test]
    fn ranks_are_arithmetic_truncated_to_integers() {
        let h = host();
        assert_eq!(eval_rank("- RUNNING_VMS", &h), Ok(-3));
        assert_eq!(eval_rank("FREE_CPU", &h), Ok(650));
        assert_eq!(eval_rank("RUNNING_VMS * 2 + 1", &h), Ok(7));
        assert_eq!(eval_rank("(FREE_CPU - 50) / 100", &h), Ok(6));
        assert_eq!(eval_rank("CPUSPEED * 3", &h), Ok(7));
        assert_eq!(eval_rank("MISSING + 1", &h), Ok(1));
        assert_eq!(eval_rank("", &h), Ok(0));
        // `-1` is one integer token to the scanner, so this is two operands in a row.
        assert!(eval_rank("FREE_CPU -1", &h).is_err());
    }

    #[test]
    fn bad_expressions_are_bisons_syntax_errors() {
        let h = host();
        assert_eq!(
            eval_bool("ID = = 2", &h),
            Err("syntax error, unexpected '=' at line 1, columns 6:7".into())
        );
        assert_eq!(
            eval_bool("ID = 2 &", &h),
            Err("syntax error, unexpected $end at line 1, columns 8:9".into())
        );
        assert!(eval_bool("(ID = 2", &h).is_err());
        assert!(eval_bool("ID > abc", &h).is_err());
        assert!(eval_bool("ID", &h).is_err());
        assert!(check_bool("ID = 2 ^ 3").is_err());
        // A bare name ends at `-`: `node -02` is a name then an integer.
        assert!(eval_bool("NAME = node-02", &h).is_err());
        assert!(eval_bool("NAME = \"node-02\"", &h).unwrap());
    }

    #[test]
    fn hostile_expressions_are_bounded() {
        let deep = format!("{}ID = 2{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(eval_bool(&deep, &host()).is_err());
        let nots = format!("{}ID = 2", "!".repeat(1_000));
        assert!(eval_bool(&nots, &host()).is_err());
        let minus = format!("{}1", "- ".repeat(1_000));
        assert!(eval_rank(&minus, &host()).is_err());
        assert!(eval_bool(&"ID = 2 & ".repeat(2_000), &host()).is_err());
        assert!(!fnmatch(
            &"*a".repeat(500),
            &"a".repeat(2_000).replace("aa", "ab")
        ));
        // Every start of the star compares 4,000 characters: 160 million steps.
        let slow = format!("NAME = \"*{}b\"", "a".repeat(4_000));
        let long = Resource::from_xml(
            &format!("<HOST><NAME>{}</NAME></HOST>", "a".repeat(40_000)),
            HOST_PATHS,
        );
        assert_eq!(eval_bool(&slow, &long), Err(TOO_COSTLY.into()));
    }

    #[test]
    fn fnmatch_follows_posix() {
        assert!(fnmatch("*", "") && fnmatch("a*c", "abbbc") && fnmatch("a?c", "abc"));
        assert!(fnmatch("[a-c]x", "bx") && !fnmatch("[!a-c]x", "bx") && fnmatch("\\*", "*"));
        assert!(!fnmatch("a*d", "abc") && fnmatch("*sse4_2*", "vmx,sse4_2,avx"));
    }

    #[test]
    fn user_requirements_are_joined_to_the_automatic_ones() {
        assert_eq!(build_requirements("A = 1", ""), "A = 1");
        assert_eq!(build_requirements("", "B = 2"), "B = 2");
        assert_eq!(build_requirements("A = 1", "B = 2"), "A = 1 & ( B = 2 )");
    }

    #[test]
    fn automatic_requirements_are_built_as_opennebula_builds_them() {
        let auto = |text: &str, clusters: Option<&[i64]>| {
            let mut t = template::Template::parse(text).unwrap();
            set_automatic(&mut t, clusters);
            let get = |n: &str| t.single(n).map(str::to_string);
            (
                get("AUTOMATIC_REQUIREMENTS"),
                get("AUTOMATIC_DS_REQUIREMENTS"),
                get("AUTOMATIC_NIC_REQUIREMENTS"),
            )
        };
        assert_eq!(
            auto("CPU=1", None),
            (Some("!(PIN_POLICY = PINNED)".into()), None, None)
        );
        assert_eq!(
            auto("CPU=1", Some(&[100, 0, 100])),
            (
                Some("(CLUSTER_ID = 0 | CLUSTER_ID = 100) & !(PIN_POLICY = PINNED)".into()),
                Some("(\"CLUSTERS/ID\" @> 0 | \"CLUSTERS/ID\" @> 100)".into()),
                Some("(\"CLUSTERS/ID\" @> 0 | \"CLUSTERS/ID\" @> 100)".into()),
            )
        );
        let t = "TOPOLOGY=[PIN_POLICY=\"core\"]\nCPU_MODEL=[MODEL=\"host-passthrough\",FEATURES=\"vmx,avx\"]\n\
            DISK=[IMAGE_ID=\"1\",SHAREABLE=\"YES\"]\nTM_MAD_SYSTEM=\"ssh\"";
        assert_eq!(
            auto(t, Some(&[0])),
            (
                Some(
                    "(CLUSTER_ID = 0) & (PIN_POLICY = PINNED) & (KVM_CPU_FEATURES = \"*vmx*\") \
                     & (KVM_CPU_FEATURES = \"*avx*\")"
                        .into()
                ),
                Some("(\"CLUSTERS/ID\" @> 0) & (TM_MAD = \"ssh\") & (SHARED = \"YES\")".into()),
                Some("(\"CLUSTERS/ID\" @> 0)".into()),
            )
        );
    }

    #[test]
    fn hosts_are_kept_by_requirements_and_ranked() {
        let hosts = vec![(2, host())];
        let ask = VmAsk::of(
            "AUTOMATIC_REQUIREMENTS=\"(CLUSTER_ID = 100) & !(PIN_POLICY = PINNED)\"",
            "SCHED_REQUIREMENTS=\"ID = 2\"\nSCHED_RANK=\"FREE_CPU\"",
        );
        assert_eq!(
            ask.requirements,
            "(CLUSTER_ID = 100) & !(PIN_POLICY = PINNED) & ( ID = 2 )"
        );
        let m = match_hosts(&ask, &hosts).unwrap();
        assert_eq!(m.hosts.get(&2), Some(&Some(650)));
        let none = VmAsk::of("", "SCHED_REQUIREMENTS=\"ID = 3\"");
        assert!(match_hosts(&none, &hosts).unwrap().hosts.is_empty());
        let bad = VmAsk::of("", "SCHED_REQUIREMENTS=\"ID = = 3\"");
        assert_eq!(
            match_hosts(&bad, &hosts),
            Err(
                "Error in SCHED_REQUIREMENTS: 'ID = = 3', error: syntax error, unexpected '=' \
                 at line 1, columns 6:7"
                    .into()
            )
        );
    }
}
