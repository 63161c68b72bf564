//! OpenNebula's VM template variables (`src/parsers/vm_var_parser.l` and `vm_var_syntax.y`),
//! as `VirtualMachine::parse_template_attribute` substitutes them in a VM's CONTEXT and
//! SCHED_REQUIREMENTS:
//!
//! - text is copied as it is up to a `$` (a backslash and the character after it included);
//! - `$VAR` is the VM's own value (`$NAME`, `$VMID`, `$UID`, `$UNAME`, `$GID`, `$GNAME`), else
//!   its template's single attribute VAR, else its user template's;
//! - `$VAR[ATTR]` is ATTR of its first VAR vector, `$VAR[ATTR, KEY = "value"]` of the first whose
//!   KEY is value; `$NETWORK[...]` reads the address range, then the network, of the NIC named
//!   by NIC_ID, NETWORK_ID or NETWORK; `$IMAGE[...]` the image of the disk named by IMAGE_ID or
//!   IMAGE; `$USER[ATTR]` the owner's template;
//! - the character that ends a variable is written after its value; a variable that breaks the
//!   grammar (a lone `$`, an unclosed `[`) refuses the text, with the line and columns of the
//!   token where it broke, as bison reports it.

use template::Template;

use super::vm_context::Lookup;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Raw(String),
    Var(String),
    Equal,
    Comma,
    Open,
    Close,
    Str(String),
    /// The end of a variable: the character that ended it, written after its value.
    End(Option<char>),
}

/// Where a token is, as flex counts: its line and its byte columns `[first, last)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spot {
    line: usize,
    first: usize,
    last: usize,
}

/// `vm_var_parser.l`: the tokens of `s` and where each is, then where the input ended (the
/// location bison gives `$end`: the last text flex matched). A character no rule of a value
/// takes is skipped, as flex's default rule (ECHO) does.
fn lex(s: &str) -> (Vec<(Tok, Spot)>, Spot) {
    #[derive(PartialEq)]
    enum State {
        Text,
        Var,
        Value,
    }
    let b = s.as_bytes();
    let (mut i, mut line, mut state) = (0, 1, State::Text);
    let mut out = Vec::new();
    let mut last = Spot {
        line: 1,
        first: 0,
        last: 0,
    };
    let blank = |c: u8| c == b' ' || c == b'\t';
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    loop {
        let start = i;
        let tok = match state {
            State::Text if i >= b.len() => break,
            State::Text if b[i] == b'$' => {
                i += 1;
                state = State::Var;
                None
            }
            State::Text => {
                while i < b.len() && b[i] != b'$' {
                    i += if b[i] == b'\\' && i + 1 < b.len() {
                        2
                    } else {
                        1
                    };
                }
                Some(Tok::Raw(s[start..i].to_string()))
            }
            State::Var if i >= b.len() => {
                state = State::Text;
                out.push((Tok::End(None), last));
                continue;
            }
            State::Var => {
                let mut j = i;
                while j < b.len() && blank(b[j]) {
                    j += 1;
                }
                match b.get(j) {
                    Some(b'=') => {
                        j += 1;
                        while j < b.len() && blank(b[j]) {
                            j += 1;
                        }
                        i = j;
                        state = State::Value;
                        Some(Tok::Equal)
                    }
                    Some(b',') => {
                        j += 1;
                        while j < b.len() && blank(b[j]) {
                            j += 1;
                        }
                        i = j;
                        Some(Tok::Comma)
                    }
                    Some(b']') => {
                        i = j + 1;
                        Some(Tok::Close)
                    }
                    _ if b[i] == b'[' => {
                        i += 1;
                        while i < b.len() && blank(b[i]) {
                            i += 1;
                        }
                        Some(Tok::Open)
                    }
                    _ if word(b[i]) => {
                        while i < b.len() && word(b[i]) {
                            i += 1;
                        }
                        Some(Tok::Var(s[start..i].to_string()))
                    }
                    _ if b[i] == b'$' => {
                        i += 1;
                        Some(Tok::End(None))
                    }
                    _ => {
                        let c = s[i..].chars().next().unwrap_or(' ');
                        i += c.len_utf8();
                        state = State::Text;
                        Some(Tok::End(Some(c)))
                    }
                }
            }
            // No rule for the end of a value: flex's end of input, `$end`.
            State::Value if i >= b.len() => break,
            State::Value => {
                let closing = (b[i] == b'"')
                    .then(|| s[i + 1..].find('"').map(|k| i + 1 + k))
                    .flatten();
                let mut j = i;
                while j < b.len() && b[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                match closing {
                    Some(close) => {
                        i = close + 1;
                        state = State::Var;
                        Some(Tok::Str(s[start + 1..close].to_string()))
                    }
                    None if j > i => {
                        i = j;
                        state = State::Var;
                        Some(Tok::Str(s[start..j].to_string()))
                    }
                    None => {
                        i += s[i..].chars().next().map_or(1, char::len_utf8);
                        None
                    }
                }
            }
        };
        line += s[start..i].matches('\n').count();
        last = Spot {
            line,
            first: start,
            last: i,
        };
        if let Some(tok) = tok {
            out.push((tok, last));
        }
    }
    (out, last)
}

/// The token kinds of the grammar's three variable forms, after the variable's name:
/// `$VAR`, `$VAR[ATTR]`, `$VAR[ATTR, KEY = value]`.
const FORMS: [&[Kind]; 3] = [
    &[Kind::End],
    &[Kind::Open, Kind::Var, Kind::Close, Kind::End],
    &[
        Kind::Open,
        Kind::Var,
        Kind::Comma,
        Kind::Var,
        Kind::Equal,
        Kind::Str,
        Kind::Close,
        Kind::End,
    ],
];

/// `vm_file_var_syntax.y`'s two forms after `$FILE`: `[VAR=VAL]` and `[VAR=VAL, VAR2=VAL2]`.
const FILE_FORMS: [&[Kind]; 2] = [
    &[
        Kind::Open,
        Kind::Var,
        Kind::Equal,
        Kind::Str,
        Kind::Close,
        Kind::End,
    ],
    &[
        Kind::Open,
        Kind::Var,
        Kind::Equal,
        Kind::Str,
        Kind::Comma,
        Kind::Var,
        Kind::Equal,
        Kind::Str,
        Kind::Close,
        Kind::End,
    ],
];

/// The grammar's tokens, in bison's numbering (the order its messages list them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Equal,
    Comma,
    Open,
    Close,
    End,
    Str,
    Var,
    Raw,
}

impl Kind {
    /// Its name in the parsers' `yytname`.
    fn name(self) -> &'static str {
        match self {
            Kind::Equal => "EQUAL",
            Kind::Comma => "COMMA",
            Kind::Open => "OBRACKET",
            Kind::Close => "CBRACKET",
            Kind::End => "EOA",
            Kind::Str => "STRING",
            Kind::Var => "VARIABLE",
            Kind::Raw => "RSTRING",
        }
    }
}

fn kind(t: &Tok) -> Kind {
    match t {
        Tok::Raw(_) => Kind::Raw,
        Tok::Var(_) => Kind::Var,
        Tok::Equal => Kind::Equal,
        Tok::Comma => Kind::Comma,
        Tok::Open => Kind::Open,
        Tok::Close => Kind::Close,
        Tok::Str(_) => Kind::Str,
        Tok::End(_) => Kind::End,
    }
}

fn text_of(t: &Tok) -> String {
    match t {
        Tok::Var(v) => v.to_ascii_uppercase(),
        Tok::Str(v) => v.clone(),
        _ => String::new(),
    }
}

/// What the parsers' `yyerror` writes for a syntax error, as bison's verbose messages say it
/// (both grammars define `YYERROR_VERBOSE`): `got` is the lookahead (`None`: `$end`), `expected`
/// what the state would have shifted, `$end` first (`None`). Columns count from 1, as the
/// location bison starts its lexer from.
fn syntax_error(got: Option<Kind>, expected: &[Option<Kind>], at: Spot) -> String {
    let name = |k: Option<Kind>| k.map_or("$end", Kind::name);
    let mut expected = expected.to_vec();
    expected.sort();
    expected.dedup();
    let mut out = format!("syntax error, unexpected {}", name(got));
    if expected.len() <= 4 {
        for (n, k) in expected.iter().enumerate() {
            out.push_str(if n == 0 { ", expecting " } else { " or " });
            out.push_str(name(*k));
        }
    }
    format!(
        "{out} at line {}, columns {}:{}",
        at.line,
        at.first + 1,
        at.last + 1
    )
}

/// One variable of the token list: which of `forms` follows its name at `toks[k]`, or the
/// syntax error where none does.
fn variable_form(
    forms: &[&'static [Kind]],
    toks: &[(Tok, Spot)],
    k: usize,
    end: Spot,
) -> Result<&'static [Kind], String> {
    let after = &toks[k + 1..];
    let fits = |form: &[Kind]| {
        form.iter()
            .zip(after)
            .take_while(|(want, (got, _))| **want == kind(got))
            .count()
    };
    if let Some(form) = forms.iter().find(|f| fits(f) == f.len()) {
        return Ok(form);
    }
    let broke = forms.iter().map(|f| fits(f)).max().unwrap_or(0);
    let expected: Vec<Option<Kind>> = forms
        .iter()
        .filter(|f| fits(f) >= broke)
        .filter_map(|f| f.get(broke).copied().map(Some))
        .collect();
    Err(match after.get(broke) {
        Some((got, at)) => syntax_error(Some(kind(got)), &expected, *at),
        None => syntax_error(None, &expected, end),
    })
}

/// `VirtualMachine::parse_template_attribute`: `text` with its variables replaced by what they
/// name in the VM's templates `t` and `user` and in `l`; refused as `Error parsing: <text>.
/// syntax error, unexpected X, expecting Y at line L, columns A:B`.
pub fn parse(text: &str, t: &Template, user: &Template, l: &Lookup) -> Result<String, String> {
    let refuse = |e: String| format!("Error parsing: {text}. {e}");
    let (toks, end) = lex(text);
    let nics = std::cell::OnceCell::new();
    let mut out = String::new();
    let mut k = 0;
    while let Some((tok, at)) = toks.get(k) {
        match tok {
            Tok::Raw(r) => {
                out.push_str(r);
                k += 1;
                continue;
            }
            Tok::Var(_) => {}
            other => {
                let mut expected = vec![Some(Kind::Var), Some(Kind::Raw)];
                if k > 0 {
                    expected.push(None);
                }
                return Err(refuse(syntax_error(Some(kind(other)), &expected, *at)));
            }
        }
        let form = variable_form(&FORMS, &toks, k, end).map_err(refuse)?;
        let after = &toks[k + 1..];
        let name = text_of(tok);
        let arg = |n: usize| after.get(n).map(|x| text_of(&x.0)).unwrap_or_default();
        let value = match form.len() {
            1 => single(&name, t, user, l),
            4 => vector((&name, &arg(1), "", ""), t, l, &nics),
            _ => vector((&name, &arg(1), &arg(3), &arg(5)), t, l, &nics),
        };
        out.push_str(&value);
        if let Some((Tok::End(Some(c)), _)) = after.get(form.len() - 1) {
            out.push(*c);
        }
        k += 1 + form.len();
    }
    Ok(out)
}

/// One `$FILE[VAR=VAL(, VAR2=VAL2)]` of a FILES_DS attribute: its variable's name (upper case),
/// then each pair, the names in upper case.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRef {
    pub variable: String,
    pub pairs: Vec<(String, String)>,
}

/// `VirtualMachine::parse_file_attribute`'s parse (`vm_file_var_syntax.y` over the same lexer)
/// of `text` (leading blanks already removed): the references in order, then the syntax error
/// that stopped the parse, if one did. oned resolves each reference as the parser reduces it, so
/// a reference that does not resolve is reported before a later syntax error.
pub fn file_refs(text: &str) -> (Vec<FileRef>, Option<String>) {
    let (toks, end) = lex(text);
    let mut refs = Vec::new();
    let mut k = 0;
    while let Some((tok, at)) = toks.get(k) {
        if !matches!(tok, Tok::Var(_)) {
            let mut expected = vec![Some(Kind::Var)];
            if k > 0 {
                expected.push(None);
            }
            return (refs, Some(syntax_error(Some(kind(tok)), &expected, *at)));
        }
        let form = match variable_form(&FILE_FORMS, &toks, k, end) {
            Ok(f) => f,
            Err(e) => return (refs, Some(e)),
        };
        let arg = |n: usize| {
            toks.get(k + 1 + n)
                .map(|x| text_of(&x.0))
                .unwrap_or_default()
        };
        let mut pairs = vec![(arg(1), arg(3))];
        if form.len() == 10 {
            pairs.push((arg(5), arg(7)));
        }
        refs.push(FileRef {
            variable: text_of(tok),
            pairs,
        });
        k += 1 + form.len();
    }
    if toks.is_empty() {
        // An empty attribute: bison's first state wants a variable.
        return (refs, Some(syntax_error(None, &[Some(Kind::Var)], end)));
    }
    (refs, None)
}

/// The NICs (then NIC aliases) of a template by NIC_ID, the first of each id: the network
/// variables of every NIC look theirs up, so a VM of many NICs stays linear.
type NicIndex = std::collections::HashMap<String, (i64, i64)>;

fn nic_index(t: &Template) -> NicIndex {
    let mut out = NicIndex::new();
    for nic in t
        .get_all("NIC")
        .chain(t.get_all("NIC_ALIAS"))
        .filter_map(|a| a.value.as_vector())
    {
        let id = template::vector_get(nic, "NIC_ID")
            .unwrap_or("")
            .to_string();
        if let Some(leased) = leased_in(nic) {
            out.entry(id).or_insert(leased);
        }
    }
    out
}

/// The network and address range a NIC's address comes from.
fn leased_in(nic: &[(String, String)]) -> Option<(i64, i64)> {
    let num = |k: &str| template::vector_get(nic, k)?.trim().parse::<i64>().ok();
    Some((num("NETWORK_ID")?, num("AR_ID")?))
}

/// `insert_single`.
fn single(name: &str, t: &Template, user: &Template, l: &Lookup) -> String {
    match name {
        // `to_xml64` of the whole VM: not offered here.
        "TEMPLATE" => String::new(),
        "UID" => l.uid.to_string(),
        "UNAME" => l.uname.clone(),
        "GID" => l.gid.to_string(),
        "GNAME" => l.gname.clone(),
        "NAME" => l.name.clone(),
        // `VirtualMachine::insert` sets VMID before it parses the context.
        "VMID" => l.vmid(),
        _ => t
            .single(name)
            .filter(|v| !v.is_empty())
            .or_else(|| user.single(name))
            .unwrap_or("")
            .to_string(),
    }
}

/// `insert_vector`; `nics` is built the first time a `$NETWORK[..., NIC_ID=...]` asks.
fn vector(
    (name, vname, vvar, vval): (&str, &str, &str, &str),
    t: &Template,
    l: &Lookup,
    nics: &std::cell::OnceCell<NicIndex>,
) -> String {
    match name {
        "NETWORK" => network_attr(t, l, (vname, vvar, vval), nics),
        "IMAGE" => image_attr(t, l, vname, vvar, vval),
        "USER" if vname == "TEMPLATE" => String::new(),
        "USER" => l.user.single(vname).unwrap_or("").to_string(),
        _ => {
            let found = t
                .get_all(name)
                .filter_map(|a| a.value.as_vector())
                .find(|v| vvar.is_empty() || template::vector_get(v, vvar) == Some(vval));
            found
                .and_then(|v| template::vector_get(v, vname))
                .unwrap_or("")
                .to_string()
        }
    }
}

/// `get_network_attribute`: the attribute of the address range, else of the network, of the
/// NIC (then NIC alias) whose `vvar` (NETWORK, NETWORK_ID or NIC_ID) is `vval`.
fn network_attr(
    t: &Template,
    l: &Lookup,
    (vname, vvar, vval): (&str, &str, &str),
    nics: &std::cell::OnceCell<NicIndex>,
) -> String {
    if !["NETWORK", "NETWORK_ID", "NIC_ID"].contains(&vvar) {
        return String::new();
    }
    let of = |attr: &str| {
        t.get_all(attr)
            .filter_map(|a| a.value.as_vector())
            .find(|n| template::vector_get(n, vvar).unwrap_or("") == vval)
            .and_then(leased_in)
    };
    let found = match vvar {
        "NIC_ID" => nics.get_or_init(|| nic_index(t)).get(vval).copied(),
        _ => of("NIC").or_else(|| of("NIC_ALIAS")),
    };
    let Some((vnet, ar)) = found else {
        return String::new();
    };
    let Some(vt) = l.nets.get(&vnet) else {
        return String::new();
    };
    if vname == "TEMPLATE" {
        return String::new();
    }
    let in_range = vt
        .get_all("AR")
        .filter_map(|a| a.value.as_vector())
        .find(|r| template::vector_get(r, "AR_ID").map(str::trim) == Some(&ar.to_string()))
        .and_then(|r| template::vector_get(r, vname))
        .filter(|v| !v.is_empty());
    in_range
        .or_else(|| vt.single(vname))
        .unwrap_or("")
        .to_string()
}

/// `get_image_attribute`: the attribute of the image of the disk whose `vvar` (IMAGE or
/// IMAGE_ID) is `vval`.
fn image_attr(t: &Template, l: &Lookup, vname: &str, vvar: &str, vval: &str) -> String {
    if !["IMAGE", "IMAGE_ID"].contains(&vvar) || vname == "TEMPLATE" {
        return String::new();
    }
    t.get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .find(|d| template::vector_get(d, vvar).unwrap_or("") == vval)
        .and_then(|d| {
            template::vector_get(d, "IMAGE_ID")?
                .trim()
                .parse::<i64>()
                .ok()
        })
        .and_then(|id| l.images.get(&id))
        .and_then(|it| it.single(vname))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn variables_read_the_vm_its_owner_its_networks_and_images() {
        let vm = t("CPU = 1\nDISK = [ IMAGE_ID = 7, IMAGE = deb ]\n\
                    NIC = [ NIC_ID = 0, NETWORK_ID = 3, AR_ID = 0, IP = 10.0.0.2 ]");
        let user = t("ROLE = db");
        let l = super::super::vm_context::tests::lookup();
        let p = |s: &str| parse(s, &vm, &user, &l).unwrap();
        assert_eq!(
            p("$NAME of $UNAME ($UID) in $GNAME"),
            "web of alice (5) in users"
        );
        assert_eq!(
            p("cpu=$CPU role=$ROLE missing=$NOPE."),
            "cpu=1 role=db missing=."
        );
        assert_eq!(p("$USER[SSH_PUBLIC_KEY]"), "ssh-ed25519 AAAA alice");
        assert_eq!(p("$NIC[IP]"), "10.0.0.2");
        assert_eq!(p("$NIC[ IP , NETWORK_ID = \"3\" ]"), "10.0.0.2");
        assert_eq!(p("$NETWORK[GATEWAY, NIC_ID=\"0\"]"), "10.0.0.1");
        assert_eq!(p("$NETWORK[DNS, NETWORK_ID=3]"), "8.8.8.8");
        assert_eq!(p("$NETWORK[DNS]"), "");
        assert_eq!(p("$IMAGE[OS_FAMILY, IMAGE=\"deb\"]"), "debian");
        assert_eq!(p("a\\$b $CPU$CPU"), "a\\$b 11");
    }

    #[test]
    fn a_lone_dollar_or_a_broken_variable_is_refused_with_its_column() {
        let (vm, user, l) = (
            Template::default(),
            Template::default(),
            super::super::vm_context::tests::lookup(),
        );
        let err = |text: &str| parse(text, &vm, &user, &l).unwrap_err();
        // flex's locations, which bison starts at column 1; `$end` where the input ended.
        assert_eq!(
            err("cost 5$"),
            "Error parsing: cost 5$. syntax error, unexpected EOA, expecting $end or VARIABLE \
             or RSTRING at line 1, columns 7:8"
        );
        assert_eq!(
            err("$NIC[IP"),
            "Error parsing: $NIC[IP. syntax error, unexpected EOA, expecting COMMA or CBRACKET \
             at line 1, columns 6:8"
        );
        assert_eq!(
            err("$NIC[IP, A=]"),
            "Error parsing: $NIC[IP, A=]. syntax error, unexpected $end, expecting STRING at \
             line 1, columns 12:13"
        );
        assert_eq!(
            err("$NIC[IP]x"),
            "Error parsing: $NIC[IP]x. syntax error, unexpected VARIABLE, expecting EOA at \
             line 1, columns 9:10"
        );
        assert_eq!(
            err("$NIC$["),
            "Error parsing: $NIC$[. syntax error, unexpected OBRACKET, expecting $end or \
             VARIABLE or RSTRING at line 1, columns 6:7"
        );
    }

    #[test]
    fn file_references_parse_as_the_file_grammar_does() {
        let refs = |text: &str| file_refs(text);
        let (got, err) = refs("$FILE[IMAGE_ID=3] $file[image=\"ctx\", image_uname=ann]");
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                FileRef {
                    variable: "FILE".into(),
                    pairs: vec![("IMAGE_ID".into(), "3".into())],
                },
                FileRef {
                    variable: "FILE".into(),
                    pairs: vec![
                        ("IMAGE".into(), "ctx".into()),
                        ("IMAGE_UNAME".into(), "ann".into())
                    ],
                },
            ]
        );
        // Two blanks between variables: the second is text the grammar has no place for.
        let (got, err) = refs("$FILE[IMAGE_ID=3]  $FILE[IMAGE_ID=4]");
        assert_eq!(got.len(), 1);
        assert_eq!(
            err.as_deref(),
            Some(
                "syntax error, unexpected RSTRING, expecting $end or VARIABLE at line 1, \
                 columns 19:20"
            )
        );
        let (_, err) = refs("$FILE[IMAGE_ID]");
        assert_eq!(
            err.as_deref(),
            Some("syntax error, unexpected CBRACKET, expecting EQUAL at line 1, columns 15:16")
        );
    }
}
