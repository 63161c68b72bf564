//! `one.user.*` and `one.userpool.info`: the first replicated object family.

use sqlstore::objects::user as rows;
use sqlstore::{Owned, SqlStmt, SqlTxn, TxnErrorKind, UserReach, UserRow};
use xmlrpc::{Params, Value};

use std::collections::BTreeSet;

use super::list_order::Order;
use super::method::{self as table, Auth, Method, Need};
use super::quota::{self, Quotas};
use super::quota_cache;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use sqlstore::objects::quota::{Owner, DEFAULTS};
use sqlstore::objects::Table;

/// Every method authorizes in its handler, where `RequestManagerUser` and its neighbours do:
/// the user must exist first, then the right (`info` USE; `passwd`, `update`, `login`,
/// `chgrp`, `addgroup`, `delgroup` MANAGE; `chauth`, `delete`, `enable` ADMIN) comes from
/// the user's own permissions (a user owns itself: USE and MANAGE) or an ACL rule (a group
/// administrator's `USER/@gid`).
pub const METHODS: &[Method] = &[
    method!(wire::method::USER_ALLOCATE, Write, Auth::Object, allocate),
    method!(wire::method::USER_INFO, Read, Auth::Object, info),
    method!(wire::method::USER_PASSWD, Write, Auth::Object, passwd),
    method!(wire::method::USER_LOGIN, Write, Auth::Object, login),
    method!(wire::method::USER_CHAUTH, Write, Auth::Object, chauth),
    method!(wire::method::USER_DELETE, Write, Auth::Object, delete),
    method!(wire::method::USER_UPDATE, Write, Auth::Object, update),
    method!(wire::method::USER_CHGRP, Write, Auth::Object, chgrp),
    method!("one.user.addgroup", Write, Auth::Object, addgroup),
    method!("one.user.delgroup", Write, Auth::Object, delgroup),
    method!(wire::method::USER_ENABLE, Write, Auth::Object, enable),
    method!(wire::method::USERPOOL_INFO, Read, Auth::Object, pool_info),
];

/// The most groups `one.user.allocate` takes for a new user (OpenNebula sets no bound).
const MAX_NEW_USER_GROUPS: usize = 256;

/// How authorization sees user `u`: it owns itself (USE and MANAGE), in its primary group.
fn as_owned(u: &UserRow) -> Owned {
    Owned {
        oid: u.oid,
        uid: u.oid,
        gid: u.gid,
        perms: super::perms::DEFAULT_PERMS,
    }
}

/// `right` on user `id`, as `basic_authorization` asks it: NO_EXISTS `Error getting user
/// [id].` first, then the user's permissions and the ACL rules. Group oneadmin, and a user
/// asking USE or MANAGE of itself, pass without another read.
pub(super) async fn authorize(ctx: &Ctx, s: &Session, id: i64, right: u64) -> Result<(), Failure> {
    if s.is_admin() || (id == s.uid && right != wire::acl::ADMIN) {
        return Ok(());
    }
    if id < 0 {
        // The bare type, as `basic_authorization` of a negative id asks it.
        return table::require(ctx, s, &[Need::kind(wire::acl::USER, right)]).await;
    }
    let user = table::owned(ctx, Table::User, id).await?;
    table::require(ctx, s, &[Need::owned(wire::acl::USER, user, right)]).await
}

/// [`authorize`], and NO_EXISTS for a missing user even to group oneadmin, before the call
/// reads its other arguments (`basic_authorization` reads the object first).
async fn authorize_found(ctx: &Ctx, s: &Session, id: i64, right: u64) -> Result<(), Failure> {
    authorize(ctx, s, id, right).await?;
    if s.is_admin() {
        let exists = ctx
            .read(move |c| sqlstore::objects::oid_exists(c, rows::TABLE, id))
            .await?;
        if !exists {
            return Err(no_user(id));
        }
    }
    Ok(())
}

/// A user; with its quotas and the defaults for `one.user.info` (a pool lists quotas apart).
pub fn user_xml(u: &UserRow, quotas: Option<(&Quotas, &Quotas)>, out: &mut String) {
    Xml::new(out).elem("USER", |x| {
        x.num("ID", u.oid)
            .num("GID", u.gid)
            .elem("GROUPS", |x| {
                for g in &u.groups {
                    x.num("ID", g);
                }
            })
            .text("GNAME", &u.gname)
            .text("NAME", &u.name)
            // `User::to_xml` writes both through `escape_xml`: CDATA.
            .cdata("PASSWORD", &u.password)
            .cdata("AUTH_DRIVER", &u.auth_driver)
            .num("ENABLED", u.enabled as i32);
        for t in &u.tokens {
            x.elem("LOGIN_TOKEN", |x| {
                x.text("TOKEN", &t.token)
                    .num("EXPIRATION_TIME", t.expiration)
                    .num("EGID", t.egid);
            });
        }
        x.raw(&xml::template(&u.template, "TEMPLATE"));
        if let Some((mine, defaults)) = quotas {
            mine.write(x);
            quota::write_defaults(x, Owner::User, defaults);
        }
    });
}

/// `Request::failure_response(NO_EXISTS)`: `[id]`, or ` Pool.` for -1.
fn no_user(id: i64) -> Failure {
    match id {
        -1 => fail(code::NO_EXISTS, "Error getting user Pool."),
        _ => fail(code::NO_EXISTS, format!("Error getting user [{id}].")),
    }
}

/// `one.user.allocate(name, password, driver, [gids])`, as `UserAllocate`: CREATE USER (a rule
/// on the caller's group grants it: a group administrator's), each group must exist, and
/// placing the user in a group other than the caller's needs MANAGE on it. Without groups the
/// user joins the caller's group (group `users` for group oneadmin); the first group given is
/// the primary one. Any driver is taken; the driver's `PASSWORD_REQUIRED` decides whether the
/// password is checked.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    let password = p.string(1)?.to_string();
    let driver = match p.string(2)? {
        "" => "core".to_string(),
        d => d.to_string(),
    };
    let mut asked: Vec<i64> = match p.0.get(3) {
        Some(_) => p.array(3)?.iter().filter_map(Value::as_i64).collect(),
        None => Vec::new(),
    };
    // Each group is looked up (OpenNebula reads them one by one); a client may not make the
    // leader read an unbounded list before it is even authorized.
    let mut distinct = BTreeSet::new();
    asked.retain(|g| distinct.insert(*g));
    if asked.len() > MAX_NEW_USER_GROUPS {
        return Err(fail(
            code::INTERNAL,
            format!("At most {MAX_NEW_USER_GROUPS} groups may be given."),
        ));
    }
    super::must_all_exist(ctx, Table::Group, asked.clone()).await?;
    let mut needs = vec![Need::kind(wire::acl::USER, wire::acl::CREATE)];
    needs.extend(
        asked
            .iter()
            .filter(|&&g| g != s.gid)
            .map(|&g| Need::on(wire::acl::GROUP, g, wire::acl::MANAGE)),
    );
    table::require(ctx, s, &needs).await?;
    let gid = match asked.first() {
        Some(&first) => first,
        None if s.gid == 0 => 1,
        None => s.gid,
    };
    // `UserAllocate::pool_allocate` answers INTERNAL in the pool's words.
    let refused = |m: String| fail(code::INTERNAL, m);
    if ctx.config.auth_drivers.get(&driver).password_required {
        super::validate::password(&password, &driver).map_err(|m| refused(m + "."))?;
    }
    super::validate::user_name(&name).map_err(refused)?;
    let stored = stored_password(ctx, &driver, &password).await?;
    let secondary: Vec<i64> = distinct.into_iter().filter(|&g| g != gid).collect();
    let token_password = crate::credentials::random_hex(32);
    let txn = SqlTxn {
        stmts: rows::insert_with(
            &name,
            stored,
            &driver,
            gid,
            &secondary,
            &format!("TOKEN_PASSWORD=\"{token_password}\""),
        ),
    };
    let mut taken = false;
    let written = ctx
        .commit(txn, |r| {
            taken = r.kind == TxnErrorKind::Constraint;
            fail(code::INTERNAL, r.message.clone())
        })
        .await;
    match written {
        Ok(values) => super::new_id(&values, "user"),
        Err(_) if taken => {
            let other = ctx
                .read(move |c| sqlstore::find_user_by_name(c, &name))
                .await?
                .map_or_else(|| "?".to_string(), |u| u.oid.to_string());
            Err(fail(
                code::INTERNAL,
                format!("NAME is already taken by USER {other}."),
            ))
        }
        Err(f) => Err(f),
    }
}

/// The argon2id hash to store for `password`, computed here (this runs on the leader: writes are
/// routed before their handler runs) and bound into the transaction, so the log carries the
/// hash, never the password, and no server hashes again.
async fn password_hash(ctx: &Ctx, password: &str) -> Result<String, Failure> {
    match ctx.auth.hash(password).await {
        Some(Ok(hash)) => Ok(hash),
        Some(Err(e)) => Err(fail(
            code::INTERNAL,
            format!("Cannot hash the password: {e}"),
        )),
        None => Err(fail(
            code::INTERNAL,
            "Cannot hash the password: the server is busy, try again",
        )),
    }
}

async fn load(ctx: &Ctx, id: i64) -> Result<UserRow, Failure> {
    ctx.read(move |c| sqlstore::load_user(c, id))
        .await?
        .ok_or_else(|| no_user(id))
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut id = p.int(0)? as i64;
    if id == -1 {
        id = s.uid;
    }
    authorize(ctx, s, id, wire::acl::USE).await?;
    // One short read by key (no thread hop on SQLite); the quotas from memory while no write
    // changed them (`quota_cache`).
    let lookup = quota_cache::Lookup::start(ctx, Owner::User, id);
    let (u, q) = super::read_row_in(&ctx.pool, move |c| {
        Ok((sqlstore::load_user(c, id)?, lookup.read(c)?))
    })
    .await?;
    let u = u.ok_or_else(|| no_user(id))?;
    q.keep(ctx);
    let body = xml::build_with(|out| user_xml(&u, Some((&q.mine, &q.defaults)), out));
    Ok(Value::String(super::encrypted::answer(
        ctx,
        s,
        &p,
        rows::TABLE,
        body,
    )?))
}

/// `one.userpool.info()`: every user for group oneadmin; anyone else sees itself and the users
/// its ACL rules let it USE (a group administrator: the users of its group). Read and printed
/// one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let reach = if s.is_admin() {
        UserReach::All
    } else {
        let scope = super::perms::caller(ctx, s)
            .await?
            .acl_scope(wire::acl::USER, wire::acl::USE);
        if scope.all {
            UserReach::All
        } else {
            let mut oids = scope.oids;
            oids.push(s.uid);
            UserReach::Some {
                oids,
                gids: scope.gids,
            }
        }
    };
    let (cache, now) = (ctx.quotas.clone(), quota_cache::pool_generation(ctx));
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<USER_POOL>");
            let all = quota_cache::pool(&cache, now, c, Owner::User)?;
            sqlstore::for_each_user(c, &reach, order == Order::Desc, |u| {
                user_xml(u, None, &mut out);
                Xml::new(&mut out).elem("QUOTAS", |x| {
                    x.num("ID", u.oid);
                    all.of(u.oid).write(x);
                });
            })?;
            let mut x = Xml::new(&mut out);
            quota::write_defaults(&mut x, Owner::User, &all.of(DEFAULTS));
            x.close("USER_POOL");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

pub async fn passwd(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let password = p.string(1)?.to_string();
    authorize(ctx, s, id, wire::acl::MANAGE).await?;
    let user = load(ctx, id).await?;
    let driver = &user.auth_driver;
    if !s.is_admin() && !ctx.config.auth_drivers.get(driver).password_change {
        return Err(fail(
            code::ACTION,
            format!("Password for driver {driver} cannot be changed."),
        ));
    }
    super::validate::password(&password, driver).map_err(|m| fail(code::ACTION, m))?;
    let stored = stored_password(ctx, &user.auth_driver, &password).await?;
    let txn = SqlTxn {
        stmts: rows::set_password(id, stored),
    };
    ctx.commit(txn, |r| r.missing(no_user(id))).await?;
    Ok(Value::Int(id as i32))
}

/// What the user pool stores as the password of a user of `driver`: an argon2id hash for
/// `core`; the secret itself for the other drivers, which check it their own way (OpenNebula
/// keeps it so too).
async fn stored_password(ctx: &Ctx, driver: &str, password: &str) -> Result<String, Failure> {
    if driver == "core" {
        password_hash(ctx, password).await
    } else {
        Ok(password.to_string())
    }
}

/// `one.user.chauth(id, driver, password)`: a new authentication driver, and a new password
/// when one is given (stored as the new driver keeps it). Ends the user's login tokens when
/// the password changes, as a password change does.
pub async fn chauth(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let driver = p.string(1)?.to_string();
    let password = p.string(2)?.to_string();
    authorize_found(ctx, s, id, wire::acl::ADMIN).await?;
    let stored = if password.is_empty() {
        None
    } else {
        super::validate::password(&password, &driver).map_err(|m| fail(code::ACTION, m))?;
        Some(stored_password(ctx, &driver, &password).await?)
    };
    let txn = SqlTxn {
        stmts: rows::set_auth_driver(id, &driver, stored),
    };
    ctx.commit(txn, |r| r.missing(no_user(id))).await?;
    Ok(Value::Int(id as i32))
}

/// Longest token a client may choose: it is a key column, and 10 of them per user are kept.
const MAX_TOKEN_LEN: usize = 255;

/// `one.user.login(username, token, valid, [egid])`, as OpenNebula's `UserLogin`: `valid` > 0
/// sets a token for that many seconds, -1 for ever, 0 resets one token (or every token, when
/// `token` is empty). An empty token to set gets a random one. A token scoped to group `egid`
/// acts in that group alone. Answers the token.
pub async fn login(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    let mut token = p.string(1)?.to_string();
    let valid = i64::from(p.int(2)?);
    let egid = if p.len() > 3 {
        i64::from(p.int(3)?)
    } else {
        -1
    };
    let user = {
        let name = name.clone();
        ctx.read(move |c| sqlstore::find_user_by_name(c, &name))
            .await?
            .ok_or_else(|| fail(code::NO_EXISTS, "Error getting user Pool."))?
    };
    if !s.is_admin() && user.oid != s.uid {
        let need = Need::owned(wire::acl::USER, as_owned(&user), wire::acl::MANAGE);
        table::require(ctx, s, &[need]).await?;
    }
    let id = user.oid;
    // `MAX_TOKEN_TIME` of the user's driver: 0 ends its tokens and refuses; a limit caps the
    // validity asked for, "for ever" included.
    let max = ctx
        .config
        .auth_drivers
        .get(&user.auth_driver)
        .max_token_time;
    if max == 0 {
        let reset = SqlTxn {
            stmts: vec![rows::reset_login_tokens(id)],
        };
        ctx.commit(reset, |r| fail(code::INTERNAL, r.message.clone()))
            .await?;
        return Err(fail(
            code::ACTION,
            format!("Login tokens are disabled for driver {}", user.auth_driver),
        ));
    }
    let valid = if max > 0 && (valid > max || valid == -1) {
        max
    } else {
        valid
    };
    let token_error = |m: String| fail(code::XML_RPC_API, m);
    let stmts = if valid == 0 {
        if token.is_empty() {
            vec![rows::reset_login_tokens(id)]
        } else if user.tokens.iter().any(|t| t.token == token) {
            vec![rows::reset_login_token(id, token.clone())]
        } else {
            return Err(token_error(format!("Could not find token: {token}")));
        }
    } else if valid > 0 || valid == -1 {
        if egid != -1
            && !s.is_admin()
            && (!user.groups.contains(&egid) || !s.groups.contains(&egid))
        {
            return Err(token_error("EGID is not in user group list".into()));
        }
        if egid == -1 && user.groups != s.groups {
            return Err(token_error(
                "Cannot create a full token with a specific group token".into(),
            ));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(token_error(format!(
                "Token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        if token.is_empty() {
            token = crate::credentials::random_hex(32);
        }
        let now = crate::auth::unix_now();
        let expiration = if valid == -1 { -1 } else { now + valid };
        rows::add_login_token(id, token.clone(), expiration, egid, now)
    } else {
        return Err(token_error("Wrong valid period for token".into()));
    };
    ctx.commit(SqlTxn { stmts }, |r| match r.kind {
        TxnErrorKind::NotFound if valid == 0 => {
            token_error(format!("Could not find token: {token}"))
        }
        TxnErrorKind::NotFound => token_error("Max number of tokens limit reached.".into()),
        _ => fail(code::INTERNAL, r.message.clone()),
    })
    .await?;
    Ok(Value::String(token))
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    authorize(ctx, s, id, wire::acl::ADMIN).await?;
    if id == 0 {
        return Err(fail(
            code::ACTION,
            "Cannot delete user. oneadmin cannot be deleted.",
        ));
    }
    if id == 1 {
        // OpenNebula lets serveradmin go; here the zone's servers sign as serveradmin.
        return Err(fail(
            code::ACTION,
            "Cannot delete user. serveradmin cannot be deleted.",
        ));
    }
    let mut stmts = rows::delete(id);
    stmts.push(sqlstore::objects::quota::drop_all(Owner::User, id));
    let txn = SqlTxn { stmts };
    ctx.commit(txn, |r| match r.kind {
        TxnErrorKind::NotFound => no_user(id),
        _ => fail(code::ACTION, format!("Cannot delete user. {}", r.message)),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.user.update(id, template, type)`: type 0 replaces the template, 1 merges into it.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    authorize_found(ctx, s, id, wire::acl::MANAGE).await?;
    let ras = if s.is_admin() {
        Vec::new()
    } else {
        super::restricted::user(ctx)
    };
    // `User::post_update_template`: the VM operation lists name operations.
    super::writes::update_template_checked(
        ctx,
        &p,
        rows::TABLE,
        "template",
        no_user,
        super::writes::UpdateChecks {
            ras: &ras,
            post: Some(|_, t| super::vm_ops::check(t)),
            with: &[],
        },
    )
    .await
}

/// Runs a membership change; NotFound means the user is gone.
async fn membership(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| r.missing(no_user(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// Refuses to move user `u` into a group it is not in when its driver sets its groups
/// (`DRIVER_MANAGED_GROUPS`, as `UserChgrp` and `UserEditGroup` check it).
fn groups_by_hand(ctx: &Ctx, u: &UserRow) -> Result<(), Failure> {
    if ctx
        .config
        .auth_drivers
        .get(&u.auth_driver)
        .driver_managed_groups
    {
        return Err(fail(
            code::ACTION,
            format!(
                "Groups cannot be manually managed for auth driver {}",
                u.auth_driver
            ),
        ));
    }
    Ok(())
}

/// `one.user.chgrp(uid, gid)`: a new primary group (also made a membership). In
/// `UserChgrp`'s order: the user, its driver (for a group it is not in), the group, oneadmin.
pub async fn chgrp(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    if gid < 0 {
        return Err(fail(code::XML_RPC_API, "Wrong group ID"));
    }
    let user = load(ctx, id).await?;
    if !user.groups.contains(&gid) {
        groups_by_hand(ctx, &user)?;
    }
    super::must_exist(ctx, Table::Group, gid).await?;
    if id == 0 {
        return Err(fail(
            code::INTERNAL,
            // `UserPool::oneadmin_name`: user 0's name, from `one_auth` at bootstrap.
            format!(
                "user [0] {} cannot be moved outside of the group [0] oneadmin",
                user.name
            ),
        ));
    }
    let needs = [
        Need::owned(wire::acl::USER, as_owned(&user), wire::acl::MANAGE),
        Need::on(wire::acl::GROUP, gid, wire::acl::USE),
    ];
    table::require(ctx, s, &needs).await?;
    let mut stmts = rows::set_primary_group(id, gid);
    stmts.extend(sqlstore::objects::group::drop_admin_if_left(user.gid, id));
    membership(ctx, id, stmts).await
}

/// What `UserEditGroup` asks: MANAGE on the user and on the group.
fn edit_group_needs(user: &UserRow, gid: i64) -> [Need; 2] {
    [
        Need::owned(wire::acl::USER, as_owned(user), wire::acl::MANAGE),
        Need::on(wire::acl::GROUP, gid, wire::acl::MANAGE),
    ]
}

/// `one.user.addgroup(uid, gid)`: a secondary group.
pub async fn addgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    let user = load(ctx, id).await?;
    groups_by_hand(ctx, &user)?;
    super::must_exist(ctx, Table::Group, gid).await?;
    table::require(ctx, s, &edit_group_needs(&user, gid)).await?;
    if user.groups.contains(&gid) {
        return Err(fail(code::ACTION, "User is already in this group"));
    }
    membership(
        ctx,
        id,
        vec![rows::must_exist(id), rows::join_group(id, gid)],
    )
    .await
}

/// `one.user.delgroup(uid, gid)`: leaves a secondary group (never the primary one).
pub async fn delgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    let user = load(ctx, id).await?;
    groups_by_hand(ctx, &user)?;
    super::must_exist(ctx, Table::Group, gid).await?;
    table::require(ctx, s, &edit_group_needs(&user, gid)).await?;
    // `User::del_group`.
    if user.gid == gid {
        return Err(fail(
            code::ACTION,
            "Cannot remove user from the primary group",
        ));
    }
    if !user.groups.contains(&gid) {
        return Err(fail(code::ACTION, "User is not part of this group"));
    }
    let mut stmts = vec![rows::leave_group(id, gid)];
    stmts.extend(sqlstore::objects::group::drop_admin_if_left(gid, id));
    membership(ctx, id, stmts).await
}

/// `one.user.enable(uid, enable)`: a disabled user cannot authenticate.
pub async fn enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    authorize(ctx, s, id, wire::acl::ADMIN).await?;
    if id == 0 {
        return Err(fail(code::ACTION, "Cannot enable/disable oneadmin user"));
    }
    // `User::disable` also ends its login tokens.
    let mut stmts = vec![rows::set_enabled(id, on)];
    if !on {
        stmts.push(rows::reset_login_tokens(id));
    }
    membership(ctx, id, stmts).await
}
