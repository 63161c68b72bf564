//! What many write handlers share: new ids from the pool counters, existence checks, and the
//! read-compute-write of template updates.

use sqlstore::{SqlTxn, SqlValue};
use tracing::warn;
use xmlrpc::{Params, Value};

use super::{code, fail, validate, Ctx, Failure, MethodResult};

/// How `Request::failure_message` words a pool's refusal of a new object (its name taken, a
/// check of the insert): each request chooses, not the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every `pool_allocate` but the image's: INTERNAL, in the pool's own words.
    Internal,
    /// `image.allocate`, the clones, `disk-saveas`, `template.instantiate`: ALLOCATE, after
    /// "Error allocating a new <object>.".
    Allocate,
}

impl Refusal {
    /// The answer refusing a new `what` (`virtual machine template`) for `why`.
    pub fn fail(self, what: &str, why: impl std::fmt::Display) -> Failure {
        match self {
            Refusal::Internal => fail(code::INTERNAL, why.to_string()),
            Refusal::Allocate => fail(
                code::ALLOCATE,
                format!("Error allocating a new {what}. {why}"),
            ),
        }
    }
}

/// Inserts a new object whose id is the next one of the `pool` counter in `pool_control`:
/// `insert` reads `last_oid + 1` from that row and returns the oid; the counter moves in the
/// same transaction, so every server hands out the same id. Refusals as `pool_allocate`'s.
pub async fn allocate_next(
    ctx: &Ctx,
    pool: &str,
    insert: sqlstore::SqlStmt,
    what: &str,
    kind: &str,
    name: &str,
) -> MethodResult {
    allocate_next_as(ctx, pool, insert, what, kind, name, Refusal::Internal).await
}

/// [`allocate_next`], its refusals worded as `refusal`.
pub async fn allocate_next_as(
    ctx: &Ctx,
    pool: &str,
    insert: sqlstore::SqlStmt,
    what: &str,
    kind: &str,
    name: &str,
    refusal: Refusal,
) -> MethodResult {
    let new = New {
        what,
        kind,
        name,
        refusal,
        owner: None,
    };
    allocate_next_refused(ctx, pool, insert, Vec::new(), new, |_| {}).await
}

/// [`allocate_next`] with statements about the new object (its next oid is still
/// `last_oid + 1`) run between its insert and the counter's move.
pub async fn allocate_next_with(
    ctx: &Ctx,
    pool: &str,
    insert: sqlstore::SqlStmt,
    with: Vec<sqlstore::SqlStmt>,
    what: &str,
    kind: &str,
    name: &str,
) -> MethodResult {
    let new = New {
        what,
        kind,
        name,
        refusal: Refusal::Internal,
        owner: None,
    };
    allocate_next_refused(ctx, pool, insert, with, new, |_| {}).await
}

/// The new object, as its refusals name it: `what` in words (`virtual network`), `kind` as
/// OpenNebula's "NAME is already taken by KIND id." says it (`NET`), its `name`.
#[derive(Clone, Copy)]
pub struct New<'a> {
    pub what: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub refusal: Refusal,
    /// For the pools whose names are unique per owner: the new object's owner.
    pub owner: Option<i64>,
}

/// [`allocate_next_with`], telling `seen` of a refusal before it is worded (which statement
/// refused: a guard among `with` is statement 1 on).
pub async fn allocate_next_refused(
    ctx: &Ctx,
    pool: &str,
    insert: sqlstore::SqlStmt,
    with: Vec<sqlstore::SqlStmt>,
    new: New<'_>,
    seen: impl FnOnce(&super::Refused),
) -> MethodResult {
    use sqlstore::TxnErrorKind;
    let mut stmts = vec![insert.must_match()];
    stmts.extend(with);
    stmts.push(sqlstore::objects::next_oid(pool));
    let txn = SqlTxn { stmts };
    let mut collided = false;
    let committed = ctx
        .commit(txn, |r| {
            seen(&r);
            // A UNIQUE constraint, or an insert whose own check of its owner's names matched
            // no row (`objects::insert_next_unless`).
            let by_insert = r.kind == TxnErrorKind::NotFound && r.stmt == 0 && new.owner.is_some();
            collided = r.kind == TxnErrorKind::Constraint || by_insert;
            new.refusal.fail(new.what, &r.message)
        })
        .await;
    let values = match committed {
        Ok(values) => values,
        // Named by its holder's id; by the name itself when the holder went meanwhile (the
        // insert was refused all the same).
        Err(_) if collided => {
            let taken = name_taken(ctx, pool, new).await?;
            return Err(taken.unwrap_or_else(|| taken_by(new, new.name)));
        }
        Err(f) => return Err(f),
    };
    new_id(&values, new.what)
}

/// OpenNebula's refusal of `new` when its name is taken in `pool` (by its owner's objects,
/// when names are unique per owner), naming the holder by its id; `None` when it is free.
pub async fn name_taken(ctx: &Ctx, pool: &str, new: New<'_>) -> Result<Option<Failure>, Failure> {
    let (table, named, owner) = (pool.to_string(), new.name.to_string(), new.owner);
    let holder = ctx
        .read(move |c| match owner {
            Some(uid) => sqlstore::objects::owned_named(c, &table, &named, uid),
            None => sqlstore::objects::oid_named(c, &table, &named),
        })
        .await?;
    Ok(holder.map(|oid| taken_by(new, &oid.to_string())))
}

fn taken_by(new: New<'_>, holder: &str) -> Failure {
    new.refusal.fail(
        new.what,
        format!("NAME is already taken by {} {holder}.", new.kind),
    )
}

/// `one.<o>.rename(id, name)` of a family whose names are unique in the zone (hosts, clusters,
/// zones), as `RequestManagerRename`: the object, the name's holder (ACTION `<what> cannot be
/// renamed to <name> because it collides with <what> <id>`), then `set_name`'s check.
pub async fn rename_unique(
    ctx: &Ctx,
    s: &crate::auth::Session,
    p: &Params<'_>,
    table: &'static str,
    what: &str,
    missing: fn(i64) -> Failure,
    right: (u64, u64),
) -> MethodResult {
    rename_unique_with(ctx, s, p, table, what, missing, right, |_, _| Vec::new()).await
}

/// [`rename_unique`] that also writes what `with(id, new_name)` gives in the same transaction
/// (the objects that carry the name, as `batch_rename`).
#[allow(clippy::too_many_arguments)]
pub async fn rename_unique_with(
    ctx: &Ctx,
    s: &crate::auth::Session,
    p: &Params<'_>,
    table: &'static str,
    what: &str,
    missing: fn(i64) -> Failure,
    (kind, right): (u64, u64),
    with: impl FnOnce(i64, &str) -> Vec<sqlstore::SqlStmt>,
) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let name = p.string(1)?.to_string();
    if !ctx
        .read(move |c| sqlstore::objects::oid_exists(c, table, id))
        .await?
    {
        return Err(missing(id));
    }
    let holder = |name: String| async move {
        ctx.read(move |c| sqlstore::objects::oid_named(c, table, &name))
            .await
    };
    let collides = |other: i64| {
        fail(
            code::ACTION,
            format!("{what} cannot be renamed to {name} because it collides with {what} {other}"),
        )
    };
    let held = holder(name.clone()).await?;
    // `RequestManagerRename`: its own name again is a success, before the authorization.
    if held == Some(id) {
        return Ok(Value::Int(id as i32));
    }
    super::method::require_on(ctx, s, kind, id, right).await?;
    if let Some(other) = held {
        return Err(collides(other));
    }
    validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let mut stmts = vec![sqlstore::objects::set_name(table, id, &name)];
    stmts.extend(with(id, &name));
    let txn = SqlTxn { stmts };
    let mut clash = false;
    let written = ctx
        .commit(txn, |r| {
            clash = r.kind == sqlstore::TxnErrorKind::Constraint;
            r.missing(missing(id))
        })
        .await;
    match written {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(_) if clash => match holder(name.clone()).await? {
            Some(other) => Err(collides(other)),
            None => Err(fail(code::ACTION, "NAME is already taken.")),
        },
        Err(f) => Err(f),
    }
}

/// The id an allocation's `RETURNING` gave back. Its absence is a bug worth an error, never an
/// id of -1 that a client would take for an object.
pub fn new_id(values: &[SqlValue], what: &str) -> MethodResult {
    values
        .first()
        .and_then(SqlValue::as_i64)
        .and_then(|id| i32::try_from(id).ok())
        .map(Value::Int)
        .ok_or_else(|| {
            warn!(what, "an allocation returned no id");
            fail(
                code::INTERNAL,
                format!("Error allocating a new {what}. The database returned no id."),
            )
        })
}

/// NO_EXISTS `Error getting <user|group|host|datastore> [<id>].` unless `table` holds `id`.
pub async fn must_exist(
    ctx: &Ctx,
    table: sqlstore::objects::Table,
    id: i64,
) -> Result<(), Failure> {
    must_all_exist(ctx, table, vec![id]).await
}

/// [`must_exist`] for each of `ids`, in one read: the first missing one, in their order, is
/// the one named.
pub async fn must_all_exist(
    ctx: &Ctx,
    table: sqlstore::objects::Table,
    ids: Vec<i64>,
) -> Result<(), Failure> {
    use sqlstore::objects::Table;
    let missing = ctx
        .read(move |c| {
            for id in ids {
                if !sqlstore::objects::exists(c, table, id)? {
                    return Ok(Some(id));
                }
            }
            Ok(None)
        })
        .await?;
    let Some(id) = missing else {
        return Ok(());
    };
    let what = match table {
        Table::User => "user",
        Table::Group => "group",
        Table::Host => "host",
        Table::Datastore => "datastore",
        Table::Vnet => "virtual network",
    };
    Err(fail(
        code::NO_EXISTS,
        format!("Error getting {what} [{id}]."),
    ))
}

/// The `type` of `one.<o>.update`: 0 replaces (the default), 1 merges, anything else is
/// XML_RPC_API `Wrong update type`.
pub fn update_type(p: &Params<'_>) -> Result<bool, Failure> {
    match p.0.get(2) {
        None => Ok(false),
        Some(_) => match p.int(2)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(fail(code::XML_RPC_API, "Wrong update type")),
        },
    }
}

/// How often an update is recomputed when another write changed the template in between.
const UPDATE_RETRIES: usize = 10;

/// `one.<o>.update` for the template kept in `column` of `table` (`type` read from `p`, as
/// OpenNebula): the new text is computed here, on the leader, from the stored one, and written
/// only if the stored one is still the same; a concurrent change makes it start over. The log
/// carries the result, never a merge to redo. `missing` is the family's NO_EXISTS.
pub async fn update_template(
    ctx: &Ctx,
    p: &Params<'_>,
    table: &'static str,
    column: &'static str,
    missing: impl Fn(i64) -> Failure,
) -> MethodResult {
    update_template_checked(ctx, p, table, column, missing, UpdateChecks::default()).await
}

/// What `Object::post_update_template` checks of the template an update leaves.
pub type PostUpdate = fn(&Ctx, &template::Template) -> Result<(), String>;

/// What an update checks beyond the generic [`update_template`], and what it writes with the
/// change.
#[derive(Default, Clone, Copy)]
pub struct UpdateChecks<'a> {
    /// The restricted attributes a change may not touch (none for an administrator), as
    /// `PoolObjectSQL::replace_template`/`append_template` refuse them.
    pub ras: &'a [(String, Vec<String>)],
    /// `Object::post_update_template`, on the template the update leaves.
    pub post: Option<PostUpdate>,
    /// Statements written with the change (a quota guard).
    pub with: &'a [sqlstore::SqlStmt],
}

/// [`update_template`] with `checks`.
pub async fn update_template_checked(
    ctx: &Ctx,
    p: &Params<'_>,
    table: &'static str,
    column: &'static str,
    missing: impl Fn(i64) -> Failure,
    checks: UpdateChecks<'_>,
) -> MethodResult {
    let UpdateChecks { ras, post, with } = checks;
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = update_type(p)?;
    let (missing, text) = (&missing, &text);
    write_computed(ctx, id, move || async move {
        let old = ctx
            .read(move |c| sqlstore::objects::template_text(c, table, column, id))
            .await?;
        let Some(old) = old else {
            return Err(missing(id));
        };
        let new = merged_checked(&old, text, merge, ras)?;
        // `PoolObjectSQL::replace_template` / `append_template` end with `encrypt()`.
        let new = super::encrypted::seal_text(ctx, table, new);
        if let Some(post) = post {
            let t = template::Template::parse(&new).unwrap_or_default();
            post(ctx, &t)
                .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        }
        let mut stmts = vec![sqlstore::objects::replace_template(
            table, column, id, new, old,
        )];
        stmts.extend_from_slice(with);
        Ok(stmts)
    })
    .await
}

/// Writes the statements `compute` makes from the stored state of object `id` (read-compute-
/// write), and computes them again while a concurrent write changed that state first (a guard
/// of theirs matched nothing), a bounded number of times. Answers `id`.
pub async fn write_computed<F, Fut>(ctx: &Ctx, id: i64, mut compute: F) -> MethodResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<sqlstore::SqlStmt>, Failure>>,
{
    for _ in 0..UPDATE_RETRIES {
        let txn = SqlTxn {
            stmts: compute().await?,
        };
        let mut changed = false;
        let written = ctx
            .commit(txn, |r| {
                changed = r.kind == sqlstore::TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match written {
            Ok(_) => return Ok(Value::Int(id as i32)),
            // Changed or deleted meanwhile: the next read says which.
            Err(_) if changed => continue,
            Err(f) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot update template: it kept changing, try again",
    ))
}

/// The template text an update leaves: `text` replacing `old`, or merged into it (each
/// attribute named in `text` replaces all of that name).
pub fn merged(old: &str, text: &str, merge: bool) -> Result<String, Failure> {
    merged_checked(old, text, merge, &[])
}

/// [`merged`], `text` first checked against the restricted attributes `ras` of the stored
/// template (`Template::check_restricted(ra, base, append)`): a change refused in oned's words,
/// a restricted attribute a replace leaves out kept.
pub fn merged_checked(
    old: &str,
    text: &str,
    merge: bool,
    ras: &[(String, Vec<String>)],
) -> Result<String, Failure> {
    let mut new = validate::template(text)
        .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
    if !ras.is_empty() {
        let base = template::Template::parse(old).unwrap_or_default();
        if let Some(ra) = super::restricted::update_changes(ras, &mut new, &base, merge) {
            let why = if merge {
                format!("User Template includes a restricted attribute {ra}")
            } else {
                format!("Tried to change restricted attribute: {ra}")
            };
            return Err(fail(
                code::INTERNAL,
                format!("Cannot update template. {why}"),
            ));
        }
    }
    if !merge {
        return Ok(new.to_text());
    }
    // A stored template that no longer parses must not be merged into: that would drop its
    // attributes. A replace (type 0) still repairs it.
    let mut out = template::Template::parse(old).map_err(|e| {
        warn!(error = %e, "a stored template does not parse; refusing to merge into it");
        fail(
            code::INTERNAL,
            format!("Cannot update template. The stored template does not parse: {e}"),
        )
    })?;
    merge_attrs(&mut out, new);
    Ok(out.to_text())
}

/// Merges `new` into `into` as `Template::merge`: each attribute named in `new` replaces all
/// of that name, and an empty vector (`FOO = [ ]`) only takes its name out.
pub fn merge_attrs(into: &mut template::Template, new: template::Template) {
    for a in &new.attrs {
        into.remove(&a.name);
    }
    for a in new.attrs {
        if matches!(&a.value, template::Value::Vector(v) if v.is_empty()) {
            continue;
        }
        into.push(&a.name, a.value);
    }
}

/// The owner a NIC's or DISK's object is looked up under (`get_nic_by_name`,
/// `get_disk` by name): the `*_UID` given, or the user called `*_UNAME`, or the caller.
pub async fn named_owner(
    ctx: &Ctx,
    s: &crate::auth::Session,
    uname: &str,
    uid: &str,
) -> Result<i64, String> {
    if let Ok(uid) = uid.trim().parse::<i64>() {
        return Ok(uid);
    }
    if uname.is_empty() {
        return Ok(s.uid);
    }
    let u = uname.to_string();
    let found = ctx
        .read(move |c| sqlstore::objects::user::oid_of(c, &u))
        .await
        .map_err(|_| "Cannot read the user pool".to_string())?;
    found.ok_or_else(|| format!("User {uname} does not exist"))
}

/// The id of the object of `table` called `name` that `owner` owns.
pub async fn oid_by_name(
    ctx: &Ctx,
    table: &'static str,
    name: &str,
    owner: i64,
) -> Result<Option<i64>, String> {
    let n = name.to_string();
    ctx.read(move |c| sqlstore::objects::oid_by_name(c, table, &n, owner))
        .await
        .map_err(|_| format!("Cannot read {table}"))
}

#[cfg(test)]
mod tests {
    use super::merge_attrs;

    #[test]
    fn merge_replaces_by_name_and_an_empty_vector_only_erases() {
        let mut into = template::Template::parse("A = 1\nA = 2\nV = [ X = 1 ]\nKEEP = k").unwrap();
        let new = template::Template::parse("A = 3\nV = [ ]\nW = [ Y = 2 ]").unwrap();
        merge_attrs(&mut into, new);
        assert_eq!(into.get_all("A").count(), 1);
        assert_eq!(into.single("A"), Some("3"));
        assert!(into.get("V").is_none());
        assert!(into.vector("W").is_some());
        assert_eq!(into.single("KEEP"), Some("k"));
    }
}
