//! `oneimage` and `onedatastore`, as OpenNebula's: the datastore tables and `show` layouts,
//! a datastore made from a file and changed by every subcommand, images made from the template
//! options and from a file, their tables and `show` layouts, clone, the state and type changes,
//! lock/unlock, snapshots by id and name, restore, delete, and OpenNebula's refusals (on
//! stderr, or on stdout where OpenNebula prints them there) with exit code 255.

use std::path::Path;

use cli::objects::Kind;

use crate::zone::{Zone, DEADLINE};

/// The CLI of `kind` in-process as oneadmin: (exit code, stdout, stderr).
fn run(zone: &Zone, kind: Kind, args: &[&str]) -> (i32, String, String) {
    zone.servers[0].cli(kind, args).parts()
}

/// `oneimage` that must succeed: its stdout.
fn image(zone: &Zone, args: &[&str]) -> String {
    zone.servers[0].cli(Kind::Image, args).ok()
}

/// `onedatastore` that must succeed: its stdout.
fn ds(zone: &Zone, args: &[&str]) -> String {
    zone.servers[0].cli(Kind::Datastore, args).ok()
}

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Whether `s` has the shape of `shape`, where `9` is any digit.
fn shaped(s: &str, shape: &str) -> bool {
    s.len() == shape.len()
        && s.chars().zip(shape.chars()).all(|(c, p)| match p {
            '9' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// `show` lines against `want`, where a line ending in `*` holds a time (`99/99 99:99:99`).
fn same_show(show: &str, want: &str) {
    assert_eq!(show.lines().count(), want.lines().count(), "{show}");
    for (got, want) in show.lines().zip(want.lines()) {
        match want.strip_suffix('*') {
            Some(head) => assert!(
                got.strip_prefix(head)
                    .is_some_and(|t| shaped(t, "99/99 99:99:99")),
                "{got:?} in\n{show}"
            ),
            None => assert_eq!(got, want, "{show}"),
        }
    }
}

/// Waits until image `id` is in the short state `stat` (`rdy`...).
fn wait_image(zone: &Zone, id: &str, stat: &str) {
    let want = format!("\nSTATE          : {stat}\n");
    zone.wait_until(DEADLINE, &format!("image {id} is {stat}"), || {
        run(zone, Kind::Image, &["show", id]).1.contains(&want)
    });
}

#[test]
fn onedatastore_lists_shows_and_changes_datastores() {
    let zone = Zone::solo();
    let (dir, _keep) = testkit::zone::temp_dir("onedatastore");
    let web = file(
        &dir,
        "web.tmpl",
        "NAME = web\nDS_MAD = fs\nTM_MAD = shared\nLIMIT_MB = 2048\n",
    );
    assert_eq!(ds(&zone, &["create", &web]), "ID: 100\n");
    assert_eq!(
        ds(&zone, &["list"]),
        "  ID NAME         SIZE AVA CLUSTERS IMAGES TYPE DS      TM      STAT\n \
            100 web         1024G 100 0             0 img  fs      shared  on\n   \
            2 files       1024G 100 0             0 fil  fs      local   on\n   \
            1 default     1024G 100 0             0 img  fs      local   on\n   \
            0 system          - 100 0             0 sys  -       local   on\n"
    );
    assert_eq!(
        ds(
            &zone,
            &["list", "-l", "ID,USER,GROUP", "--csv", "-f", "TM=shared"]
        ),
        "ID,USER,GROUP\n100,oneadmin,oneadmin\n"
    );
    let show = ds(&zone, &["show", "web"]);
    assert_eq!(
        show,
        "DATASTORE 100 INFORMATION\n\
         ID             : 100\n\
         NAME           : web\n\
         USER           : oneadmin\n\
         GROUP          : oneadmin\n\
         CLUSTERS       : 0\n\
         TYPE           : IMAGE\n\
         DS_MAD         : fs\n\
         TM_MAD         : shared\n\
         BASE PATH      : /var/lib/one//datastores/100\n\
         DISK_TYPE      : FILE\n\
         STATE          : READY\n\
         \n\
         DATASTORE CAPACITY\n\
         TOTAL:         : 1024G\n\
         FREE:          : 1024G\n\
         USED:          : 0M\n\
         LIMIT:         : 2G\n\
         \n\
         PERMISSIONS\n\
         OWNER          : um-\n\
         GROUP          : u--\n\
         OTHER          : ---\n\
         \n\
         DATASTORE TEMPLATE\n\
         ALLOW_ORPHANS=\"FORMAT\"\n\
         CLONE_TARGET=\"SYSTEM\"\n\
         CLONE_TARGET_SSH=\"SYSTEM\"\n\
         DISK_TYPE=\"FILE\"\n\
         DISK_TYPE_SSH=\"FILE\"\n\
         DS_MAD=\"fs\"\n\
         LIMIT_MB=\"2048\"\n\
         LN_TARGET=\"NONE\"\n\
         LN_TARGET_SSH=\"SYSTEM\"\n\
         PERSISTENT_SNAPSHOTS=\"YES\"\n\
         RESTRICTED_DIRS=\"/\"\n\
         SAFE_DIRS=\"/var/tmp\"\n\
         TM_MAD=\"shared\"\n\
         TM_MAD_SYSTEM=\"ssh\"\n\
         \n\
         IMAGES\n"
    );
    assert!(ds(&zone, &["show", "0", "-x"]).starts_with("<DATASTORE><ID>0</ID>"));

    // An image datastore's SHARED goes (`set_tm_mad` runs again on every update).
    let local = file(&dir, "local.tmpl", "SHARED = NO\n");
    assert_eq!(ds(&zone, &["update", "100", &local, "--append"]), "");
    assert_eq!(ds(&zone, &["rename", "100", "web2"]), "");
    assert_eq!(ds(&zone, &["chmod", "web2", "u=rwx,g=r,o=r"]), "");
    assert_eq!(ds(&zone, &["chgrp", "100", "users"]), "");
    let show = ds(&zone, &["show", "100"]);
    for part in [
        "\nNAME           : web2\n",
        "\nGROUP          : users\n",
        "TOTAL:         : 1024G\n",
        "OWNER          : uma\nGROUP          : u--\nOTHER          : u--\n",
    ] {
        assert!(show.contains(part), "{part:?} in\n{show}");
    }
    assert!(!show.contains("SHARED"), "{show}");
    // SHARED = NO (a system datastore on ssh): a local datastore shows no capacity.
    let sys = file(
        &dir,
        "sys.tmpl",
        "NAME = local\nTYPE = SYSTEM_DS\nTM_MAD = ssh\n",
    );
    assert_eq!(ds(&zone, &["create", &sys]), "ID: 101\n");
    let show = ds(&zone, &["show", "101"]);
    for part in [
        "TOTAL:         : -\nFREE:          : -\nUSED:          : -\nLIMIT:         : -\n",
        "\nSHARED=\"NO\"\n",
    ] {
        assert!(show.contains(part), "{part:?} in\n{show}");
    }
    assert_eq!(ds(&zone, &["delete", "101"]), "");
    let list = ds(&zone, &["list"]);
    assert!(
        list.contains("\n 100 web2        1024G 100 0             0 img  fs      shared  on\n"),
        "{list}"
    );
    assert!(!list.contains("\n 101 "), "{list}");
    assert_eq!(ds(&zone, &["chown", "100", "oneadmin", "oneadmin"]), "");
    assert!(ds(&zone, &["show", "100"]).contains("\nGROUP          : oneadmin\n"));

    // Only system datastores are enabled or disabled.
    assert_eq!(ds(&zone, &["disable", "system"]), "");
    assert!(ds(&zone, &["show", "0"]).contains("\nSTATE          : DISABLED\n"));
    assert!(ds(&zone, &["list"])
        .contains("\n   0 system          - 100 0             0 sys  -       local   off\n"));
    assert_eq!(ds(&zone, &["enable", "0"]), "");
    assert!(ds(&zone, &["show", "0"]).contains("\nSTATE          : READY\n"));

    let refusals: [(Vec<&str>, &str); 5] = [
        (
            vec!["disable", "1,2"],
            "[one.datastore.enable] Only SYSTEM_DS can be disabled or enabled\n\
             [one.datastore.enable] Only SYSTEM_DS can be disabled or enabled",
        ),
        (
            vec!["delete", "7"],
            "[one.datastore.delete] Error getting datastore [7].",
        ),
        (vec!["show", "nope"], "DATASTORE named nope not found."),
        (
            vec!["show", "7"],
            "[one.datastore.info] Error getting datastore [7].",
        ),
        (
            vec!["create", &web, "-c", "nope"],
            "CLUSTER named nope not found.\noption cluster: Parsing error",
        ),
    ];
    for (args, want) in refusals {
        assert_eq!(
            run(&zone, Kind::Datastore, &args),
            (255, String::new(), format!("{want}\n")),
            "{args:?}"
        );
    }
    assert_eq!(ds(&zone, &["delete", "web2"]), "");
    assert_eq!(ds(&zone, &["list"]).lines().count(), 4);
}

#[test]
fn oneimage_makes_and_changes_images_as_opennebula() {
    let zone = Zone::solo();
    let (dir, _keep) = testkit::zone::temp_dir("oneimage");
    // --dry prints the template the options make, and needs no datastore.
    assert_eq!(
        image(
            &zone,
            &[
                "create", "--name", "base", "--path", "/tmp/base.qcow2", "--format", "qcow2",
                "--prefix", "VD", "--persistent", "--dry",
            ],
        ),
        "PATH=\"/tmp/base.qcow2\"\nFORMAT=\"qcow2\"\nNAME=\"base\"\nPERSISTENT=YES\nDEV_PREFIX=\"vd\"\n"
    );
    assert_eq!(
        image(
            &zone,
            &[
                "create",
                "-d",
                "default",
                "--name",
                "base",
                "--path",
                "/tmp/base.qcow2",
                "--format",
                "qcow2",
                "--description",
                "the base"
            ]
        ),
        "ID: 0\n"
    );
    wait_image(&zone, "0", "rdy");
    let data = file(
        &dir,
        "data.tmpl",
        "NAME = data\nTYPE = DATABLOCK\nSIZE = 400\nPERSISTENT = YES\n",
    );
    assert_eq!(image(&zone, &["create", &data, "-d", "1"]), "ID: 1\n");
    wait_image(&zone, "1", "rdy");

    assert_eq!(
        image(&zone, &["list"]),
        "  ID USER     GROUP    NAME            DATASTORE     SIZE TYPE PER STAT RVMS\n   \
            1 oneadmin oneadmin data            default       400M DB   Yes rdy     0\n   \
            0 oneadmin oneadmin base            default      1024M OS    No rdy     0\n"
    );
    assert_eq!(
        image(
            &zone,
            &[
                "list",
                "-n",
                "-l",
                "ID,USER,NAME,SIZE",
                "-k",
                "--csv",
                "-f",
                "TYPE=DB"
            ]
        ),
        "ID,USER,NAME,SIZE\n1,0,data,400\n"
    );
    assert_eq!(image(&zone, &["list", "--backup", "--no-header"]), "");
    assert_eq!(
        image(&zone, &["list", "mine", "--no-header"])
            .lines()
            .count(),
        2
    );
    let regtime = image(&zone, &["list", "-l", "REGTIME,MODTIME", "--no-header"]);
    for line in regtime.lines() {
        assert!(shaped(line, " 99/99 99:99:99  99/99 99:99:99"), "{regtime}");
    }
    same_show(
        &image(&zone, &["show", "base"]),
        "IMAGE 0 INFORMATION\n\
         ID             : 0\n\
         NAME           : base\n\
         USER           : oneadmin\n\
         GROUP          : oneadmin\n\
         LOCK           : None\n\
         DATASTORE      : default\n\
         TYPE           : OS\n\
         REGISTER TIME  : *\n\
         LAST MODIFIED  : *\n\
         PERSISTENT     : No\n\
         SOURCE         : /var/lib/one//datastores/1/0\n\
         PATH           : /tmp/base.qcow2\n\
         FORMAT         : qcow2\n\
         SIZE           : 1024M\n\
         STATE          : rdy\n\
         RUNNING_VMS    : 0\n\
         \n\
         PERMISSIONS\n\
         OWNER          : um-\n\
         GROUP          : ---\n\
         OTHER          : ---\n\
         \n\
         IMAGE TEMPLATE\n\
         DESCRIPTION=\"the base\"\n\
         DEV_PREFIX=\"sd\"\n",
    );
    assert!(image(&zone, &["show", "0", "-x"]).starts_with("<IMAGE><ID>0</ID>"));
    assert!(ds(&zone, &["show", "default"]).ends_with("\nIMAGES\n0\n1\n"));

    // Clone (to the source's datastore, or -d's), then the state and type changes.
    assert_eq!(image(&zone, &["clone", "base", "copy"]), "ID: 2\n");
    wait_image(&zone, "2", "rdy");
    assert_eq!(image(&zone, &["persistent", "copy"]), "");
    assert_eq!(image(&zone, &["disable", "2"]), "");
    let show = image(&zone, &["show", "2"]);
    assert!(
        show.contains("\nPERSISTENT     : Yes\n") && show.contains("\nSTATE          : disa\n"),
        "{show}"
    );
    assert_eq!(
        run(&zone, Kind::Image, &["clone", "2", "again"]),
        (
            255,
            "[one.image.clone] Error allocating a new image. Cannot clone image in state: DISABLED\n"
                .into(),
            String::new()
        )
    );
    assert_eq!(image(&zone, &["enable", "2"]), "");
    assert_eq!(image(&zone, &["nonpersistent", "2"]), "");
    assert_eq!(image(&zone, &["chtype", "2", "datablock"]), "");
    wait_image(&zone, "2", "rdy");
    let show = image(&zone, &["show", "2"]);
    assert!(
        show.contains("\nPERSISTENT     : No\n") && show.contains("\nTYPE           : DATABLOCK\n"),
        "{show}"
    );

    // Rename, template, permissions, owner, lock.
    assert_eq!(image(&zone, &["rename", "2", "copy2"]), "");
    let extra = file(&dir, "extra.tmpl", "OWNER_NOTE = kept\n");
    assert_eq!(image(&zone, &["update", "copy2", &extra, "--append"]), "");
    assert_eq!(image(&zone, &["chmod", "2", "644"]), "");
    assert_eq!(image(&zone, &["chgrp", "2", "users"]), "");
    assert_eq!(image(&zone, &["chown", "0..1", "oneadmin", "users"]), "");
    assert_eq!(image(&zone, &["lock", "copy2", "--admin"]), "");
    let show = image(&zone, &["show", "copy2"]);
    for part in [
        "\nNAME           : copy2\n",
        "\nGROUP          : users\n",
        "\nLOCK           : Admin\n",
        "OWNER          : um-\nGROUP          : u--\nOTHER          : u--\n",
        "\nOWNER_NOTE=\"kept\"\n",
    ] {
        assert!(show.contains(part), "{part:?} in\n{show}");
    }
    assert!(image(&zone, &["list", "-l", "GROUP", "--no-header"])
        .lines()
        .all(|l| l == "users"));
    // A state change ends any lock, as `Image::set_state` does: disabling (a MANAGE call an
    // ADMIN lock lets through) leaves it unlocked.
    assert_eq!(image(&zone, &["disable", "copy2"]), "");
    let show = image(&zone, &["show", "copy2"]);
    assert!(show.contains("\nLOCK           : None\n"), "{show}");
    assert_eq!(image(&zone, &["enable", "copy2"]), "");
    assert_eq!(image(&zone, &["lock", "copy2", "--admin"]), "");
    // A lock weighs on delete as on any MANAGE call: an ADMIN lock lets it through, a MANAGE
    // lock refuses it (oneadmin is told why).
    assert_eq!(image(&zone, &["unlock", "2"]), "");
    assert_eq!(image(&zone, &["lock", "2", "--manage"]), "");
    let (code, out, err) = run(&zone, Kind::Image, &["delete", "2"]);
    assert_eq!((code, out.as_str()), (255, ""));
    assert_eq!(err, "[one.image.delete] User [0] : IMAGE is locked. [2].\n");
    assert_eq!(image(&zone, &["unlock", "2"]), "");
    assert!(image(&zone, &["show", "2"]).contains("\nLOCK           : None\n"));

    // No template uses them: all three are orphans.
    assert_eq!(image(&zone, &["orphans"]), "2\n1\n0\n");

    // OpenNebula's refusals: on stderr, but restore's and clone's on stdout.
    let refusals: [(Vec<&str>, &str, &str); 10] = [
        (
            vec!["create", "--name", "x", "--path", "/tmp/x"],
            "",
            "Datastore to save the image is mandatory: \n\t -d datastore_id",
        ),
        (
            vec!["create", &data, "-d", "1", "--type", "OS", "--persistent"],
            "",
            "You cannot pass template on STDIN and use template creation options, \
             conflicting options: type, persistent.",
        ),
        (
            vec!["create", "-d", "1", "--name", "x", "--type", "disk"],
            "",
            "Type should be: OS, CDROM, DATABLOCK, KERNEL, RAMDISK, CONTEXT, BACKUP\n\
             option type: Parsing error",
        ),
        (
            vec!["create", "-d", "1", "--name", "x", "--size", "big"],
            "",
            "Size value malformed\noption size: Parsing error",
        ),
        (
            vec!["create", "-d", "nope", "--name", "x"],
            "",
            "DATASTORE named nope not found.\noption datastore: Parsing error",
        ),
        (
            vec!["chtype", "2", "disk"],
            "",
            "Image type not supported. Must be OS, CDROM, DATABLOCK, KERNEL, RAMDISK, CONTEXT, BACKUP.",
        ),
        (
            vec!["snapshot-revert", "2", "3"],
            "",
            "[one.image.snapshotrevert] Snapshot does not exist",
        ),
        (
            vec!["snapshot-flatten", "2", "first"],
            "",
            "first not found or duplicated",
        ),
        (
            vec!["restore", "2"],
            "",
            "Datastore to restore the backup is mandatory: \n\t -d datastore_id | name",
        ),
        (
            vec!["restore", "2", "-d", "default"],
            "[one.image.restore] Can only restore images of type BACKUP\n",
            "",
        ),
    ];
    for (args, out, err) in refusals {
        let err = if err.is_empty() {
            String::new()
        } else {
            format!("{err}\n")
        };
        assert_eq!(
            run(&zone, Kind::Image, &args),
            (255, out.to_string(), err),
            "{args:?}"
        );
    }

    let (code, out, err) = run(
        &zone,
        Kind::Image,
        &["create", "-d", "1", "--name", "base", "--path", "/tmp/b"],
    );
    assert_eq!((code, out.as_str()), (255, ""));
    assert!(
        err.starts_with(
            "[one.image.allocate] Error allocating a new image. NAME is already taken by IMAGE "
        ),
        "{err}"
    );

    // Deleted: a range at once.
    assert_eq!(image(&zone, &["delete", "1..2"]), "");
    zone.wait_until(DEADLINE, "images 1 and 2 are gone", || {
        image(&zone, &["list", "--no-header"]).lines().count() == 1
    });
}
