//! Hosts in network namespaces on one bridge, made and removed by the test itself: a switch
//! namespace holds the bridge, and each host namespace has an `eth0` plugged into it. Needs
//! root (CAP_NET_ADMIN) and iproute2.

use std::process::Command;

/// Runs `ip args...`; panics with its stderr if it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Hosts `prefix-<name>` with addresses `<subnet>.<n>/24`, on a bridge in `prefix-sw`.
pub struct Lan {
    switch: String,
    hosts: Vec<(String, String)>,
}

impl Lan {
    /// `hosts` are (name, last octet); `subnet` the first three octets, e.g. "10.77.0".
    pub fn new(prefix: &str, subnet: &str, hosts: &[(&str, u8)]) -> Lan {
        let switch = format!("{prefix}-sw");
        let mut lan = Lan {
            switch: switch.clone(),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (n, (name, octet)) in hosts.iter().enumerate() {
            let ns = format!("{prefix}-{name}");
            ip(&["netns", "add", &ns]);
            lan.hosts.push((name.to_string(), ns.clone()));
            let port = format!("p{n}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "address",
                "add",
                &format!("{subnet}.{octet}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        lan
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> String {
        self.hosts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| ns.clone())
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    fn port(&self, name: &str) -> String {
        let n = self
            .hosts
            .iter()
            .position(|(h, _)| h == name)
            .unwrap_or_else(|| panic!("no host {name}"));
        format!("p{n}")
    }

    /// Unplugs host `name` from the bridge: nothing reaches it or leaves it.
    pub fn unplug(&self, name: &str) {
        ip(&["-n", &self.switch, "link", "set", &self.port(name), "down"]);
    }

    /// Plugs host `name` back in.
    pub fn plug(&self, name: &str) {
        ip(&["-n", &self.switch, "link", "set", &self.port(name), "up"]);
    }

    /// Whether `addr` (no prefix length) is configured on `dev` of host `name`.
    pub fn has_address(&self, name: &str, dev: &str, addr: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns(name), "-o", "address", "show", "dev", dev])
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("inet {addr}/")))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}

/// Moves the calling thread (only it) into network namespace `ns`: its sockets, and the
/// processes it spawns, live there.
#[allow(unsafe_code)]
pub fn enter(ns: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open /var/run/netns/{ns}: {e}"));
    // SAFETY: setns(2) takes a valid open namespace file descriptor (held by `file` for the
    // duration of the call) and only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
}

/// Whether this process may create network namespaces.
pub fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && Command::new("ip").arg("-V").output().is_ok()
}
