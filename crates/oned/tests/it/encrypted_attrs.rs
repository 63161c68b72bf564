//! OpenNebula's encrypted attributes (the shipped oned.conf's `*_ENCRYPTED_ATTR`): a VM's
//! CONTEXT/PASSWORD, a user's SSH_PRIVATE_KEY and SSH_PASSPHRASE, a datastore's RESTIC_PASSWORD,
//! a document's PROVISION_BODY are kept and shown encrypted with the zone's ONE_KEY, never twice,
//! and an administrator's `info(id, true)` shows them decrypted (`RequestManagerInfo`).

use cli::client::Client;
use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::Zone;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn id(c: &Client, method: &str, params: Vec<Value>) -> i64 {
    c.call(method, params)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .as_i64()
        .expect("an id")
}

/// The body of `method(id)`, and of `method(id, true)`.
fn bodies(c: &Client, method: &str, oid: i64) -> (Element, Element) {
    let get = |decrypt: Option<bool>| {
        let mut params = vec![int(oid)];
        params.extend(decrypt.map(Value::Bool));
        Element::parse(&c.call_xml(method, params).unwrap()).unwrap()
    };
    (get(None), get(Some(true)))
}

fn path<'a>(e: &'a Element, steps: &[&str]) -> &'a str {
    let mut at = e;
    for step in steps {
        at = at
            .child(step)
            .unwrap_or_else(|| panic!("no {step} in {steps:?}"));
    }
    at.text.as_str()
}

#[test]
fn encrypted_attributes_are_kept_encrypted_and_shown_decrypted_to_administrators() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();

    // A VM's CONTEXT/PASSWORD, its other CONTEXT values as given.
    let vm = id(
        &c,
        "one.vm.allocate",
        vec![
            s("NAME = v\nCPU = 1\nMEMORY = 64\nCONTEXT = [ PASSWORD = \"s3cret\", USERNAME = root ]"),
            Value::Bool(true),
        ],
    );
    let (plain, open) = bodies(&c, "one.vm.info", vm);
    let stored = path(&plain, &["TEMPLATE", "CONTEXT", "PASSWORD"]).to_string();
    assert!(!stored.is_empty() && stored != "s3cret", "{stored}");
    assert_eq!(path(&plain, &["TEMPLATE", "CONTEXT", "USERNAME"]), "root");
    assert_eq!(path(&open, &["TEMPLATE", "CONTEXT", "PASSWORD"]), "s3cret");
    // Written back (updateconf rewrites the CONTEXT), it is not encrypted again.
    c.call(
        "one.vm.updateconf",
        vec![
            int(vm),
            s(&format!(
                "CONTEXT = [ PASSWORD = \"{stored}\", USERNAME = admin ]"
            )),
            int(1),
        ],
    )
    .unwrap();
    let (plain, open) = bodies(&c, "one.vm.info", vm);
    assert_eq!(path(&plain, &["TEMPLATE", "CONTEXT", "PASSWORD"]), stored);
    assert_eq!(path(&open, &["TEMPLATE", "CONTEXT", "PASSWORD"]), "s3cret");

    // A user's SSH keys, through an update; the same value always encrypts the same way.
    let u = id(
        &c,
        "one.user.allocate",
        vec![s("plain"), s("pw-plain"), s(""), Value::Array(vec![])],
    );
    c.call(
        "one.user.update",
        vec![
            int(u),
            s("SSH_PRIVATE_KEY = \"-----BEGIN KEY-----\"\nSSH_PASSPHRASE = s3cret\nCOLOR = red"),
            int(0),
        ],
    )
    .unwrap();
    let (plain, open) = bodies(&c, "one.user.info", u);
    let passphrase = path(&plain, &["TEMPLATE", "SSH_PASSPHRASE"]);
    assert_eq!(passphrase, stored, "one key, a zero IV: as OpenNebula's");
    assert_ne!(
        path(&plain, &["TEMPLATE", "SSH_PRIVATE_KEY"]),
        "-----BEGIN KEY-----"
    );
    assert_eq!(path(&plain, &["TEMPLATE", "COLOR"]), "red");
    assert_eq!(
        path(&open, &["TEMPLATE", "SSH_PRIVATE_KEY"]),
        "-----BEGIN KEY-----"
    );
    // Another user's call asks for nothing: only an administrator's decrypts.
    let user = zone.servers[0].client_as("plain", "pw-plain");
    let (mine, asked) = bodies(&user, "one.user.info", u);
    assert_eq!(path(&mine, &["TEMPLATE", "SSH_PASSPHRASE"]), stored);
    assert_eq!(path(&asked, &["TEMPLATE", "SSH_PASSPHRASE"]), stored);

    // A datastore's RESTIC_PASSWORD at allocate, a document's PROVISION_BODY.
    let ds = id(
        &c,
        "one.datastore.allocate",
        vec![
            s("NAME = b\nTYPE = BACKUP_DS\nDS_MAD = restic\nRESTIC_PASSWORD = s3cret"),
            int(-1),
        ],
    );
    let (plain, open) = bodies(&c, "one.datastore.info", ds);
    assert_eq!(path(&plain, &["TEMPLATE", "RESTIC_PASSWORD"]), stored);
    assert_eq!(path(&open, &["TEMPLATE", "RESTIC_PASSWORD"]), "s3cret");
    let doc = id(
        &c,
        "one.document.allocate",
        vec![s("NAME = d\nPROVISION_BODY = s3cret"), int(100)],
    );
    let (plain, open) = bodies(&c, "one.document.info", doc);
    assert_eq!(path(&plain, &["TEMPLATE", "PROVISION_BODY"]), stored);
    assert_eq!(path(&open, &["TEMPLATE", "PROVISION_BODY"]), "s3cret");
}

/// VM templates are `VirtualMachineTemplate`s: their CONTEXT/PASSWORD is encrypted at allocate
/// and update (`VMTemplatePool::allocate`, `replace_template`), shown decrypted by
/// `one.template.info(id, extended, true)` to administrators, and the VM made from one keeps
/// it encrypted once. `TemplateInfo` and `VirtualNetworkTemplateInfo` read before they
/// authorize: a negative id is NO_EXISTS for everyone.
#[test]
fn vm_templates_keep_their_context_password_encrypted() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let t = id(
        &c,
        "one.template.allocate",
        vec![s(
            "NAME = t\nCPU = 1\nMEMORY = 64\nCONTEXT = [ PASSWORD = \"s3cret\", USERNAME = root ]",
        )],
    );
    let info = |params: Vec<Value>| {
        Element::parse(&c.call_xml("one.template.info", params).unwrap()).unwrap()
    };
    let plain = info(vec![int(t)]);
    let stored = path(&plain, &["TEMPLATE", "CONTEXT", "PASSWORD"]).to_string();
    assert!(!stored.is_empty() && stored != "s3cret", "{stored}");
    // The second parameter is `extended`; `decrypt` is the third.
    let still = info(vec![int(t), Value::Bool(true)]);
    assert_eq!(path(&still, &["TEMPLATE", "CONTEXT", "PASSWORD"]), stored);
    let open = info(vec![int(t), Value::Bool(false), Value::Bool(true)]);
    assert_eq!(path(&open, &["TEMPLATE", "CONTEXT", "PASSWORD"]), "s3cret");
    let vm = id(
        &c,
        "one.template.instantiate",
        vec![int(t), s("v"), Value::Bool(true), s(""), Value::Bool(false)],
    );
    let (plain, open) = bodies(&c, "one.vm.info", vm);
    assert_eq!(path(&plain, &["TEMPLATE", "CONTEXT", "PASSWORD"]), stored);
    assert_eq!(path(&open, &["TEMPLATE", "CONTEXT", "PASSWORD"]), "s3cret");
    // An update encrypts what it writes.
    c.call(
        "one.template.update",
        vec![
            int(t),
            s("CONTEXT = [ PASSWORD = \"other\" ]\nCPU = 1\nMEMORY = 64"),
            int(0),
        ],
    )
    .unwrap();
    let after = info(vec![int(t)]);
    let other = path(&after, &["TEMPLATE", "CONTEXT", "PASSWORD"]);
    assert!(other != "other" && other != stored, "{other}");

    id(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    for method in ["one.template.info", "one.vntemplate.info"] {
        let e = ann.call(method, vec![int(-3)]).unwrap_err();
        assert!(
            format!("{e}").contains(&format!("[{method}] Error getting")),
            "{method}: {e}"
        );
    }
}
