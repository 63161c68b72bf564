//! The web dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven through WebDriver against a real 3-server zone. Screenshots go to
//! `target/dashboard-screenshots/`.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use xmlrpc::Value;

use crate::zone::{free_port, one_error, Server, Zone, DEADLINE, POLL};

/// A VM goes from PENDING to RUNNING through the scheduler and the dummy drivers.
const VM_DEADLINE: Duration = Duration::from_secs(90);

const CHROMIUM: &str = "/usr/bin/chromium";

/// `chromedriver` on a free loopback port, stopped with the test.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "chromedriver is missing: the dashboard's browser tests need Debian's `chromium` \
                 and `chromium-driver` (apt-get install -y chromium chromium-driver; .ci/run installs them)"
            )
        });
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard's browser tests need Debian's `chromium` and \
         `chromium-driver` (apt-get install -y chromium chromium-driver; .ci/run installs them)"
    );
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let driver = Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    };
    let start = Instant::now();
    while ureq::get(&format!("http://127.0.0.1:{port}/status"))
        .call()
        .is_err()
    {
        assert!(start.elapsed() < DEADLINE, "chromedriver did not start");
        std::thread::sleep(POLL);
    }
    driver
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with headless Chromium")
}

async fn screenshot(c: &fantoccini::Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Polls `f` until it returns `Some`, or fails after `within` with `what` and the page's text.
async fn wait_page<T, F, Fut>(c: &fantoccini::Client, within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > within {
            screenshot(c, "failure").await;
            let body = match c.find(Locator::Css("body")).await {
                Ok(b) => b.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("timed out after {within:?} waiting until {what}; the page shows:\n{body}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn text_of(c: &fantoccini::Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn attr_of(c: &fantoccini::Client, css: &str, attr: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .ok()?
        .attr(attr)
        .await
        .ok()?
}

async fn fill(c: &fantoccini::Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Clicks `css` once the page lets it: the element may be hidden until a call completes, or
/// replaced by the next poll between finding and clicking it.
async fn click(c: &fantoccini::Client, css: &str) {
    wait_page(c, DEADLINE, &format!("{css} can be clicked"), || async {
        c.find(Locator::Css(css)).await.ok()?.click().await.ok()
    })
    .await
}

async fn login(c: &fantoccini::Client, user: &str, password: &str) {
    fill(c, "#login-user", user).await;
    fill(c, "#login-password", password).await;
    click(c, "#login-submit").await;
}

/// Waits until the page shows the logged-in view.
async fn logged_in(c: &fantoccini::Client) {
    wait_page(c, DEADLINE, "the page is logged in", || async {
        c.find(Locator::Css("#logout"))
            .await
            .ok()?
            .is_displayed()
            .await
            .ok()?
            .then_some(())
    })
    .await
}

async fn tab(c: &fantoccini::Client, view: &str) {
    click(c, &format!("#tabs button[data-view='{view}']")).await;
}

/// The page's notice once it says something containing `want`.
async fn notice(c: &fantoccini::Client, want: &str) -> String {
    wait_page(
        c,
        DEADLINE,
        &format!("the notice says {want:?}"),
        || async { text_of(c, "#notice").await.filter(|t| t.contains(want)) },
    )
    .await
}

/// The leader the page shows, once it shows one other than `not`.
async fn page_leader(c: &fantoccini::Client, within: Duration, not: Option<i64>) -> i64 {
    wait_page(c, within, "the page shows a leader", || async {
        let id: i64 = attr_of(c, "#leader-id", "data-leader")
            .await?
            .parse()
            .ok()?;
        (id >= 0 && Some(id) != not).then_some(id)
    })
    .await
}

/// Status and text of a `fetch` the page itself makes (same origin, with its cookie).
async fn page_fetch(c: &fantoccini::Client, script: &str) -> (i64, String) {
    let done = c
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 {script}.then(async r => done([r.status, await r.text()]))
                   .catch(e => done([-1, String(e)]));"
            ),
            vec![],
        )
        .await
        .unwrap();
    (
        done[0].as_i64().unwrap(),
        done[1].as_str().unwrap().to_string(),
    )
}

/// The id of VM `name` once the page shows it in `state`.
async fn vm_in_state(c: &fantoccini::Client, name: &str, state: &str) -> String {
    wait_page(c, VM_DEADLINE, &format!("VM {name} is {state}"), || async {
        for row in c.find_all(Locator::Css("#vms-table tbody tr")).await.ok()? {
            let cells = row.find_all(Locator::Css("td")).await.ok()?;
            let (Some(n), Some(s)) = (cells.get(1), cells.get(3)) else {
                continue;
            };
            if n.text().await.ok()? == name && s.text().await.ok()? == state {
                return row.attr("data-id").await.ok()?;
            }
        }
        None
    })
    .await
}

fn dashboard_url(s: &Server) -> String {
    format!("http://127.0.0.1:{}/dashboard/", s.port)
}

#[test]
fn dashboard_logs_in_runs_a_vm_refuses_a_non_admin_and_follows_a_failover() {
    let driver = chromedriver();
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let admin = zone.servers[leader].client();
    let host = admin
        .call(
            "one.host.allocate",
            vec![
                Value::String("dash-host".into()),
                Value::String("dummy".into()),
                Value::String("dummy".into()),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    zone.wait_until(DEADLINE, "the host is monitored", || {
        admin
            .call("one.host.info", vec![Value::Int(host as i32)])
            .ok()
            .and_then(|v| v.as_str().map(|s| s.contains("<STATE>2</STATE>")))
            .unwrap_or(false)
    });
    let password = zone.servers[follower].password();
    let leader_id = zone.servers[leader].id;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        eprintln!("--- open the dashboard on follower {follower}");
        c.goto(&dashboard_url(&zone.servers[follower])).await.unwrap();
        wait_page(&c, DEADLINE, "the login form", || async {
            c.find(Locator::Css("#login-user")).await.ok()?.is_displayed().await.ok()?.then_some(())
        })
        .await;

        eprintln!("--- a wrong password is refused");
        login(&c, "oneadmin", "not-the-password").await;
        let refused = wait_page(&c, DEADLINE, "the login is refused", || async {
            text_of(&c, "#login-error").await.filter(|t| !t.is_empty())
        })
        .await;
        assert!(refused.contains("wrong user name or password"), "{refused}");
        screenshot(&c, "01-login-refused").await;

        eprintln!("--- log in: three servers, one leader");
        login(&c, "oneadmin", &password).await;
        logged_in(&c).await;
        let shown = page_leader(&c, DEADLINE, None).await;
        assert_eq!(shown, leader_id);
        wait_page(&c, DEADLINE, "three servers, one of them leading", || async {
            let rows = c.find_all(Locator::Css("#servers tbody tr")).await.ok()?;
            let leaders = c.find_all(Locator::Css("#servers tbody tr.leader")).await.ok()?;
            (rows.len() == 3 && leaders.len() == 1).then_some(())
        })
        .await;
        let served = attr_of(&c, "#server", "data-server").await.unwrap();
        assert_eq!(served, zone.servers[follower].id.to_string());
        screenshot(&c, "02-zone").await;

        eprintln!("--- a POST without the CSRF token is refused");
        let (status, body) = page_fetch(
            &c,
            "fetch('/dashboard/api/rpc', {method: 'POST', headers: {'content-type': 'text/xml'}, \
             body: '<?xml version=\"1.0\"?><methodCall><methodName>one.user.allocate</methodName><params>\
             <param><value><string></string></value></param><param><value><string>csrf-victim</string></value></param>\
             <param><value><string>pw</string></value></param><param><value><string></string></value></param>\
             </params></methodCall>'})",
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("CSRF"), "{body}");

        eprintln!("--- user-controlled text shows as text, never as markup");
        let marked = "<img src=x id=xss onerror=window.__xss=1>";
        let tpl = admin
            .call(
                "one.template.allocate",
                vec![Value::String(format!(
                    "NAME = \"dash-tpl\"\nDESCRIPTION = \"{marked}\"\nCPU = 0.1\nMEMORY = 64"
                ))],
            )
            .unwrap()
            .as_i64()
            .unwrap();
        tab(&c, "templates").await;
        click(&c, &format!("#templates-table tbody tr[data-id='{tpl}'] td.c1")).await;
        wait_page(&c, DEADLINE, "the template's XML as text", || async {
            text_of(&c, "#detail-xml").await.filter(|t| t.contains(marked))
        })
        .await;
        let name = text_of(&c, &format!("#templates-table tbody tr[data-id='{tpl}'] td.c1")).await;
        assert_eq!(name.as_deref(), Some("dash-tpl"));
        assert!(c.find(Locator::Css("#xss")).await.is_err(), "the text became markup");
        let clean = c.execute("return window.__xss === undefined", vec![]).await.unwrap();
        assert_eq!(clean, serde_json::Value::Bool(true));

        eprintln!("--- the hosts with their use");
        tab(&c, "hosts").await;
        wait_page(&c, DEADLINE, "the host is listed as MONITORED", || async {
            text_of(&c, "#hosts-table tbody").await.filter(|t| t.contains("dash-host") && t.contains("MONITORED"))
        })
        .await;
        screenshot(&c, "02b-hosts").await;

        eprintln!("--- create a VM on the page (a write on a follower) and watch it reach RUNNING");
        tab(&c, "vms").await;
        fill(&c, "#vm-template", "NAME = dash-vm\nCPU = 0.1\nMEMORY = 64").await;
        click(&c, "#vm-create").await;
        notice(&c, "create VM: done").await;
        let vm = vm_in_state(&c, "dash-vm", "RUNNING").await;
        screenshot(&c, "03-vm-running").await;

        eprintln!("--- the detail view shows the VM's XML as the API returns it");
        click(&c, &format!("#vms-table tbody tr[data-id='{vm}'] td.c1")).await;
        let shown = wait_page(&c, DEADLINE, "the VM's XML", || async {
            text_of(&c, "#detail-xml").await.filter(|t| t.starts_with("<VM>"))
        })
        .await;
        assert!(shown.contains("<NAME>dash-vm</NAME>"), "{shown}");

        eprintln!("--- filter and sort the VM table");
        fill(&c, "#vms-filter", "no-such-vm").await;
        wait_page(&c, DEADLINE, "the filter hides the VM", || async {
            let rows = c.find_all(Locator::Css("#vms-table tbody tr")).await.ok()?;
            rows.is_empty().then_some(())
        })
        .await;
        fill(&c, "#vms-filter", "dash").await;
        vm_in_state(&c, "dash-vm", "RUNNING").await;
        click(&c, "#vms-table th.sortable").await;
        wait_page(&c, DEADLINE, "the ID column sorted descending", || async {
            text_of(&c, "#vms-table th.sortable").await.filter(|t| t.contains('▼'))
        })
        .await;

        eprintln!("--- poweroff, resume and terminate the VM from the page");
        click(&c, &format!("#vms-table button.poweroff[data-id='{vm}']")).await;
        vm_in_state(&c, "dash-vm", "POWEROFF").await;
        click(&c, &format!("#vms-table button.resume[data-id='{vm}']")).await;
        vm_in_state(&c, "dash-vm", "RUNNING").await;
        click(&c, &format!("#vms-table button.terminate[data-id='{vm}']")).await;
        wait_page(&c, VM_DEADLINE, "the terminated VM leaves the table", || async {
            let rows = c.find_all(Locator::Css("#vms-table tbody tr")).await.ok()?;
            rows.is_empty().then_some(())
        })
        .await;

        eprintln!("--- instantiate the template on the page");
        fill(&c, "#vms-filter", "").await;
        fill(&c, "#vm-instantiate-template", &tpl.to_string()).await;
        fill(&c, "#vm-instantiate-name", "dash-inst").await;
        click(&c, "#vm-instantiate").await;
        notice(&c, &format!("instantiate template {tpl}: done")).await;
        vm_in_state(&c, "dash-inst", "RUNNING").await;

        eprintln!("--- create a user on the page");
        tab(&c, "users").await;
        fill(&c, "#user-create-name", "dana").await;
        fill(&c, "#user-create-password", "dana-pw").await;
        click(&c, "#user-create").await;
        notice(&c, "create user dana: done").await;

        eprintln!("--- as the non-admin dana, server-del is refused as /RPC2 refuses it");
        click(&c, "#logout").await;
        wait_page(&c, DEADLINE, "the login form again", || async {
            c.find(Locator::Css("#login-user")).await.ok()?.is_displayed().await.ok()?.then_some(())
        })
        .await;
        login(&c, "dana", "dana-pw").await;
        logged_in(&c).await;
        tab(&c, "zone").await;
        page_leader(&c, DEADLINE, None).await;
        let victim = zone.servers[follower].id;
        click(&c, &format!("#servers button.del[data-id='{victim}']")).await;
        let said = notice(&c, "refused").await;
        let rpc2 = zone.servers[follower]
            .client_as("dana", "dana-pw")
            .call("one.zone.delserver", vec![Value::Int(0), Value::Int(victim as i32)]);
        let (_, message) = one_error(rpc2);
        assert!(said.contains(&message), "page: {said}\n/RPC2: {message}");
        screenshot(&c, "04-non-admin-refused").await;

        eprintln!("--- kill the leader: the page shows the new one");
        zone.servers[leader].kill();
        let new_leader = page_leader(&c, DEADLINE, Some(leader_id)).await;
        assert_ne!(new_leader, leader_id);
        wait_page(&c, DEADLINE, "the old leader shows as down", || async {
            let state = text_of(&c, &format!("#servers tbody tr[data-id='{leader_id}'] td.state")).await?;
            state.starts_with("down").then_some(())
        })
        .await;
        let elected = format!("server {new_leader} elected leader");
        wait_page(&c, DEADLINE, "the timeline shows the election", || async {
            text_of(&c, "#timeline")
                .await
                .filter(|t| t.contains(&elected))
        })
        .await;
        screenshot(&c, "05-failover").await;
        c.close().await.unwrap();
    });
}

/// A stand-in for the floating IP: a loopback port whose new connections go to the server
/// `target` names, as the leader hook moves the real address to the new leader.
struct Floating {
    port: u16,
    target: Arc<AtomicU16>,
}

fn floating(to: u16) -> Floating {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = Arc::new(AtomicU16::new(to));
    let aim = target.clone();
    // The accept loop ends with the test process.
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", aim.load(Ordering::SeqCst))) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                });
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            pipe(client, server);
            pipe(s2, c2);
        }
    });
    Floating { port, target }
}

#[test]
fn dashboard_through_the_floating_ip_reconnects_to_the_new_leader() {
    let driver = chromedriver();
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let vip = floating(zone.servers[leader].port);
    let password = zone.servers[leader].password();
    let old_id = zone.servers[leader].id;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        eprintln!("--- open the dashboard through the floating IP (on leader {leader})");
        c.goto(&format!("http://127.0.0.1:{}/dashboard/", vip.port))
            .await
            .unwrap();
        wait_page(&c, DEADLINE, "the login form", || async {
            c.find(Locator::Css("#login-user"))
                .await
                .ok()?
                .is_displayed()
                .await
                .ok()?
                .then_some(())
        })
        .await;
        login(&c, "oneadmin", &password).await;
        assert_eq!(page_leader(&c, DEADLINE, None).await, old_id);
        let served = attr_of(&c, "#server", "data-server").await.unwrap();
        assert_eq!(served, old_id.to_string());

        eprintln!("--- kill the leader; the floating IP moves to the new one");
        zone.servers[leader].kill();
        let next = zone.leader();
        vip.target.store(zone.servers[next].port, Ordering::SeqCst);
        let new_id = zone.servers[next].id;
        let said = wait_page(&c, DEADLINE, "the page says it reconnected", || async {
            text_of(&c, "#conn")
                .await
                .filter(|t| t.starts_with("reconnected"))
        })
        .await;
        assert_eq!(said, format!("reconnected to server {new_id}"));
        assert_eq!(page_leader(&c, DEADLINE, Some(old_id)).await, new_id);
        screenshot(&c, "06-reconnected-through-floating-ip").await;
        c.close().await.unwrap();
    });
}

/// The status, `Set-Cookie` and body of an answer, whatever its status.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, String) {
    let r = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    let cookie = r.header("set-cookie").map(str::to_string);
    (r.status(), cookie, r.into_string().unwrap_or_default())
}

/// What a client without a browser sees: the cookie's flags, and the refusals.
#[test]
fn dashboard_cookie_is_httponly_strict_and_writes_need_the_csrf_token() {
    let zone = Zone::solo();
    let s = &zone.servers[0];
    let base = format!("http://127.0.0.1:{}/dashboard", s.port);
    let login = |password: &str, csrf: &str| {
        answer(
            ureq::post(&format!("{base}/api/login"))
                .set("x-oneha-csrf", csrf)
                .set("content-type", "application/json")
                .send_string(&json!({ "user": "oneadmin", "password": password }).to_string()),
        )
    };
    let (status, _, body) = login("wrong", "login");
    assert_eq!(status, 401, "a wrong password: {body}");
    let (status, _, body) = login(&s.password(), "");
    assert_eq!(status, 403, "a login without the CSRF header: {body}");
    let (status, cookie, body) = login(&s.password(), "login");
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!body.contains(&s.password()), "{body}");
    let session = cookie.split(';').next().unwrap().to_string();
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    let csrf = me["csrf"].as_str().unwrap().to_string();
    let call = "<?xml version=\"1.0\"?><methodCall><methodName>one.user.allocate</methodName><params>\
                <param><value><string></string></value></param><param><value><string>eve</string></value></param>\
                <param><value><string>pw</string></value></param><param><value><string></string></value></param>\
                </params></methodCall>";
    let post = |csrf: &str| {
        answer(
            ureq::post(&format!("{base}/api/rpc"))
                .set("cookie", &session)
                .set("x-oneha-csrf", csrf)
                .send_string(call),
        )
    };
    for wrong in ["", "00ff"] {
        let (status, _, body) = post(wrong);
        assert_eq!(status, 403, "a write with CSRF token {wrong:?}: {body}");
    }
    assert!(
        crate::zone::user_pool(&s.client())
            .unwrap()
            .iter()
            .all(|u| u != "eve"),
        "a refused write changed nothing"
    );
    let (status, _, body) = post(&csrf);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<boolean>1</boolean>"), "{body}");
    // Bodies past their caps (4 KiB to log in, 64 KiB for a call) are refused unread.
    let (status, _, _) = answer(
        ureq::post(&format!("{base}/api/login"))
            .set("x-oneha-csrf", "login")
            .set("content-type", "application/json")
            .send_string(&"x".repeat(5 << 10)),
    );
    assert_eq!(status, 413, "a 5 KiB login");
    let (status, _, _) = answer(
        ureq::post(&format!("{base}/api/rpc"))
            .set("cookie", &session)
            .set("x-oneha-csrf", &csrf)
            .send_string(&"x".repeat(65 << 10)),
    );
    assert_eq!(status, 413, "a 65 KiB call");
    let (status, _, _) = answer(ureq::get(&format!("{base}/api/zone")).call());
    assert_eq!(status, 401, "the zone without a session");
    // The server's own status counts the write it answered, for the latency chart.
    let (status, _, body) = answer(
        ureq::get(&format!("{base}/api/status"))
            .set("cookie", &session)
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    let told: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(told["writes"]["count"].as_u64().unwrap() >= 1, "{body}");
    assert!(told["writes"]["seconds"].as_f64().unwrap() > 0.0, "{body}");

    eprintln!("--- a session opened with a login token ends when the token is deleted");
    let admin = s.client();
    let token = admin
        .call(
            "one.user.login",
            vec![
                Value::String("oneadmin".into()),
                Value::String(String::new()),
                Value::Int(3600),
                Value::Int(-1),
            ],
        )
        .unwrap();
    let token = token.as_str().unwrap().to_string();
    let (status, cookie, body) = login(&token, "login");
    assert_eq!(status, 200, "{body}");
    let by_token = cookie.unwrap().split(';').next().unwrap().to_string();
    let me_with = |cookie: &str| {
        answer(
            ureq::get(&format!("{base}/api/me"))
                .set("cookie", cookie)
                .call(),
        )
        .0
    };
    assert_eq!(me_with(&by_token), 200);
    admin
        .call(
            "one.user.login",
            vec![
                Value::String("oneadmin".into()),
                Value::String(token.clone()),
                Value::Int(0),
                Value::Int(-1),
            ],
        )
        .unwrap();
    zone.wait_until(DEADLINE, "the token's cookie is refused", || {
        me_with(&by_token) == 401
    });
    assert_eq!(me_with(&session), 200, "the password's session goes on");

    eprintln!("--- a password change ends the session");
    s.client()
        .call(
            "one.user.passwd",
            vec![Value::Int(0), Value::String("a-new-password".into())],
        )
        .unwrap();
    zone.wait_until(DEADLINE, "the old cookie is refused", || {
        answer(
            ureq::get(&format!("{base}/api/me"))
                .set("cookie", &session)
                .call(),
        )
        .0 == 401
    });
    let page = ureq::get(&format!("{base}/")).call().unwrap();
    let csp = page
        .header("content-security-policy")
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

/// A page that writes through a follower's dashboard reads its write there at once: the leader's
/// answer names the index it had applied, and the follower applies as much before passing it on
/// (as `/RPC2` does, `forwarded_writes::a_client_reads_its_own_forwarded_writes_on_the_same_follower`).
#[test]
fn a_page_reads_its_own_writes_through_a_followers_dashboard() {
    let zone = Zone::bootstrap(3);
    let follower = (zone.leader() + 1) % 3;
    let s = &zone.servers[follower];
    let base = format!("http://127.0.0.1:{}/dashboard", s.port);
    let (status, cookie, body) = answer(
        ureq::post(&format!("{base}/api/login"))
            .set("x-oneha-csrf", "login")
            .set("content-type", "application/json")
            .send_string(&json!({ "user": "oneadmin", "password": s.password() }).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let session = cookie.unwrap().split(';').next().unwrap().to_string();
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    let csrf = me["csrf"].as_str().unwrap().to_string();
    let rpc = |method: &str, param: &str| {
        let call = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>\
             <param><value><string></string></value></param>\
             <param><value>{param}</value></param></params></methodCall>"
        );
        let (status, _, body) = answer(
            ureq::post(&format!("{base}/api/rpc"))
                .set("cookie", &session)
                .set("x-oneha-csrf", &csrf)
                .send_string(&call),
        );
        assert_eq!(status, 200, "{method}: {body}");
        body
    };
    for n in 0..50 {
        let made = rpc(
            "one.vm.allocate",
            &format!("<string>NAME = page-{n}\nCPU = 1\nMEMORY = 64</string>"),
        );
        let id = made
            .split("<i4>")
            .nth(1)
            .or_else(|| made.split("<int>").nth(1))
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("no id in {made}"))
            .to_string();
        let read = rpc("one.vm.info", &format!("<i4>{id}</i4>"));
        assert!(
            read.contains(&format!("&lt;NAME&gt;page-{n}&lt;/NAME&gt;")),
            "VM {id}, just made through this follower's dashboard: {read}"
        );
    }
    assert_eq!(
        s.metric("oneha_forwarded_writes_answered_unapplied_total"),
        0.0
    );
}
