//! oned.conf attributes a user or its group may set for itself in an `OPENNEBULA` vector of its
//! template (API_LIST_ORDER, DEFAULT_IMAGE_PERSISTENT, DEFAULT_IMAGE_PERSISTENT_NEW): the
//! user's first, then the group's, then oned.conf (`Nebula::get_configuration_attribute(uid,
//! gid, ...)`).

use sqlstore::Optional;
use template::Template;

use super::{Ctx, Failure};
use crate::auth::Session;

/// The value of `name` for session `s`, if the user, its group or oned.conf sets it.
pub async fn get(ctx: &Ctx, s: &Session, name: &'static str) -> Result<Option<String>, Failure> {
    let own = templates(ctx, s).await?;
    let chosen = own.iter().flatten().find_map(|text| chosen_in(text, name));
    Ok(chosen.or_else(|| ctx.config.raw.single(name).map(str::to_string)))
}

/// The texts of the session's user's template and its group's, as stored (`None`: gone).
async fn templates(ctx: &Ctx, s: &Session) -> Result<[Option<String>; 2], Failure> {
    let (uid, gid) = (s.uid, s.gid);
    // Two rows by key: on SQLite without a hop to a blocking thread.
    super::read_row_in(&ctx.pool, move |c| {
        let text = |sql: &str, id: i64| {
            c.query_row(sql, [sqlstore::SqlValue::Int(id)], |r| r.get::<String>(0))
                .optional()
        };
        Ok([
            text("SELECT template FROM user_pool WHERE oid = ?1", uid)?,
            text("SELECT template FROM group_pool WHERE oid = ?1", gid)?,
        ])
    })
    .await
}

/// `name` in a template's OPENNEBULA vector, if it has one.
fn chosen_in(text: &str, name: &str) -> Option<String> {
    // Most templates say nothing of it: not parsed at all then.
    if !text.contains(name) {
        return None;
    }
    let t = Template::parse(text).ok()?;
    let chosen = t
        .get_all("OPENNEBULA")
        .find_map(|a| a.vector_get(name))
        .map(str::to_string);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_opennebula_vector_counts() {
        let name = "API_LIST_ORDER";
        assert_eq!(
            chosen_in("OPENNEBULA = [ API_LIST_ORDER = \"asc\" ]", name).as_deref(),
            Some("asc")
        );
        assert_eq!(chosen_in("API_LIST_ORDER = ASC", name), None);
        assert_eq!(chosen_in("LABELS = \"x\"", name), None);
    }
}
