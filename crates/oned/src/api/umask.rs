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
    let conf = || {
        ctx.config
            .raw
            .single("DEFAULT_UMASK")
            .unwrap_or(DEFAULT_UMASK)
    };
    let umask = s.umask.unwrap_or_else(|| octal(conf()));
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

/// The UMASK a user's template sets (`oneuser umask`), if it sets one: `User::get_umask` reads
/// any non-empty value, else oned.conf's.
pub fn of_user_template(text: &str) -> Option<i64> {
    if !text.contains("UMASK") {
        return None;
    }
    let t = Template::parse(text).ok()?;
    let value = t.single("UMASK").filter(|v| !v.is_empty())?;
    Some(octal(value))
}

/// As `iss >> oct >> umask; umask & 0777` with a C++ `int`: leading blanks, a sign, the octal
/// digits that follow; 0 when there are none, the `int`'s bound past it.
fn octal(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = rest.bytes().take_while(|b| (b'0'..=b'7').contains(b));
    let mut value: i64 = 0;
    let mut any = false;
    for d in digits {
        any = true;
        value = (value * 8 + i64::from(d - b'0')).min(i64::from(i32::MAX) + 1);
    }
    let value = match (any, negative) {
        (false, _) => 0,
        (true, false) => value.min(i64::from(i32::MAX)),
        (true, true) => (-value).max(i64::from(i32::MIN)),
    };
    value & 0o777
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
        assert_eq!(octal(" 117x"), 0o117);
        assert_eq!(octal("7777"), 0o777);
        // What `iss >> oct` makes of the rest: nothing read is 0, a sign counts, an overflow
        // is the int's bound.
        assert_eq!(octal("abc"), 0);
        assert_eq!(octal("-1"), 0o777);
        assert_eq!(octal("+22"), 0o22);
        assert_eq!(octal("77777777777777777777"), i64::from(i32::MAX) & 0o777);
        assert_eq!(octal("-77777777777777777777"), 0);
        assert_eq!(of_user_template("UMASK = \"abc\""), Some(0));
        assert_eq!(of_user_template("UMASK = \"\""), None);
        assert_eq!(of_user_template("UMASK = \"007\""), Some(0o007));
        assert_eq!(of_user_template("LABEL = x"), None);
        let kept = kept_of_user_template("LABEL = x\nUMASK = \"7\"");
        assert_eq!(kept, "UMASK = \"007\"");
        assert_eq!(of_user_template(&kept), Some(0o007));
        assert_eq!(kept_of_user_template("LABEL = x"), "");
    }
}
