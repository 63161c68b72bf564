//! `oneuser login`, `token-create`, `token-set`, `token-delete`, `token-delete-all` and
//! `chauth`, as OpenNebula's `oneuser` runs them: tokens come from `one.user.login`, are
//! written to the `ONE_AUTH` file (`login`, `token-create`) or to `~/.one/<md5>.token`
//! (`token-set`), and are found again by a prefix of the token.
//!
//! The session that asks is the CLI's own (`ONE_AUTH`, or `--user` and `--password`): OneHA's
//! CLIs never prompt for a password.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use md5::Digest;
use xmlrpc::Value;

use crate::client::Client;
use crate::xml::Element;

/// `oneuser --time` default: 10 hours, as OpenNebula's.
const DEFAULT_TIME: i32 = 36_000;

/// A token of `one.user.info`'s `LOGIN_TOKEN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub token: String,
    pub expiration: i64,
    pub egid: i64,
}

/// Where `oneuser login` writes: `$ONE_AUTH`, else `$HOME/.one/one_auth`, else
/// `/var/lib/one/.one/one_auth`, as OpenNebula's `OneUserHelper::ONE_AUTH`.
pub fn one_auth_path(one_auth: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    match (one_auth.filter(|p| !p.as_os_str().is_empty()), home) {
        (Some(p), _) => p,
        (None, Some(h)) => h.join(".one/one_auth"),
        (None, None) => PathBuf::from("/var/lib/one/.one/one_auth"),
    }
}

/// `~/.one/<md5 of user:token>.token`, the file `token-set` writes and `token-delete` removes.
pub fn token_file(home: Option<PathBuf>, auth: &str) -> Option<PathBuf> {
    let digest = hex::encode(md5::Md5::digest(auth.as_bytes()));
    home.map(|h| h.join(".one").join(format!("{digest}.token")))
}

/// `$HOME`, where `token-set` files go.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn call(client: &Client, method: &str, params: Vec<Value>) -> Result<Value, String> {
    client
        .call(method, params)
        .map_err(super::objects::err_text)
}

/// `one.user.info(-1)`: the caller.
fn me(client: &Client) -> Result<Element, String> {
    let xml = client
        .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
        .map_err(super::objects::err_text)?;
    Element::parse(&xml)
        .and_then(|e| e.expect("USER"))
        .map_err(|e| e.to_string())
}

pub fn tokens_of(user: &Element) -> Vec<Token> {
    user.children_named("LOGIN_TOKEN")
        .map(|t| Token {
            token: t.text_of("TOKEN").unwrap_or("").to_string(),
            expiration: t.int_of("EXPIRATION_TIME").unwrap_or(0),
            egid: t.int_of("EGID").unwrap_or(-1),
        })
        .collect()
}

/// OpenNebula's `find_token`: the tokens starting with `hint`, of group `group`, unexpired
/// unless `expired`; the one that lasts longest first.
pub fn find(
    tokens: &[Token],
    hint: Option<&str>,
    group: Option<i64>,
    expired: bool,
    now: i64,
) -> Vec<Token> {
    let mut found: Vec<Token> = tokens
        .iter()
        .filter(|t| hint.is_none_or(|h| t.token.starts_with(h)))
        .filter(|t| group.is_none_or(|g| t.egid == g))
        .filter(|t| expired || t.expiration == -1 || now <= t.expiration)
        .cloned()
        .collect();
    found.sort_by(|a, b| match (a.expiration, b.expiration) {
        (-1, _) | (_, -1) => a.expiration.cmp(&b.expiration),
        (x, y) => y.cmp(&x),
    });
    found
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn time_option(value: Option<String>) -> Result<i32, String> {
    match value {
        None => Ok(DEFAULT_TIME),
        Some(v) => v.parse().map_err(|_| format!("Invalid --time '{v}'")),
    }
}

/// What `oneuser login` is asked for.
pub struct Login {
    pub user: Option<String>,
    pub time: Option<String>,
    pub group: Option<String>,
    pub force: bool,
    /// The file to write the token to ([`one_auth_path`]).
    pub auth_file: PathBuf,
}

/// `oneuser login|token-create [<user>] [--time <s>] [--group <gid>] [--force]`: asks for a
/// token and writes `<user>:<token>` to the `ONE_AUTH` file. An existing file is replaced only
/// with `--force` or after a yes on stdin.
pub fn login(
    client: &Client,
    l: Login,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), String> {
    let Login {
        user,
        time,
        group,
        force,
        auth_file: path,
    } = l;
    let name = match user {
        Some(u) => u,
        None => me(client)?
            .text_of("NAME")
            .map_err(|e| e.to_string())?
            .to_string(),
    };
    let egid: i32 = match group {
        Some(g) => g.parse().map_err(|_| format!("Invalid --group '{g}'"))?,
        None => -1,
    };
    let token = call(
        client,
        wire::method::USER_LOGIN,
        vec![
            Value::String(name.clone()),
            Value::String(String::new()),
            Value::Int(time_option(time)?),
            Value::Int(egid),
        ],
    )?;
    let token = token.as_str().unwrap_or_default().to_string();
    let info = format!("Authentication Token is:\n{name}:{token}");
    let say = |out: &mut dyn Write, text: &str| writeln!(out, "{text}").map_err(|e| e.to_string());
    if path.is_file() && !force {
        say(
            out,
            &format!(
                "  * Do you want to overwrite the file {}? (Y|N): ",
                path.display()
            ),
        )?;
        let mut answer = String::new();
        input.read_line(&mut answer).map_err(|e| e.to_string())?;
        match answer.trim() {
            "Y" | "y" | "yes" | "YES" | "Yes" => {
                say(out, &format!("overwriting {} ...", path.display()))?
            }
            "N" | "n" | "no" | "NO" | "No" => {
                return say(
                    out,
                    &format!(
                        "File {} exists, use --force to overwrite.\n{info}",
                        path.display()
                    ),
                )
            }
            _ => return Err("Not valid option.".into()),
        }
    }
    write_private(&path, &format!("{name}:{token}"))?;
    say(out, &info)
}

/// Writes `content` to `path` (0600), making its folder.
fn write_private(path: &std::path::Path, content: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `oneuser token-set [--token <prefix>|--group <gid>|--global]`: writes the caller's
/// longest-lasting matching token to its own file and prints how to use it.
pub fn set(
    client: &Client,
    hint: Option<String>,
    group: Option<String>,
    global: bool,
    home: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let user = me(client)?;
    let (hint, group) = match (hint, group, global) {
        (Some(h), _, _) => (Some(h), None),
        (None, Some(g), _) => (None, Some(g.parse::<i64>().map_err(|_| format!("Invalid --group '{g}'"))?)),
        (None, None, true) => (None, Some(-1)),
        (None, None, false) => {
            return Err("One of these options must be supplied:\n[--token <token>] [--group <id|group>] [--global]".into())
        }
    };
    let found = find(&tokens_of(&user), hint.as_deref(), group, false, now());
    let Some(first) = found.first() else {
        return Err("No valid tokens found.".into());
    };
    if let (Some(h), true) = (&hint, found.len() > 1) {
        return Err(format!("More than one token starting with '{h}' found."));
    }
    let name = user.text_of("NAME").map_err(|e| e.to_string())?;
    let auth = format!("{name}:{}", first.token);
    let path = token_file(home, &auth).ok_or("HOME is not set")?;
    write_private(&path, &auth)?;
    writeln!(
        out,
        "export ONE_AUTH={}; export ONE_EGID={}",
        path.display(),
        first.egid
    )
    .map_err(|e| e.to_string())
}

/// `oneuser token-delete <prefix>`: ends the caller's one token starting with `prefix`
/// (expired ones included) and removes its `token-set` file.
pub fn delete(
    client: &Client,
    hint: &str,
    home: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let user = me(client)?;
    let found = find(&tokens_of(&user), Some(hint), None, true, now());
    let token = match found.as_slice() {
        [one] => one.token.clone(),
        [] => return Err("No tokens found.".into()),
        _ => return Err(format!("More than one token starting with '{hint}' found.")),
    };
    let name = user.text_of("NAME").map_err(|e| e.to_string())?.to_string();
    call(
        client,
        wire::method::USER_LOGIN,
        vec![
            Value::String(name.clone()),
            Value::String(token.clone()),
            Value::Int(0),
        ],
    )?;
    writeln!(out, "Token removed.").map_err(|e| e.to_string())?;
    if let Some(path) = token_file(home, &format!("{name}:{token}")) {
        if std::fs::remove_file(&path).is_ok() {
            writeln!(out, "Removing {}", path.display()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `oneuser token-delete-all <user>`: ends every token of `user`.
pub fn delete_all(client: &Client, user: &str) -> Result<(), String> {
    if user.chars().all(|c| c.is_ascii_digit()) {
        return Err("The argument should be the username, not the ID.".into());
    }
    call(
        client,
        wire::method::USER_LOGIN,
        vec![
            Value::String(user.to_string()),
            Value::String(String::new()),
            Value::Int(0),
        ],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(token: &str, expiration: i64, egid: i64) -> Token {
        Token {
            token: token.into(),
            expiration,
            egid,
        }
    }

    #[test]
    fn tokens_are_found_by_prefix_and_group_longest_lasting_first() {
        let all = [
            t("abc1", 100, -1),
            t("abc2", 300, -1),
            t("abd", -1, 5),
            t("old", 10, -1),
        ];
        let got: Vec<_> = find(&all, Some("abc"), None, false, 50)
            .into_iter()
            .map(|t| t.token)
            .collect();
        assert_eq!(got, ["abc2", "abc1"]);
        assert_eq!(find(&all, None, Some(5), false, 50)[0].token, "abd");
        assert!(
            find(&all, Some("old"), None, false, 50).is_empty(),
            "expired"
        );
        assert_eq!(find(&all, Some("old"), None, true, 50).len(), 1);
    }

    #[test]
    fn files_are_where_opennebulas_oneuser_puts_them() {
        assert_eq!(
            one_auth_path(None, Some("/home/a".into())),
            PathBuf::from("/home/a/.one/one_auth")
        );
        assert_eq!(
            one_auth_path(Some("/tmp/x".into()), Some("/home/a".into())),
            PathBuf::from("/tmp/x")
        );
        // md5("oneadmin:abc"), from md5sum
        assert_eq!(
            token_file(Some("/h".into()), "oneadmin:abc"),
            Some(PathBuf::from(
                "/h/.one/7f087ac5737df2c6e8b99f8177cb5df2.token"
            ))
        );
    }
}
