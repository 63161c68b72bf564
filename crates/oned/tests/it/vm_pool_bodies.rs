//! Issue 16: the VM bodies a server keeps between pool calls (`api::vm_pool_cache`). A server
//! that answered the pool before a change answers exactly what a server that never did prints:
//! every change a body shows is seen, and a kept body is byte for byte a fresh one.

use cli::client::Client;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn pool(c: &Client, method: &str) -> Option<String> {
    c.call_xml(method, vec![int(-2), int(-1), int(-1), int(-2)])
        .ok()
}

const METHODS: [&str; 2] = ["one.vmpool.info", "one.vmpool.infoextended"];

/// A new VM named `name`, on hold: its id.
fn held_vm(c: &Client, name: &str, cpu: &str) -> i64 {
    c.call(
        "one.vm.allocate",
        vec![
            s(&format!("NAME = {name}\nCPU = {cpu}\nMEMORY = 16")),
            Value::Bool(true),
        ],
    )
    .unwrap_or_else(|e| panic!("one.vm.allocate: {e:?}"))
    .as_i64()
    .unwrap()
}

#[test]
fn pool_bodies_kept_between_calls_follow_every_change() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let l = zone.servers[leader].client();
    let vm = |text: &str, hold: bool| {
        l.call("one.vm.allocate", vec![s(text), Value::Bool(hold)])
            .unwrap()
            .as_i64()
            .unwrap()
    };
    let web = vm(
        "NAME = web\nCPU = 0.5\nMEMORY = 64\nVCPU = 2\nLABELS = \"prod,eu\"\n\
         GRAPHICS = [ TYPE = VNC, LISTEN = \"0.0.0.0\" ]\nCONTEXT = [ NETWORK = YES ]\n\
         SCHED_REQUIREMENTS = \"ID = 0\"\nDESCRIPTION = \"a <b> & 'c' ]]> d\"",
        false,
    );
    let upd = vm("NAME = upd\nCPU = 1\nMEMORY = 16\nLABELS = a", false);
    let own = vm("NAME = own\nCPU = 1\nMEMORY = 16", false);
    let perm = vm("NAME = perm\nCPU = 1\nMEMORY = 16", false);
    let held = vm("NAME = held\nCPU = 0.1\nMEMORY = 32\nLABELS = x", true);
    let locked = vm("NAME = locked\nCPU = 0.1\nMEMORY = 32", false);
    let user = l
        .call("one.user.allocate", vec![s("ann"), s("pw-ann"), s("")])
        .unwrap()
        .as_i64()
        .unwrap();

    tracing::info!("--- the same answer twice: the second from the bodies kept");
    let f = zone.servers[follower].client();
    for c in [&l, &f] {
        for m in METHODS {
            let first = zone.wait_for(DEADLINE, "the pool answers with 6 VMs", || {
                pool(c, m).filter(|p| p.matches("<VM>").count() == 6)
            });
            assert_eq!(pool(c, m).unwrap(), first);
        }
    }

    tracing::info!("--- change each VM in one way");
    let ok = |method: &str, params: Vec<Value>| {
        l.call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
    };
    ok("one.vm.rename", vec![int(web), s("web-renamed")]);
    ok(
        "one.vm.update",
        vec![int(upd), s("LABELS = \"dev\""), int(1)],
    );
    ok("one.vm.chown", vec![int(own), int(user), int(-1)]);
    let mut other_u = vec![int(perm)];
    other_u.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(int));
    ok("one.vm.chmod", other_u);
    ok("one.vm.action", vec![s("release"), int(held)]);
    ok("one.vm.lock", vec![int(locked), int(1), Value::Bool(false)]);
    let short = pool(&l, METHODS[0]).unwrap();
    for seen in [
        "<NAME>web-renamed</NAME>",
        "<LABELS>dev</LABELS>",
        "<UNAME>ann</UNAME>",
        "<LOCK><LOCKED>1</LOCKED></LOCK>",
    ] {
        assert!(short.contains(seen), "{seen} in {short}");
    }
    assert!(!short.contains("<STATE>2</STATE>"), "{short}");
    let full = pool(&l, METHODS[1]).unwrap();
    assert!(full.contains("<OTHER_U>1</OTHER_U>"), "{full}");

    tracing::info!("--- a restarted follower, which kept nothing, prints the leader's answer");
    zone.servers[follower].stop();
    zone.servers[follower].start();
    zone.servers[follower].wait_serving();
    zone.wait_caught_up();
    let f = zone.servers[follower].client();
    for m in METHODS {
        let want = pool(&l, m).unwrap();
        zone.wait_until(
            DEADLINE,
            &format!("{m} of the follower is the leader's"),
            || pool(&f, m).is_some_and(|p| p == want),
        );
    }
}

/// Issue 16: a pool call asked again with nothing it shows changed is answered with the answer
/// kept (`api::vm_pool_answers`); any change is in the next answer wherever a read shows it,
/// and one caller's answer is never another's.
#[test]
fn issue_16_a_pool_answer_is_sent_again_until_anything_it_shows_changes() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let l = zone.servers[leader].client();
    let f = zone.servers[follower].client();
    let vm = |name: &str| held_vm(&l, name, "1");
    let a = vm("a");
    l.call("one.user.allocate", vec![s("ann"), s("pw-ann"), s("")])
        .unwrap();
    const REUSED: &str = "oneha_vm_pool_answers_reused_total";

    tracing::info!("--- the same call twice: the second answer is the one kept");
    for (i, c) in [(leader, &l), (follower, &f)] {
        let server = &zone.servers[i];
        for m in METHODS {
            // The monitor's period may end between two calls: then the pair is asked again.
            zone.wait_until(DEADLINE, &format!("{m} on server {i} sent again"), || {
                let before = server.metric(REUSED);
                let first = pool(c, m);
                let second = pool(c, m);
                first.as_ref().is_some_and(|p| p.contains("<NAME>a</NAME>"))
                    && first == second
                    && server.metric(REUSED) > before
            });
        }
    }

    tracing::info!("--- a change is in the next answer wherever a read shows it");
    l.call("one.vm.rename", vec![int(a), s("b")]).unwrap();
    for m in METHODS {
        assert!(pool(&l, m).unwrap().contains("<NAME>b</NAME>"), "{m}");
    }
    zone.wait_until(DEADLINE, "the follower shows the new name", || {
        f.call_xml("one.vm.info", vec![int(a)])
            .is_ok_and(|x| x.contains("<NAME>b</NAME>"))
    });
    for m in METHODS {
        assert!(pool(&f, m).unwrap().contains("<NAME>b</NAME>"), "{m}");
    }
    let c = vm("c");
    let short = pool(&l, METHODS[0]).unwrap();
    assert!(short.contains(&format!("<ID>{c}</ID>")), "{short}");
    // Both are on hold (2); released, `c` is pending (1).
    assert!(!short.contains("<STATE>1</STATE>"), "{short}");
    l.call("one.vm.action", vec![s("release"), int(c)]).unwrap();
    let short = pool(&l, METHODS[0]).unwrap();
    assert!(short.contains("<STATE>1</STATE>"), "{short}");

    tracing::info!("--- another caller's answer is its own");
    let ann = zone.servers[leader].client_as("ann", "pw-ann");
    let theirs = pool(&ann, METHODS[0]).unwrap();
    assert!(!theirs.contains("<VM>"), "{theirs}");
}

/// Issue 16: an answer ended by writes to a few VMs is brought up to date by reading only those
/// VMs again (`api::vm_pool_answers`, `sqlstore::vm_touches`). Whatever changed (a VM renamed,
/// created, released, given away, deployed, gone from the filter) it is byte for byte what a
/// whole read prints, on the leader and on a follower.
#[test]
fn issue_16_a_pool_answer_brought_up_to_date_is_what_a_whole_read_prints() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let l = zone.servers[leader].client();
    let f = zone.servers[follower].client();
    let ok = |method: &str, params: Vec<Value>| -> Value {
        l.call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
    };
    let vm = |name: &str| held_vm(&l, name, "0.1");
    let ids: Vec<i64> = (0..6).map(|i| vm(&format!("vm-{i}"))).collect();
    let ann = ok("one.user.allocate", vec![s("ann"), s("pw-ann"), s("")])
        .as_i64()
        .unwrap();
    // Every VM but those done: the answer kept, then brought up to date.
    let live = |c: &Client, m: &str| c.call_xml(m, vec![int(-2), int(-1), int(-1), int(-1)]);
    // The same VMs as one page: a page is always read whole once anything changed.
    let whole = |c: &Client, m: &str| c.call_xml(m, vec![int(-2), int(0), int(-1000), int(-1)]);
    // The drivers and the monitor change VMs on their own once one is deployed: a kept answer
    // is compared with whole reads taken just before and just after it, when those agree.
    let check = |what: &str| {
        zone.wait_until(DEADLINE, &format!("the follower shows {what}"), || {
            whole(&f, METHODS[1]).ok() == whole(&l, METHODS[1]).ok()
        });
        for c in [&l, &f] {
            for m in METHODS {
                zone.wait_until(DEADLINE, &format!("{m} unchanged around a call"), || {
                    let before = whole(c, m).unwrap();
                    let now = live(c, m).unwrap();
                    let after = whole(c, m).unwrap();
                    if before != after {
                        return false;
                    }
                    assert_eq!(now, before, "{m} after {what}");
                    true
                });
            }
        }
    };
    const PATCHED: &str = "oneha_vm_pool_answers_patched_total";
    let patched_before = zone.servers[leader].metric(PATCHED);
    check("the first VMs");

    ok("one.vm.rename", vec![int(ids[1]), s("renamed")]);
    check("a VM renamed");
    assert!(live(&l, METHODS[0])
        .unwrap()
        .contains("<NAME>renamed</NAME>"));
    let new = vm("new");
    check("a VM created");
    assert!(live(&l, METHODS[0])
        .unwrap()
        .contains(&format!("<ID>{new}</ID>")));
    ok("one.vm.action", vec![s("release"), int(ids[3])]);
    check("a VM released");
    ok("one.vm.chown", vec![int(ids[4]), int(ann), int(-1)]);
    check("a VM given away");
    let host = ok(
        "one.host.allocate",
        vec![s("h0"), s("dummy"), s("dummy"), int(-1)],
    )
    .as_i64()
    .unwrap();
    ok(
        "one.vm.deploy",
        vec![int(ids[5]), int(host), Value::Bool(false), int(-1)],
    );
    check("a VM deployed");
    assert!(live(&l, METHODS[1])
        .unwrap()
        .contains("<HOSTNAME>h0</HOSTNAME>"));
    ok("one.vm.recover", vec![int(ids[2]), int(3)]);
    check("a VM deleted");
    let short = live(&l, METHODS[0]).unwrap();
    assert!(!short.contains("<NAME>vm-2</NAME>"), "{short}");
    assert_eq!(short.matches("<VM>").count(), 6, "{short}");
    assert!(
        zone.servers[leader].metric(PATCHED) > patched_before,
        "no answer was brought up to date on the leader"
    );
}
