//! `onemarket` and `onemarketapp`, as OpenNebula's: an http market made from a file, an image
//! published in it as an app (`create --image`), the tables and `show` layouts, the app exported
//! back as an image and a VM template, enable/disable, lock/unlock, rename, chmod/chgrp, update,
//! delete, and OpenNebula's refusals on stderr with exit code 255.

use std::path::Path;

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

/// The CLI of `kind` in-process as oneadmin: (exit code, stdout, stderr).
fn run(zone: &Zone, kind: Kind, args: &[&str]) -> (i32, String, String) {
    zone.servers[0].cli(kind, args).parts()
}

/// `onemarket` that must succeed: its stdout.
fn market(zone: &Zone, args: &[&str]) -> String {
    zone.servers[0].cli(Kind::Market, args).ok()
}

/// `onemarketapp` that must succeed: its stdout.
fn app(zone: &Zone, args: &[&str]) -> String {
    zone.servers[0].cli(Kind::MarketApp, args).ok()
}

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
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

/// Whether `s` has the shape of `shape`, where `9` is any digit and `A` any letter.
fn shaped(s: &str, shape: &str) -> bool {
    s.len() == shape.len()
        && s.chars().zip(shape.chars()).all(|(c, p)| match p {
            '9' => c.is_ascii_digit(),
            'A' => c.is_ascii_alphabetic(),
            _ => c == p,
        })
}

/// `show` of a market: its lines up to its template exactly, the template's lines in any
/// order, then its apps.
fn market_show(zone: &Zone, id: &str, head: &str, template: &[&str], apps: &str) {
    let show = market(zone, &["show", id]);
    let (top, rest) = show.split_once("MARKETPLACE TEMPLATE\n").unwrap();
    assert_eq!(top, head, "{show}");
    let (tmpl, tail) = rest.split_once("\n\nMARKETAPPS\n").unwrap();
    let mut got: Vec<&str> = tmpl.lines().collect();
    let mut want = template.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{show}");
    assert_eq!(tail, apps, "{show}");
}

/// Waits until app `id` is in the short state `stat` (`rdy`...).
fn wait_app(zone: &Zone, id: &str, stat: &str) {
    let want = format!("\nSTATE          : {stat}\n");
    zone.wait_until(DEADLINE, &format!("app {id} is {stat}"), || {
        run(zone, Kind::MarketApp, &["show", id]).1.contains(&want)
    });
}

#[test]
fn onemarket_and_onemarketapp_publish_an_image_and_export_it_back() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let (dir, _keep) = testkit::zone::temp_dir("onemarket");
    let half = file(
        &dir,
        "half.tmpl",
        "NAME = web\nMARKET_MAD = http\nBASE_URL = \"http://m.example/\"\n",
    );
    let web = file(
        &dir,
        "web.tmpl",
        "NAME = web\nMARKET_MAD = http\nBASE_URL = \"http://m.example/\"\nPUBLIC_DIR = /srv/market\n",
    );
    assert_eq!(market(&zone, &["create", &web]), "ID: 100\n");

    // A READY image, published as an app; --dry only prints the template.
    let image = c
        .call(
            "one.image.allocate",
            vec![
                Value::String("NAME = base\nPATH = /tmp/base.qcow2\nFORMAT = qcow2".into()),
                Value::Int(1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    zone.wait_until(DEADLINE, "the image is READY", || {
        let body = c
            .call_xml("one.image.info", vec![Value::Int(image as i32)])
            .unwrap_or_default();
        elem(&body, "STATE") == "1"
    });
    let image = image.to_string();
    assert_eq!(
        app(
            &zone,
            &["create", "-m", "100", "--name", "app", "--image", &image, "--dry"]
        ),
        format!("NAME=\"app\"\nORIGIN_ID={image}\nTYPE=image\n")
    );
    assert_eq!(
        app(
            &zone,
            &[
                "create",
                "-m",
                "100",
                "--name",
                "app",
                "--description",
                "base OS",
                "--image",
                &image
            ]
        ),
        "ID: 0\n"
    );
    wait_app(&zone, "0", "rdy");
    let body = c
        .call_xml("one.marketapp.info", vec![Value::Int(0)])
        .unwrap();
    let (source, md5) = (elem(&body, "SOURCE"), elem(&body, "MD5"));
    assert!(source.starts_with("http://m.example/"), "{body}");

    // The tables: OpenNebula's default columns, names cut to their column.
    assert_eq!(
        market(&zone, &["list"]),
        "  ID NAME                  SIZE AVAIL        APPS MAD     ZONE STAT\n \
            100 web                     0M -               1 http       0 on\n   \
            1 Linux Container         0M -               0 linuxco    0 off\n   \
            0 OpenNebula Publ         0M -               0 one        0 on\n"
    );
    let list = app(&zone, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(
        lines[0],
        "  ID NAME                    VERSION  SIZE    ARCH HYPERVISOR STAT TYPE  REGTIME MARKET     ZONE"
    );
    let row = lines[1]
        .strip_prefix("   0 app                         0.0 1024M                     rdy  img ")
        .and_then(|r| r.strip_suffix(" web           0"));
    assert!(row.is_some_and(|d| shaped(d, "99/99/99")), "{list}");
    assert_eq!(app(&zone, &["list", "mine"]), list);

    // The show layouts.
    let head = "MARKETPLACE 100 INFORMATION\n\
                ID             : 100\n\
                NAME           : web\n\
                USER           : oneadmin\n\
                GROUP          : oneadmin\n\
                STATE          : ENABLED\n\
                MARKET_MAD     : http\n\
                \n\
                MARKETPLACE CAPACITY\n\
                TOTAL:         : 0M\n\
                FREE:          : 0M\n\
                USED:          : 0M\n\
                \n\
                PERMISSIONS\n\
                OWNER          : um-\n\
                GROUP          : ---\n\
                OTHER          : ---\n\
                \n";
    let web_template = [
        "BASE_URL=\"http://m.example/\"",
        "MARKET_MAD=\"http\"",
        "PUBLIC_DIR=\"/srv/market\"",
    ];
    market_show(&zone, "100", head, &web_template, "0\n");
    market_show(
        &zone,
        "0",
        "MARKETPLACE 0 INFORMATION\n\
         ID             : 0\n\
         NAME           : OpenNebula Public\n\
         USER           : oneadmin\n\
         GROUP          : oneadmin\n\
         STATE          : ENABLED\n\
         MARKET_MAD     : one\n\
         \n\
         MARKETPLACE CAPACITY\n\
         TOTAL:         : 0M\n\
         FREE:          : 0M\n\
         USED:          : 0M\n\
         \n\
         PERMISSIONS\n\
         OWNER          : uma\n\
         GROUP          : u--\n\
         OTHER          : u--\n\
         \n",
        &[
            "DESCRIPTION=\"OpenNebula Systems MarketPlace\"",
            "MARKET_MAD=\"one\"",
        ],
        "",
    );
    assert!(market(&zone, &["show", "100", "-x"]).starts_with("<MARKETPLACE><ID>100</ID>"));
    let show = app(&zone, &["show", "0"]);
    let want = format!(
        "MARKETPLACE APP 0 INFORMATION\n\
         ID             : 0\n\
         NAME           : app\n\
         TYPE           : IMAGE\n\
         USER           : oneadmin\n\
         GROUP          : oneadmin\n\
         MARKETPLACE    : web\n\
         STATE          : rdy\n\
         LOCK           : None\n\
         \n\
         PERMISSIONS\n\
         OWNER          : um-\n\
         GROUP          : ---\n\
         OTHER          : ---\n\
         \n\
         DETAILS\n\
         SOURCE         : {source}\n\
         MD5            : {md5}\n\
         PUBLISHER      :\n\
         REGISTER TIME  : *\n\
         VERSION        : 0.0\n\
         DESCRIPTION    : base OS\n\
         SIZE           : 1024M\n\
         ORIGIN_ID      : {image}\n\
         FORMAT         : qcow2\n\
         \n\
         IMPORT TEMPLATE\n\
         \n\
         \n\
         MARKETPLACE APP TEMPLATE\n\
         DESCRIPTION=\"base OS\"\n\
         TYPE=\"image\"\n\
         \n"
    );
    assert_eq!(show.lines().count(), want.lines().count(), "{show}");
    for (got, want) in show.lines().zip(want.lines()) {
        match want.strip_suffix('*') {
            Some(name) => assert!(
                got.strip_prefix(name)
                    .is_some_and(|t| shaped(&t.replace("  ", " 0"), "AAA AAA 99 99:99:99 9999")),
                "{show}"
            ),
            None => assert_eq!(got, want, "{show}"),
        }
    }

    // Exported back: the image takes the app's file; with a VMTEMPLATE64, a VM template too.
    assert_eq!(
        app(&zone, &["export", "0", "copy", "-d", "1"]),
        "IMAGE\n    ID: 1\n"
    );
    let copy = c.call_xml("one.image.info", vec![Value::Int(1)]).unwrap();
    assert_eq!(elem(&copy, "PATH"), source);
    assert_eq!(elem(&copy, "FROM_APP_NAME"), "app");
    assert_eq!(elem(&copy, "DATASTORE_ID"), "1");
    let tmpl = elem(&copy, "TEMPLATE");
    assert!(
        tmpl.contains("<FROM_APP><![CDATA[0]]></FROM_APP>") && !tmpl.contains("<FORMAT>"),
        "{copy}"
    );
    // CPU=1, MEMORY=64.
    let vm = file(&dir, "vm.tmpl", "VMTEMPLATE64 = \"Q1BVPTEKTUVNT1JZPTY0\"\n");
    assert_eq!(app(&zone, &["update", "0", &vm, "--append"]), "");
    assert_eq!(
        app(
            &zone,
            &["export", "0", "copy2", "-d", "1", "--vmname", "vm"]
        ),
        "IMAGE\n    ID: 2\nVMTEMPLATE\n    ID: 0\n"
    );
    let t = c
        .call_xml("one.template.info", vec![Value::Int(0)])
        .unwrap();
    assert_eq!(elem(&t, "NAME"), "vm");
    assert_eq!(elem(&t, "MEMORY"), "64");
    assert_eq!(elem(&t, "IMAGE_ID"), "2");
    assert_eq!(
        app(&zone, &["export", "0", "copy3", "-d", "1", "--no"]),
        "IMAGE\n    ID: 3\n"
    );
    // --template: a clone of VM template 0 takes the new image.
    assert_eq!(
        app(
            &zone,
            &["export", "0", "copy4", "-d", "1", "--template", "0"]
        ),
        "IMAGE\n    ID: 4\nVMTEMPLATE\n    ID: 1\n"
    );
    let t = c
        .call_xml("one.template.info", vec![Value::Int(1)])
        .unwrap();
    assert_eq!(elem(&t, "NAME"), "copy4");
    assert!(t.contains("<IMAGE_ID><![CDATA[4]]></IMAGE_ID>"), "{t}");

    // Disabled, the app cannot be exported; enabled again, it is READY.
    assert_eq!(app(&zone, &["disable", "0"]), "");
    wait_app(&zone, "0", "dis");
    assert!(app(&zone, &["list"]).contains(" dis  img "));
    assert_eq!(
        run(&zone, Kind::MarketApp, &["export", "0", "copy5", "-d", "1"]),
        (255, String::new(), "App is not READY\n".into())
    );
    assert_eq!(app(&zone, &["enable", "0"]), "");
    wait_app(&zone, "0", "rdy");

    // Lock and unlock.
    assert_eq!(app(&zone, &["lock", "0"]), "");
    assert!(app(&zone, &["show", "0"]).contains("\nLOCK           : Use\n"));
    let (code, out, err) = run(&zone, Kind::MarketApp, &["delete", "0"]);
    assert_eq!((code, out.as_str()), (255, ""), "{err}");
    assert!(err.starts_with("[one.marketapp.delete] "), "{err}");
    assert_eq!(app(&zone, &["unlock", "0"]), "");
    assert_eq!(app(&zone, &["lock", "0", "--manage"]), "");
    assert!(app(&zone, &["show", "0"]).contains("\nLOCK           : Manage\n"));
    assert_eq!(app(&zone, &["unlock", "0"]), "");
    assert!(app(&zone, &["show", "0"]).contains("\nLOCK           : None\n"));

    // Renames, permissions, group, template.
    assert_eq!(app(&zone, &["rename", "0", "renamed"]), "");
    assert_eq!(market(&zone, &["rename", "100", "web2"]), "");
    let show = app(&zone, &["show", "0"]);
    assert!(
        show.contains("\nNAME           : renamed\n") && show.contains("\nMARKETPLACE    : web2\n"),
        "{show}"
    );
    assert_eq!(market(&zone, &["chmod", "100", "u=rwx,g=r"]), "");
    assert_eq!(market(&zone, &["chgrp", "100", "1"]), "");
    let mine = file(&dir, "mine.tmpl", "DESCRIPTION = mine\n");
    assert_eq!(market(&zone, &["update", "100", &mine, "--append"]), "");
    let head = head
        .replace("NAME           : web\n", "NAME           : web2\n")
        .replace("GROUP          : oneadmin\n", "GROUP          : users\n")
        .replace(
            "OWNER          : um-\nGROUP          : ---\n",
            "OWNER          : uma\nGROUP          : u--\n",
        );
    let mut template = web_template.to_vec();
    template.push("DESCRIPTION=\"mine\"");
    market_show(&zone, "100", &head, &template, "0\n");
    assert_eq!(app(&zone, &["chmod", "0", "604"]), "");
    assert!(app(&zone, &["show", "0"])
        .contains("\nOWNER          : um-\nGROUP          : ---\nOTHER          : u--\n"));

    // OpenNebula's refusals.
    let refusals = [
        (
            Kind::MarketApp,
            vec!["create", "-m", "0", "--name", "x", "--image", &image],
            "[one.marketapp.allocate] Create disabled for market: OpenNebula Public".to_string(),
        ),
        (
            Kind::Market,
            vec!["create", &half],
            "[one.market.allocate] MarketPlace template is missing the \"PUBLIC_DIR\" attribute or it's empty."
                .to_string(),
        ),
        (
            Kind::Market,
            vec!["delete", "100"],
            "[one.market.delete] Cannot delete marketplace. marketplace  100 is not empty."
                .to_string(),
        ),
        (
            Kind::Market,
            vec!["rename", "100", "OpenNebula Public"],
            "[one.market.rename] marketplace cannot be renamed to OpenNebula Public because it collides with marketplace 0"
                .to_string(),
        ),
        (
            Kind::MarketApp,
            vec!["create", "--name", "x"],
            "Marketplace to save the app is mandatory: \n\t -m marketplace_id".to_string(),
        ),
        (
            Kind::MarketApp,
            vec!["create", &web, "-m", "100", "--name", "x", "--dry"],
            "You cannot pass template on STDIN and use template creation options, conflicting options: name, dry."
                .to_string(),
        ),
        (
            Kind::MarketApp,
            vec!["show", "7"],
            "[one.marketapp.info] Error getting marketplaceapp [7].".to_string(),
        ),
    ];
    for (kind, args, want) in refusals {
        assert_eq!(
            run(&zone, kind, &args),
            (255, String::new(), format!("{want}\n")),
            "{args:?}"
        );
    }

    // Deleted; a second app goes with its market's disabling; then the market goes.
    assert_eq!(app(&zone, &["delete", "0"]), "");
    assert_eq!(
        app(&zone, &["list"]),
        "  ID NAME                    VERSION  SIZE    ARCH HYPERVISOR STAT TYPE  REGTIME MARKET     ZONE\n"
    );
    assert_eq!(
        app(
            &zone,
            &["create", "-m", "100", "--name", "two", "--image", &image]
        ),
        "ID: 1\n"
    );
    wait_app(&zone, "1", "rdy");
    assert_eq!(market(&zone, &["disable", "100"]), "");
    assert!(app(&zone, &["list"]).lines().count() == 1);
    assert!(market(&zone, &["show", "100"]).contains("\nSTATE          : DISABLED\n"));
    assert!(market(&zone, &["list"])
        .contains("\n 100 web2                    0M -               0 http       0 off\n"));
    assert_eq!(market(&zone, &["enable", "100"]), "");
    assert!(market(&zone, &["show", "100"]).contains("\nSTATE          : ENABLED\n"));
    assert_eq!(market(&zone, &["delete", "100"]), "");
    assert_eq!(market(&zone, &["list"]).lines().count(), 3);
}
