//! The order of pool listings, as 7.0.2 takes it: oned.conf's API_LIST_ORDER (DESC when unset,
//! `OpenNebulaTemplate`), unless the user's or else its group's template says otherwise in an
//! `OPENNEBULA` vector (`Nebula::get_configuration_attribute`).

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

/// The ids a pool call lists, in its order.
fn ids(c: &Client, method: &str, params: Vec<Value>, elem: &str) -> Vec<i64> {
    let body = c.call_xml(method, params).unwrap();
    Element::parse(&body)
        .unwrap()
        .children_named(elem)
        .map(|e| e.int_of("ID").unwrap())
        .collect()
}

fn mine(c: &Client, method: &str, elem: &str) -> Vec<i64> {
    ids(c, method, vec![int(-3), int(-1), int(-1)], elem)
}

fn template(c: &Client, name: &str) -> i64 {
    id(
        c,
        "one.template.allocate",
        vec![s(&format!("NAME = {name}\nCPU = 1\nMEMORY = 8"))],
    )
}

#[test]
fn pools_list_newest_first_unless_the_user_its_group_or_oned_conf_say_asc() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();

    // Every pool, newest first.
    let t: Vec<i64> = ["a", "b", "c"].iter().map(|n| template(&c, n)).collect();
    assert_eq!(
        mine(&c, "one.templatepool.info", "VMTEMPLATE"),
        [t[2], t[1], t[0]]
    );
    assert_eq!(ids(&c, "one.userpool.info", vec![], "USER"), [1, 0]);
    assert_eq!(
        ids(&c, "one.datastorepool.info", vec![], "DATASTORE"),
        [2, 1, 0]
    );
    // A page is counted from the newest.
    assert_eq!(
        ids(
            &c,
            "one.templatepool.info",
            vec![int(-2), int(1), int(-2)],
            "VMTEMPLATE"
        ),
        [t[1], t[0]]
    );

    // The VM pool too, and the answer kept between calls takes a new VM in first.
    let vm = |name: &str| {
        id(
            &c,
            "one.vm.allocate",
            vec![s(&format!("NAME = {name}\nCPU = 1\nMEMORY = 8"))],
        )
    };
    let (v0, v1) = (vm("v0"), vm("v1"));
    let vms = || ids(&c, "one.vmpool.info", vec![int(-2), int(-1), int(-1)], "VM");
    assert_eq!(vms(), [v1, v0]);
    let v2 = vm("v2");
    assert_eq!(vms(), [v2, v1, v0]);
    c.call("one.vm.rename", vec![int(v0), s("renamed")])
        .unwrap();
    assert_eq!(vms(), [v2, v1, v0]);

    // A group that lists ascending, and a member who wants its own order back.
    let g = id(&c, "one.group.allocate", vec![s("asc")]);
    c.call(
        "one.group.update",
        vec![
            int(g),
            s("OPENNEBULA = [ API_LIST_ORDER = \"asc\" ]"),
            int(1),
        ],
    )
    .unwrap();
    let new_user = |name: &str| {
        id(
            &c,
            "one.user.allocate",
            vec![s(name), s("pw"), s(""), Value::Array(vec![int(g)])],
        )
    };
    let (plain, own) = (new_user("plain"), new_user("own"));
    c.call(
        "one.user.update",
        vec![
            int(own),
            s("OPENNEBULA = [ API_LIST_ORDER = DESC ]"),
            int(1),
        ],
    )
    .unwrap();
    let plain_c = zone.servers[0].client_as("plain", "pw");
    let own_c = zone.servers[0].client_as("own", "pw");
    // Each user lists its own templates.
    for (uid, name) in [(plain, "x"), (plain, "y"), (own, "x"), (own, "y")] {
        let t = template(&c, name);
        c.call("one.template.chown", vec![int(t), int(uid), int(g)])
            .unwrap();
    }
    let plain_list = mine(&plain_c, "one.templatepool.info", "VMTEMPLATE");
    assert_eq!(plain_list.len(), 2);
    assert!(
        plain_list[0] < plain_list[1],
        "the group's ASC: {plain_list:?}"
    );
    let own_list = mine(&own_c, "one.templatepool.info", "VMTEMPLATE");
    assert_eq!(own_list.len(), 2);
    assert!(own_list[0] > own_list[1], "the user's DESC: {own_list:?}");
    // oneadmin's own order is unchanged.
    let all = ids(
        &c,
        "one.templatepool.info",
        vec![int(-2), int(-1), int(-1)],
        "VMTEMPLATE",
    );
    assert_eq!(all[0], own_list[0]);
}

#[test]
fn oned_conf_may_list_every_pool_ascending() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str("API_LIST_ORDER = \"ASC\"\n");
        s.write_conf();
    };
    let zone = Zone::solo_custom(None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    assert_eq!(ids(&c, "one.userpool.info", vec![], "USER"), [0, 1]);
    assert_eq!(
        ids(&c, "one.datastorepool.info", vec![], "DATASTORE"),
        [0, 1, 2]
    );
    let a = template(&c, "a");
    let b = template(&c, "b");
    assert_eq!(mine(&c, "one.templatepool.info", "VMTEMPLATE"), [a, b]);
    // A user may still ask for newest first.
    c.call(
        "one.user.update",
        vec![int(0), s("OPENNEBULA = [ API_LIST_ORDER = DESC ]"), int(1)],
    )
    .unwrap();
    assert_eq!(mine(&c, "one.templatepool.info", "VMTEMPLATE"), [b, a]);
}
