//! What every object CLI shares with OpenNebula's CLI framework (`OneHelper`, `CLIHelper`):
//! names as ids (`to_id`, `rname_to_id`, with OpenNebula's refusals), ranges and lists acted
//! on one id after the other (`perform_actions`: a refusal is printed, the rest still done,
//! exit code 255), and `list`'s `-x`, `-j`, `--csv`, `-l`, `-f`, `--search` and
//! `--no-header`.

use std::path::Path;

use cli::objects::Kind;
use cli::xml::Element;

use crate::zone::{Zone, DEADLINE};

fn run(zone: &Zone, kind: Kind, args: &[&str]) -> (i32, String, String) {
    zone.servers[0].cli(kind, args).parts()
}

fn ok(zone: &Zone, kind: Kind, args: &[&str]) -> String {
    zone.servers[0].cli(kind, args).ok()
}

/// A file in `dir` holding `text`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The names `onetemplate list` shows, in order.
fn template_names(zone: &Zone) -> String {
    ok(
        zone,
        Kind::Template,
        &["list", "--csv", "--no-header", "-l", "NAME"],
    )
}

#[test]
fn names_ranges_and_lists_name_the_objects() {
    use Kind::*;
    let zone = Zone::solo();
    let (dir, _keep) = testkit::zone::temp_dir("cli_common");
    for (i, name) in ["web", "dup", "dup", "spare", "extra"].iter().enumerate() {
        let tpl = file(
            &dir,
            name,
            &format!("NAME = {name}\nCPU = 1\nMEMORY = 64\n"),
        );
        assert_eq!(ok(&zone, Template, &["create", &tpl]), format!("ID: {i}\n"));
        if i == 1 {
            // Names are unique per owner: the other `dup` belongs to someone else.
            assert_eq!(ok(&zone, Template, &["chown", "1", "serveradmin"]), "");
        }
    }

    // A name stands for the id; a number stays an id.
    assert!(ok(&zone, Template, &["show", "web"]).starts_with("TEMPLATE 0 INFORMATION\n"));
    assert!(ok(&zone, Template, &["show", "3"]).starts_with("TEMPLATE 3 INFORMATION\n"));
    // OpenNebula's refusals: no such name, several with it.
    assert_eq!(
        run(&zone, Template, &["show", "nothing"]),
        (
            255,
            String::new(),
            "VMTEMPLATE named nothing not found.\n".into()
        )
    );
    assert_eq!(
        run(&zone, Template, &["show", "dup"]),
        (
            255,
            String::new(),
            "There are multiple VMTEMPLATEs with name dup.\n".into()
        )
    );
    assert_eq!(
        run(&zone, Template, &["clone", "dup", "copy"]).2,
        "There are multiple VMTEMPLATEs with name dup.\n"
    );

    // A range; then a list mixing a name and an id.
    assert_eq!(ok(&zone, Template, &["delete", "1..2"]), "");
    assert_eq!(template_names(&zone), "extra\nspare\nweb\n");
    assert_eq!(ok(&zone, Template, &["delete", "spare,4"]), "");
    assert_eq!(template_names(&zone), "web\n");
    // A name that resolves to nothing stops the command before any action.
    let (code, _, err) = run(&zone, Template, &["delete", "web,nothing"]);
    assert_eq!(
        (code, err.as_str()),
        (255, "VMTEMPLATE named nothing not found.\n")
    );
    assert_eq!(template_names(&zone), "web\n");
    // A refused id is reported and the rest still acted on.
    let (code, out, err) = run(&zone, Template, &["delete", "9,web"]);
    assert_eq!((code, out.as_str()), (255, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains('9'), "{err}");
    assert_eq!(template_names(&zone), "");

    // VMs on hold, released by name and id, held again by range.
    for name in ["vm-a", "vm-b", "vm-c"] {
        let tpl = file(
            &dir,
            name,
            &format!("NAME = {name}\nCPU = 1\nMEMORY = 64\n"),
        );
        ok(&zone, Vm, &["create", &tpl, "--hold"]);
    }
    let stats = |zone: &Zone| {
        ok(
            zone,
            Vm,
            &["list", "--csv", "--no-header", "-l", "NAME,STAT"],
        )
    };
    assert_eq!(stats(&zone), "vm-c,hold\nvm-b,hold\nvm-a,hold\n");
    ok(&zone, Vm, &["release", "vm-a,2"]);
    assert_eq!(stats(&zone), "vm-c,pend\nvm-b,hold\nvm-a,pend\n");
    // vm-b (1) is on hold already: refused, and 0 and 2 still held.
    let (code, _, err) = run(&zone, Vm, &["hold", "0..2"]);
    assert_eq!(code, 255);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(stats(&zone), "vm-c,hold\nvm-b,hold\nvm-a,hold\n");
    assert_eq!(
        run(&zone, Vm, &["release", "vm-z"]).2,
        "VM named vm-z not found.\n"
    );

    // Names of other families: a group for chgrp, a user for addadmin.
    assert_eq!(ok(&zone, User, &["create", "bob", "pw"]), "ID: 2\n");
    assert_eq!(ok(&zone, Group, &["create", "devs"]), "ID: 100\n");
    ok(&zone, User, &["chgrp", "bob", "devs"]);
    ok(&zone, Group, &["addadmin", "devs", "bob"]);
    assert_eq!(
        ok(
            &zone,
            User,
            &["list", "--csv", "-l", "NAME,GROUP", "-f", "NAME=bob"]
        ),
        "NAME,GROUP\nbob,devs\n"
    );
    assert_eq!(
        run(&zone, User, &["chgrp", "bob", "ops"]).2,
        "GROUP named ops not found.\n"
    );
    // oneacl delete takes numbers and ranges only, as OpenNebula's `[:range]`.
    assert_eq!(
        run(&zone, Acl, &["delete", "rule"]).2,
        "command delete: argument 0 must be one of range\n"
    );
}

#[test]
fn list_options_shape_every_listing() {
    use Kind::*;
    let zone = Zone::solo();
    let (dir, _keep) = testkit::zone::temp_dir("cli_common");
    for name in ["web", "db"] {
        let tpl = file(
            &dir,
            name,
            &format!("NAME = {name}\nCPU = 1\nMEMORY = 64\n"),
        );
        ok(&zone, Template, &["create", &tpl]);
        ok(&zone, Vm, &["create", &tpl, "--hold"]);
    }

    // -x: the pool document.
    let xml = ok(&zone, Vm, &["list", "-x"]);
    let pool = Element::parse(&xml).unwrap();
    assert_eq!(pool.name, "VM_POOL");
    let names: Vec<&str> = pool
        .children_named("VM")
        .map(|v| v.text_of("NAME").unwrap())
        .collect();
    // Newest first, as oned.conf's API_LIST_ORDER defaults.
    assert_eq!(names, ["db", "web"]);
    // --search: only what the query matches, in every format.
    let found = ok(&zone, Vm, &["list", "--search", "VM.NAME=we", "-x"]);
    let pool = Element::parse(&found).unwrap();
    assert_eq!(pool.children_named("VM").count(), 1, "{found}");
    let table = ok(
        &zone,
        Vm,
        &["list", "--search", "VM.NAME=db", "-l", "ID,NAME"],
    );
    assert_eq!(table, "    ID NAME\n     1 db\n");

    // -j: to_hash as Ruby's JSON.pretty_generate prints it.
    let json = ok(&zone, Template, &["list", "-j"]);
    assert!(
        json.starts_with(
            "{\n  \"VMTEMPLATE_POOL\": {\n    \"VMTEMPLATE\": [\n      {\n        \"ID\": \"1\",\n"
        ),
        "{json}"
    );
    assert!(json.contains("\n        \"NAME\": \"web\",\n"), "{json}");
    assert!(json.contains("\n        \"NAME\": \"db\",\n"), "{json}");
    assert!(json.ends_with("\n    ]\n  }\n}\n"), "{json}");

    // -f: the rows whose column matches (=, !=, ~), -l: the columns in that order.
    assert_eq!(
        ok(
            &zone,
            Template,
            &["list", "-f", "NAME=web", "-l", "NAME,ID"]
        ),
        "NAME                           ID\nweb                             0\n"
    );
    assert_eq!(
        ok(
            &zone,
            Template,
            &["list", "-f", "NAME!=web", "-l", "ID", "--no-header"]
        ),
        "   1\n"
    );
    assert_eq!(
        run(&zone, Template, &["list", "-f", "COLOR=red"]),
        (255, String::new(), "Column 'COLOR' not found\n".into())
    );
    assert_eq!(
        ok(&zone, User, &["list", "-l", "ID,NAME"]),
        "  ID NAME\n   1 serveradmin\n   0 oneadmin\n"
    );
    assert_eq!(
        ok(&zone, User, &["list", "--list=name", "--no-header"]),
        "serveradmin\noneadmin\n"
    );
    assert_eq!(
        run(&zone, User, &["list", "-l", "ID,COLOR"]),
        (255, String::new(), "Column COLOR not defined.\n".into())
    );

    // --csv, with a host created into a cluster given by name.
    assert_eq!(ok(&zone, Cluster, &["create", "edge"]), "ID: 100\n");
    assert_eq!(
        ok(&zone, Host, &["create", "node1", "-c", "edge"]),
        "ID: 0\n"
    );
    assert_eq!(
        run(&zone, Host, &["create", "node2", "-c", "nowhere"]).2,
        "CLUSTER named nowhere not found.\noption cluster: Parsing error\n"
    );
    zone.wait_until(DEADLINE, "node1 is on", || {
        ok(
            &zone,
            Host,
            &["list", "--csv", "-l", "NAME,STAT", "--no-header"],
        ) == "node1,on\n"
    });
    let csv = ok(&zone, Host, &["list", "--csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0], "ID,NAME,CLUSTER,TVM,ALLOCATED_CPU,ALLOCATED_MEM,STAT",
        "{csv}"
    );
    assert!(lines[1].starts_with("0,node1,edge,0,"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    // Names of other families in onecluster's second argument.
    ok(&zone, Cluster, &["delhost", "edge", "node1"]);
    ok(&zone, Cluster, &["addhost", "default", "node1"]);
    assert_eq!(
        ok(&zone, Cluster, &["list", "--csv", "-l", "NAME,HOSTS"]),
        "NAME,HOSTS\nedge,0\ndefault,1\n"
    );
}

/// `oneuser encode` escapes as Ruby's URI parser; `oneuser umask` sets and unsets UMASK in
/// the user's template, keeping the rest of it.
#[test]
fn oneuser_encodes_and_sets_the_umask() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let user = |args: &[&str]| server.cli(cli::objects::Kind::User, args).ok();
    assert_eq!(
        user(&["encode", "ann smith", "p@ss word%"]),
        "ann%20smith:p@ss%20word%25\n"
    );
    let c = server.client();
    let uid = crate::zone::allocate(&c, "masked").unwrap();
    let id = uid.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.tmpl");
    std::fs::write(&file, "LABEL = x").unwrap();
    user(&["update", &id, file.to_str().unwrap()]);
    user(&["umask", "masked", "117"]);
    let body = c
        .call_xml("one.user.info", vec![xmlrpc::Value::Int(uid as i32)])
        .unwrap();
    assert!(body.contains("<LABEL><![CDATA[x]]></LABEL>"), "{body}");
    assert!(body.contains("<UMASK><![CDATA[117]]></UMASK>"), "{body}");
    user(&["umask", &id]);
    let body = c
        .call_xml("one.user.info", vec![xmlrpc::Value::Int(uid as i32)])
        .unwrap();
    assert!(!body.contains("<UMASK>"), "{body}");
    assert!(body.contains("<LABEL><![CDATA[x]]></LABEL>"), "{body}");
}
