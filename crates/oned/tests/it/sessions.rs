//! Sessions beyond `user:password`: login tokens (`one.user.login`), scoped to a group or not,
//! replicated like any write so a token works on every server and through a failover;
//! `one.user.chauth`; administrators by membership of group oneadmin.

use cli::client::{CallError, Client};
use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{
    allocate, one_error, user_name, Zone, AUTHENTICATION, AUTHORIZATION, DEADLINE, NO_EXISTS,
};

const XML_RPC_API: i32 = 0x1000;

fn login(
    c: &Client,
    user: &str,
    token: &str,
    valid: i32,
    egid: Option<i32>,
) -> Result<String, CallError> {
    let mut params = vec![
        Value::String(user.into()),
        Value::String(token.into()),
        Value::Int(valid),
    ];
    params.extend(egid.map(Value::Int));
    let v = c.call(wire::method::USER_LOGIN, params)?;
    Ok(v.as_str()
        .unwrap_or_else(|| panic!("a token, got {v:?}"))
        .to_string())
}

/// The LOGIN_TOKEN elements of user `id`: (token, expiration, egid).
fn tokens(c: &Client, id: i64) -> Vec<(String, i64, i64)> {
    let xml = c
        .call_xml(wire::method::USER_INFO, vec![Value::Int(id as i32)])
        .unwrap();
    let user = Element::parse(&xml).unwrap().expect("USER").unwrap();
    user.children_named("LOGIN_TOKEN")
        .map(|t| {
            (
                t.text_of("TOKEN").unwrap().to_string(),
                t.int_of("EXPIRATION_TIME").unwrap(),
                t.int_of("EGID").unwrap(),
            )
        })
        .collect()
}

fn call(c: &Client, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
    c.call(method, params)
}

#[test]
fn a_login_token_works_on_every_server_and_after_the_leader_is_killed() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let id = allocate(&admin, "tok-user").unwrap();
    let follower = (leader + 1) % 3;
    let own = zone.servers[follower].client_as("tok-user", "pw-tok-user");
    // Issued through a follower, which forwards it to the leader.
    let token = zone.wait_for(DEADLINE, "the follower knows tok-user", || {
        login(&own, "tok-user", "", 3600, None).ok()
    });
    assert_eq!(token.len(), 64, "a random token: {token}");
    for i in 0..3 {
        let c = zone.servers[i].client_as("tok-user", &token);
        zone.wait_until(DEADLINE, &format!("server {i} takes the token"), || {
            user_name(&c, id).as_deref() == Some("tok-user")
        });
    }
    let listed = tokens(&admin, id);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].0.as_str(), listed[0].2), (token.as_str(), -1));

    zone.servers[leader].kill();
    let survivor = (leader + 2) % 3;
    let c = zone.servers[survivor].client_as("tok-user", &token);
    // A write with the token after the failover: the new leader checks it too.
    zone.wait_until(DEADLINE, "a write with the token after failover", || {
        call(
            &c,
            wire::method::USER_UPDATE,
            vec![
                Value::Int(id as i32),
                Value::String("AFTER = \"failover\"".into()),
                Value::Int(1),
            ],
        )
        .is_ok()
    });

    // Reset: the token stops working everywhere.
    login(&c, "tok-user", &token, 0, None).unwrap();
    let c2 = zone.servers[follower].client_as("tok-user", &token);
    zone.wait_until(DEADLINE, "the reset token is refused", || {
        matches!(
            one_error_opt(user_name_result(&c2, id)),
            Some((AUTHENTICATION, _))
        )
    });
}

fn user_name_result(c: &Client, id: i64) -> Result<String, CallError> {
    c.call_xml(wire::method::USER_INFO, vec![Value::Int(id as i32)])
}

fn one_error_opt<T>(r: Result<T, CallError>) -> Option<(i32, String)> {
    match r {
        Err(CallError::One(e)) => Some((e.code, e.message)),
        _ => None,
    }
}

#[test]
fn login_tokens_follow_opennebulas_rules() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let id = allocate(&admin, "rules").unwrap();
    let user = zone.servers[0].client_as("rules", "pw-rules");

    let (code, msg) = one_error(login(&user, "nobody", "", 60, None));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.user.login] Error getting user Pool.")
    );
    let (code, msg) = one_error(login(&user, "oneadmin", "", 60, None));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.contains("Not authorized to perform MANAGE USER [0]"),
        "{msg}"
    );
    let (code, msg) = one_error(login(&user, "rules", "", -2, None));
    assert_eq!(
        (code, msg.as_str()),
        (XML_RPC_API, "[one.user.login] Wrong valid period for token")
    );
    // A token a client chooses is bounded: it is a key column, and ten are kept per user.
    let long = "t".repeat(256);
    let (code, msg) = one_error(login(&user, "rules", &long, 60, None));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.user.login] Token is longer than 255 bytes"
        )
    );
    let (code, msg) = one_error(login(&user, "rules", "nope", 0, None));
    assert_eq!(
        (code, msg.as_str()),
        (XML_RPC_API, "[one.user.login] Could not find token: nope")
    );

    // A chosen token, for ever; then up to 10 in all.
    assert_eq!(login(&user, "rules", "mine", -1, None).unwrap(), "mine");
    for _ in 1..10 {
        login(&user, "rules", "", 60, None).unwrap();
    }
    let (code, msg) = one_error(login(&user, "rules", "", 60, None));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.user.login] Max number of tokens limit reached."
        )
    );
    // `LoginTokenPool::set` weighs the limit before it finds the token already there.
    let (code, msg) = one_error(login(&user, "rules", "mine", -1, None));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.user.login] Max number of tokens limit reached."
        )
    );
    assert!(tokens(&admin, id).contains(&("mine".to_string(), -1, -1)));
    login(&user, "rules", "mine", 0, None).unwrap();
    assert_eq!(tokens(&admin, id).len(), 9);
    login(&user, "rules", "", 0, None).unwrap();
    assert!(tokens(&admin, id).is_empty());
    // Below the limit, a live token set again stays as it was.
    assert_eq!(login(&user, "rules", "again", -1, None).unwrap(), "again");
    assert_eq!(login(&user, "rules", "again", 60, None).unwrap(), "again");
    assert_eq!(tokens(&admin, id), [("again".to_string(), -1, -1)]);

    // `User::disable` ends the tokens: enabled again, the user logs in anew.
    login(&user, "rules", "before", -1, None).unwrap();
    for on in [false, true] {
        call(
            &admin,
            "one.user.enable",
            vec![Value::Int(id as i32), Value::Bool(on)],
        )
        .unwrap();
    }
    assert!(tokens(&admin, id).is_empty());

    // Scoped to a group the user is in (users, now a secondary group): objects it creates
    // belong to that group, not to the primary one.
    let gid = call(
        &admin,
        "one.group.allocate",
        vec![Value::String("scoped".into())],
    )
    .unwrap()
    .as_i64()
    .unwrap();
    call(
        &admin,
        "one.user.addgroup",
        vec![Value::Int(id as i32), Value::Int(gid as i32)],
    )
    .unwrap();
    call(
        &admin,
        wire::method::USER_CHGRP,
        vec![Value::Int(id as i32), Value::Int(gid as i32)],
    )
    .unwrap();
    let (code, msg) = one_error(login(&user, "rules", "", 60, Some(0)));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.user.login] EGID is not in user group list"
        )
    );
    let scoped = login(&user, "rules", "", 60, Some(1)).unwrap();
    let as_scoped = zone.servers[0].client_as("rules", &scoped);
    let (code, msg) = one_error(login(&as_scoped, "rules", "", 60, None));
    assert_eq!(
        (code, msg.as_str()),
        (
            XML_RPC_API,
            "[one.user.login] Cannot create a full token with a specific group token"
        )
    );
    let tid = call(
        &as_scoped,
        "one.template.allocate",
        vec![Value::String(
            "NAME = \"by-scoped\"\nCPU = 1\nMEMORY = 64".into(),
        )],
    )
    .unwrap()
    .as_i64()
    .unwrap();
    let xml = admin
        .call_xml("one.template.info", vec![Value::Int(tid as i32)])
        .unwrap();
    let t = Element::parse(&xml).unwrap().expect("VMTEMPLATE").unwrap();
    assert_eq!(t.int_of("GID").unwrap(), 1, "{xml}");

    // A new password ends every token.
    let full = login(&user, "rules", "", 60, None).unwrap();
    call(
        &admin,
        wire::method::USER_PASSWD,
        vec![Value::Int(id as i32), Value::String("pw2".into())],
    )
    .unwrap();
    assert!(tokens(&admin, id).is_empty());
    let (code, _) = one_error(user_name_result(
        &zone.servers[0].client_as("rules", &full),
        id,
    ));
    assert_eq!(code, AUTHENTICATION);
}

#[test]
fn chauth_is_for_administrators_and_a_member_of_group_oneadmin_is_one() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let id = allocate(&admin, "ops").unwrap();
    let ops = zone.servers[0].client_as("ops", "pw-ops");
    let chauth = |c: &Client, driver: &str, pw: &str| {
        call(
            c,
            wire::method::USER_CHAUTH,
            vec![
                Value::Int(id as i32),
                Value::String(driver.into()),
                Value::String(pw.into()),
            ],
        )
    };
    let (code, msg) = one_error(chauth(&ops, "core", "x"));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.contains("Not authorized to perform ADMIN USER"),
        "{msg}"
    );
    let (code, _) = one_error(allocate(&ops, "not-yet"));
    assert_eq!(code, AUTHORIZATION);

    // Group oneadmin as a secondary group makes ops an administrator.
    call(
        &admin,
        "one.user.addgroup",
        vec![Value::Int(id as i32), Value::Int(0)],
    )
    .unwrap();
    allocate(&ops, "now-allowed").unwrap();

    // Another driver: the password no longer opens a session, a token still does.
    let token = login(&ops, "ops", "", 600, None).unwrap();
    chauth(&admin, "ldap", "").unwrap();
    let xml = admin
        .call_xml(wire::method::USER_INFO, vec![Value::Int(id as i32)])
        .unwrap();
    let u = Element::parse(&xml).unwrap().expect("USER").unwrap();
    assert_eq!(u.text_of("AUTH_DRIVER").unwrap(), "ldap");
    let (code, _) = one_error(user_name_result(&ops, id));
    assert_eq!(code, AUTHENTICATION);
    let with_token = zone.servers[0].client_as("ops", &token);
    assert_eq!(user_name(&with_token, id).as_deref(), Some("ops"));

    // Back to core with a new password, which also ends the tokens.
    let (code, msg) = one_error(chauth(&admin, "core", "has space"));
    assert_eq!(
        (code, msg.as_str()),
        (
            0x0800,
            "[one.user.chauth] Invalid password, character ' ' is not allowed"
        )
    );
    chauth(&admin, "core", "pw-new").unwrap();
    assert_eq!(
        user_name(&zone.servers[0].client_as("ops", "pw-new"), id).as_deref(),
        Some("ops")
    );
    let (code, _) = one_error(user_name_result(&with_token, id));
    assert_eq!(code, AUTHENTICATION);
}

#[test]
fn a_server_cipher_proxy_acts_for_users_on_every_server() {
    let zone = Zone::bootstrap(3);
    let read = |i: usize| {
        std::fs::read_to_string(zone.servers[i].location().join("var/.one/sunstone_auth")).unwrap()
    };
    let first = read(0);
    let password = first
        .trim()
        .strip_prefix("serveradmin:")
        .unwrap_or_else(|| panic!("sunstone_auth holds serveradmin:<password>: {first:?}"))
        .to_string();
    for i in 1..3 {
        assert_eq!(read(i), first, "the guide copies .one/ to every server");
    }
    for file in ["onegate_auth", "oneflow_auth"] {
        let other = zone.servers[0].location().join("var/.one").join(file);
        assert_eq!(std::fs::read_to_string(other).unwrap(), first);
    }
    let leader = zone.leader();
    let id = allocate(&zone.servers[leader].client(), "proxied").unwrap();
    let expire = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 600;
    let session =
        peerauth::server_cipher::login_session("serveradmin", &password, "proxied", expire);
    for i in 0..3 {
        let c = Client::new(zone.servers[i].endpoint(), session.clone(), DEADLINE);
        zone.wait_until(
            DEADLINE,
            &format!("server {i} takes the proxied session"),
            || user_name(&c, id).as_deref() == Some("proxied"),
        );
    }
    // A write through a follower, as the proxied user.
    let follower = (leader + 1) % 3;
    let c = Client::new(zone.servers[follower].endpoint(), session, DEADLINE);
    call(
        &c,
        wire::method::USER_UPDATE,
        vec![
            Value::Int(id as i32),
            Value::String("VIA = \"fireedge\"".into()),
            Value::Int(1),
        ],
    )
    .unwrap();
    let forged = peerauth::server_cipher::login_session("serveradmin", "guess", "oneadmin", expire);
    let c = Client::new(zone.servers[leader].endpoint(), forged, DEADLINE);
    let (code, _) = one_error(user_name_result(&c, 0));
    assert_eq!(code, AUTHENTICATION);
}

/// `oneuser` runs in-process with the session of `--user`/`--password`.
fn oneuser(zone: &Zone, user: &str, password: &str, args: &[&str]) -> (i32, String, String) {
    zone.servers[0]
        .cli_as(cli::objects::Kind::User, user, password, args)
        .parts()
}

#[test]
fn oneuser_creates_sets_and_deletes_tokens_and_changes_drivers() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let id = allocate(&admin, "cliuser").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("one_auth");
    std::fs::write(&auth_file, "old:contents").unwrap();

    // login: a token written to the ONE_AUTH file, replaced after a "n" only with --force.
    let c = zone.servers[0].client_as("cliuser", "pw-cliuser");
    let login = |force: bool, answer: &str| {
        let mut out = Vec::new();
        let r = cli::tokens::login(
            &c,
            cli::tokens::Login {
                user: None,
                time: Some("600".into()),
                group: None,
                force,
                auth_file: auth_file.clone(),
            },
            &mut answer.as_bytes(),
            &mut out,
        );
        (r, String::from_utf8(out).unwrap())
    };
    let (r, out) = login(false, "n\n");
    r.unwrap();
    assert!(
        out.contains("exists, use --force to overwrite.\nAuthentication Token is:\ncliuser:"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&auth_file).unwrap(), "old:contents");
    let (r, out) = login(true, "");
    r.unwrap();
    let written = std::fs::read_to_string(&auth_file).unwrap();
    assert!(out.ends_with(&format!("{written}\n")), "{out}");
    let token = written.strip_prefix("cliuser:").unwrap().to_string();
    assert_eq!(
        user_name(&zone.servers[0].client_as("cliuser", &token), id).as_deref(),
        Some("cliuser")
    );
    assert_eq!(tokens(&admin, id).len(), 2, "both logins made a token");

    // token-delete by prefix: two tokens may share no prefix of 10 hex digits.
    let (code, out, err) = oneuser(
        &zone,
        "cliuser",
        "pw-cliuser",
        &["token-delete", &token[..10]],
    );
    assert_eq!((code, out.as_str()), (0, "Token removed.\n"), "{err}");
    assert_eq!(tokens(&admin, id).len(), 1);
    let (code, _, err) = oneuser(&zone, "cliuser", "pw-cliuser", &["token-delete", "zz"]);
    assert_ne!(code, 0);
    assert_eq!(err, "No tokens found.\n");

    // token-delete-all takes a name, not an id.
    let (code, _, err) = oneuser(
        &zone,
        "cliuser",
        "pw-cliuser",
        &["token-delete-all", &id.to_string()],
    );
    assert_ne!(code, 0);
    assert_eq!(err, "The argument should be the username, not the ID.\n");
    let (code, _, err) = oneuser(
        &zone,
        "cliuser",
        "pw-cliuser",
        &["token-delete-all", "cliuser"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(tokens(&admin, id).is_empty());

    // chauth, by oneadmin.
    let pw = zone.servers[0].password();
    let (code, _, err) = oneuser(
        &zone,
        "oneadmin",
        &pw,
        &["chauth", &id.to_string(), "core", "cli-new"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        user_name(&zone.servers[0].client_as("cliuser", "cli-new"), id).as_deref(),
        Some("cliuser")
    );
}
