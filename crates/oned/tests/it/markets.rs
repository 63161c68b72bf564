//! Marketplaces and apps (`one.market.*`, `one.marketapp.*`): OpenNebula's two default
//! markets, an `http` market taking an image as an app (LOCKED until its driver finishes, then
//! READY), the app exported back as an image, and the refusals, on every server of a zone.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

const ACTION: i32 = 0x0800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

/// The text of the first `<name>` element of `xml` (CDATA unwrapped).
fn elem(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return String::new();
    };
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    let v = &xml[start..end];
    v.strip_prefix("<![CDATA[")
        .and_then(|v| v.strip_suffix("]]>"))
        .unwrap_or(v)
        .to_string()
}

#[test]
fn an_image_goes_to_an_http_market_and_comes_back_as_an_image_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let c = zone.servers[follower].client();
    // Reads right after a write go to the leader: a follower may not have applied it yet.
    let l = zone.servers[leader].client();

    // OpenNebula's default markets.
    let pool = c.call_xml("one.marketpool.info", vec![]).unwrap();
    assert!(
        // Newest first (API_LIST_ORDER): OpenNebula Public is the last.
        pool.starts_with("<MARKETPLACE_POOL><MARKETPLACE><ID>1</ID>")
            && pool.ends_with("<MARKETPLACE><ID>0</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME><NAME>OpenNebula Public</NAME><STATE>0</STATE><MARKET_MAD><![CDATA[one]]></MARKET_MAD><ZONE_ID><![CDATA[0]]></ZONE_ID><TOTAL_MB>0</TOTAL_MB><FREE_MB>0</FREE_MB><USED_MB>0</USED_MB><MARKETPLACEAPPS></MARKETPLACEAPPS><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>1</OWNER_A><GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>1</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><TEMPLATE><DESCRIPTION><![CDATA[OpenNebula Systems MarketPlace]]></DESCRIPTION><MARKET_MAD><![CDATA[one]]></MARKET_MAD></TEMPLATE></MARKETPLACE></MARKETPLACE_POOL>"),
        "{pool}"
    );
    assert!(
        pool.contains("<NAME>Linux Containers</NAME><STATE>1</STATE>"),
        "{pool}"
    );

    // An http market needs its driver's attributes.
    let (code, msg) = one_error(c.call(
        "one.market.allocate",
        vec![s(
            "NAME = web\nMARKET_MAD = http\nBASE_URL = \"http://m.example/\"",
        )],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.market.allocate] MarketPlace template is missing the \"PUBLIC_DIR\" attribute or it's empty."
    );
    let market = id(c
        .call(
            "one.market.allocate",
            // Driver names are matched in any case, as `icasecmp` does.
            vec![s("NAME = web\nMARKET_MAD = HTTP\nBASE_URL = \"http://m.example/\"\nPUBLIC_DIR = /srv/market")],
        )
        .unwrap());
    assert_eq!(market, 100, "markets made later start at 100");
    let (code, msg) = one_error(c.call(
        "one.market.allocate",
        vec![s("NAME = web\nMARKET_MAD = one")],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.market.allocate] NAME is already taken by MARKETPLACE 100"
    );

    // A READY image, published as an app.
    let image = id(c
        .call(
            "one.image.allocate",
            vec![
                s("NAME = base\nPATH = /tmp/base.qcow2\nFORMAT = qcow2"),
                Value::Int(1),
            ],
        )
        .unwrap());
    zone.wait_until(DEADLINE, "the image is READY", || {
        let body = c
            .call_xml("one.image.info", vec![Value::Int(image)])
            .unwrap_or_default();
        elem(&body, "STATE") == "1"
    });
    let (code, msg) = one_error(c.call(
        "one.marketapp.allocate",
        vec![
            s(&format!("NAME = app\nORIGIN_ID = {image}\nTYPE = image")),
            Value::Int(0),
        ],
    ));
    assert_eq!(code, ACTION);
    assert_eq!(
        msg,
        "[one.marketapp.allocate] Create disabled for market: OpenNebula Public"
    );
    let app = id(c
        .call(
            "one.marketapp.allocate",
            vec![
                s(&format!(
                    "NAME = app\nORIGIN_ID = {image}\nTYPE = image\nDESCRIPTION = \"base OS\"\nAPPTEMPLATE64 = \"VFlQRT1PUw==\""
                )),
                Value::Int(market),
            ],
        )
        .unwrap());
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has the app READY"), || {
            c.call_xml("one.marketapp.info", vec![Value::Int(app)])
                .is_ok_and(|b| elem(&b, "STATE") == "1")
        });
        let body = c
            .call_xml("one.marketapp.info", vec![Value::Int(app)])
            .unwrap();
        assert!(
            body.contains("<NAME>app</NAME><ZONE_ID><![CDATA[0]]></ZONE_ID>"),
            "{body}"
        );
        assert!(
            elem(&body, "SOURCE").starts_with("http://m.example/"),
            "{body}"
        );
        assert_eq!(elem(&body, "FORMAT"), "qcow2");
        assert_eq!(elem(&body, "MD5").len(), 32);
        assert_eq!(elem(&body, "VERSION"), "0.0");
        assert_eq!(elem(&body, "DESCRIPTION"), "base OS");
        assert!(
            body.contains("<MARKETPLACE_ID>100</MARKETPLACE_ID><MARKETPLACE>web</MARKETPLACE><STATE>1</STATE><TYPE>1</TYPE>"),
            "{body}"
        );
        let m = c
            .call_xml("one.market.info", vec![Value::Int(market)])
            .unwrap();
        assert!(
            m.contains(&format!(
                "<MARKETPLACEAPPS><ID>{app}</ID></MARKETPLACEAPPS>"
            )),
            "{m}"
        );
    }
    let app_body = c
        .call_xml("one.marketapp.info", vec![Value::Int(app)])
        .unwrap();

    // An app whose image does not exist is kept in ERROR, and the call fails.
    let (code, msg) = one_error(c.call(
        "one.marketapp.allocate",
        vec![s("NAME = ghost\nORIGIN_ID = 999"), Value::Int(market)],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(msg, "[one.marketapp.allocate] Image does not exist.");
    let apps = l
        .call_xml(
            "one.marketapppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(apps.contains("<NAME>ghost</NAME>"), "{apps}");
    let ghost = apps
        .split("<MARKETPLACEAPP>")
        .find(|a| a.contains("<NAME>ghost</NAME>"))
        .unwrap();
    assert!(ghost.contains("<STATE>3</STATE>"), "{ghost}");
    assert!(ghost.contains("<ERROR><![CDATA["), "{ghost}");
    let (code, msg) = one_error(c.call(
        "one.marketapp.allocate",
        vec![s("NAME = anon"), Value::Int(market)],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.marketapp.allocate] Missing ORIGIN_ID for the MARKETPLACEAPP"
    );

    // Exported back: an image from the app takes its file, format and size.
    let copy = id(c
        .call(
            "one.image.allocate",
            vec![s(&format!("NAME = copy\nFROM_APP = {app}")), Value::Int(1)],
        )
        .unwrap());
    // A follower answers reads from its own copy: wait for the write to reach it.
    zone.wait_until(DEADLINE, "the follower has the new image", || {
        c.call_xml("one.image.info", vec![Value::Int(copy)]).is_ok()
    });
    let body = c
        .call_xml("one.image.info", vec![Value::Int(copy)])
        .unwrap();
    assert_eq!(elem(&body, "PATH"), elem(&app_body, "SOURCE"));
    assert_eq!(elem(&body, "FROM_APP_NAME"), "app");
    assert_eq!(elem(&body, "FROM_APP_MD5"), elem(&app_body, "MD5"));
    let (code, msg) = one_error(c.call(
        "one.image.allocate",
        vec![s("NAME = nope\nFROM_APP = 4242"), Value::Int(1)],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(msg, "[one.image.allocate] Cannot determine image SIZE.");

    // Renames, enable, lock: OpenNebula's words.
    let other = id(c
        .call(
            "one.marketapp.allocate",
            vec![
                s(&format!("NAME = other\nORIGIN_ID = {image}")),
                Value::Int(market),
            ],
        )
        .unwrap());
    let (code, msg) = one_error(c.call("one.marketapp.rename", vec![Value::Int(other), s("app")]));
    assert_eq!(code, ACTION);
    assert_eq!(
        msg,
        format!("[one.marketapp.rename] marketplaceapp cannot be renamed to app because it collides with marketplaceapp {app}")
    );
    let (code, msg) = one_error(c.call(
        "one.market.rename",
        vec![Value::Int(market), s("OpenNebula Public")],
    ));
    assert_eq!(code, ACTION);
    assert_eq!(
        msg,
        "[one.market.rename] marketplace cannot be renamed to OpenNebula Public because it collides with marketplace 0"
    );
    c.call(
        "one.marketapp.enable",
        vec![Value::Int(app), Value::Bool(false)],
    )
    .unwrap();
    let body = l
        .call_xml("one.marketapp.info", vec![Value::Int(app)])
        .unwrap();
    assert_eq!(elem(&body, "STATE"), "4");
    c.call("one.marketapp.lock", vec![Value::Int(app), Value::Int(1)])
        .unwrap();
    let (code, _) = one_error(c.call("one.marketapp.delete", vec![Value::Int(app)]));
    assert_eq!(code, 0x0200);
    c.call("one.marketapp.unlock", vec![Value::Int(app)])
        .unwrap();

    // A market with apps stays; disabled, it drops them; then it can go.
    let (code, msg) = one_error(c.call("one.market.delete", vec![Value::Int(market)]));
    assert_eq!(code, ACTION);
    assert_eq!(
        msg,
        format!(
            "[one.market.delete] Cannot delete marketplace. marketplace  {market} is not empty."
        )
    );
    c.call("one.marketapp.delete", vec![Value::Int(app)])
        .unwrap();
    c.call(
        "one.market.enable",
        vec![Value::Int(market), Value::Bool(false)],
    )
    .unwrap();
    let m = l
        .call_xml("one.market.info", vec![Value::Int(market)])
        .unwrap();
    assert!(m.contains("<STATE>1</STATE>"), "{m}");
    assert!(m.contains("<MARKETPLACEAPPS></MARKETPLACEAPPS>"), "{m}");
    c.call("one.market.delete", vec![Value::Int(market)])
        .unwrap();
    let pool = l.call_xml("one.marketpool.info", vec![]).unwrap();
    assert_eq!(pool.matches("<MARKETPLACE>").count(), 2, "{pool}");
}
