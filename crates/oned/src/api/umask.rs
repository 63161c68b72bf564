//! The permissions of a new object, as `PoolObjectSQL::set_umask` gives them: all of 0777 for an
//! object of oneadmin or of group oneadmin, else 0666 (0660 when oned.conf's
//! ENABLE_OTHER_PERMISSIONS is NO), less its maker's umask: the UMASK of the user's template
//! (`oneuser umask`), else oned.conf's DEFAULT_UMASK (`User::get_umask`; 177 when unset).

use template::Template;

use super::Ctx;
use crate::auth::Session;

const DEFAULT_UMASK: &str = "177";

/// The permissions of what `s` makes for itself.
pub fn new_object(ctx: &Ctx, s: &Session) -> i64 {
    let conf = ctx.config.raw.single("DEFAULT_UMASK");
    let umask = s
        .umask
        .or_else(|| octal(conf.unwrap_or(DEFAULT_UMASK)))
        .unwrap_or(0o177);
    perms(s.uid, s.gid, super::owned::other_permissions(ctx), umask)
}

/// What a session needs of a user's template, for a copy kept in memory: its UMASK alone.
pub fn kept_of_user_template(text: &str) -> String {
    match of_user_template(text) {
        Some(umask) => format!("UMASK = \"{umask:03o}\""),
        None => String::new(),
    }
}

fn perms(uid: i64, gid: i64, enable_other: bool, umask: i64) -> i64 {
    let all = if uid == 0 || gid == 0 {
        0o777
    } else if enable_other {
        0o666
    } else {
        0o660
    };
    all & !umask
}

/// The UMASK a user's template sets (`oneuser umask`), if it sets one.
pub fn of_user_template(text: &str) -> Option<i64> {
    if !text.contains("UMASK") {
        return None;
    }
    let t = Template::parse(text).ok()?;
    let value = t.single("UMASK")?.to_string();
    octal(&value)
}

/// As `iss >> oct`: the leading octal digits, masked to 0777.
fn octal(text: &str) -> Option<i64> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(|c| ('0'..='7').contains(c))
        .collect();
    let value = i64::from_str_radix(&digits, 8).ok()?;
    Some(value & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umasks_take_bits_off_what_set_umask_starts_from() {
        // DEFAULT_UMASK: owner use and manage, for anyone.
        assert_eq!(perms(0, 0, true, 0o177), 0o600);
        assert_eq!(perms(5, 100, true, 0o177), 0o600);
        // `oneuser umask 117` opens the group; other stays shut unless allowed.
        assert_eq!(perms(5, 100, true, 0o117), 0o660);
        assert_eq!(perms(5, 100, true, 0o002), 0o664);
        assert_eq!(perms(5, 100, false, 0o002), 0o660);
        // ADMIN bits only for oneadmin's objects.
        assert_eq!(perms(5, 100, true, 0), 0o666);
        assert_eq!(perms(5, 0, true, 0), 0o777);
        assert_eq!(octal(" 117x"), Some(0o117));
        assert_eq!(octal("7777"), Some(0o777));
        assert_eq!(octal("abc"), None);
        assert_eq!(of_user_template("UMASK = \"007\""), Some(0o007));
        assert_eq!(of_user_template("LABEL = x"), None);
        let kept = kept_of_user_template("LABEL = x\nUMASK = \"7\"");
        assert_eq!(kept, "UMASK = \"007\"");
        assert_eq!(of_user_template(&kept), Some(0o007));
        assert_eq!(kept_of_user_template("LABEL = x"), "");
    }
}
