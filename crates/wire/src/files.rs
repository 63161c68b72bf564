//! Names of a server's files, relative to its `var/` directory (`$ONE_LOCATION/var` or
//! `/var/lib/one`) or, for the configuration, its `etc/`. `oned` creates them; `onedb` and
//! `onezone serversync` work on them while it is stopped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The state database (OpenNebula's object tables).
pub const ONE_DB: &str = "one.db";
/// The Raft log and vote.
pub const RAFT_DB: &str = "raft.db";
/// Directory of the local snapshots (consistent copies of [`ONE_DB`]).
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// oneadmin's credentials, `name:password`; also the CLIs' `~/.one/one_auth`.
pub const ONE_AUTH: &str = ".one/one_auth";
/// The zone key that signs server-to-server calls.
pub const ONE_KEY: &str = ".one/one_key";
/// serveradmin's credentials, `serveradmin:password`, one file per service that proxies user
/// calls with OpenNebula's `server_cipher` driver (FireEdge/Sunstone, OneGate, OneFlow).
pub const SERVER_AUTH: [&str; 3] = [
    ".one/sunstone_auth",
    ".one/onegate_auth",
    ".one/oneflow_auth",
];
/// Held (flock) while `oned` runs on the directory.
pub const LOCK: &str = "oned.lock";
/// `oned`'s log when `ONE_LOCATION` is set.
pub const ONED_LOG: &str = "oned.log";
/// The configuration file, under `etc/`.
pub const ONED_CONF: &str = "oned.conf";

/// The environment variable of a self-contained installation's root.
pub const ONE_LOCATION: &str = "ONE_LOCATION";

/// Where a server's files are: under `$ONE_LOCATION` when set (and not empty), else
/// OpenNebula's system-wide layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `etc/`, or `/etc/one`: [`ONED_CONF`] and the files serversync copies.
    pub etc: PathBuf,
    /// `var/`, or `/var/lib/one`: the databases, snapshots, credentials, lock.
    pub var: PathBuf,
    /// `var/oned.log`, or `/var/log/one/oned.log`.
    pub log: PathBuf,
    /// `var/remotes`, or `/var/lib/one/remotes`: the drivers and hooks.
    pub remotes: PathBuf,
}

impl Layout {
    /// The layout for a value of [`ONE_LOCATION`].
    pub fn new(one_location: Option<&OsStr>) -> Layout {
        match one_location {
            Some(loc) if !loc.is_empty() => {
                let loc = Path::new(loc);
                Layout {
                    etc: loc.join("etc"),
                    var: loc.join("var"),
                    log: loc.join("var").join(ONED_LOG),
                    remotes: loc.join("var/remotes"),
                }
            }
            _ => Layout {
                etc: PathBuf::from("/etc/one"),
                var: PathBuf::from("/var/lib/one"),
                log: Path::new("/var/log/one").join(ONED_LOG),
                remotes: PathBuf::from("/var/lib/one/remotes"),
            },
        }
    }

    /// The layout for this process's [`ONE_LOCATION`].
    pub fn from_env() -> Layout {
        Layout::new(std::env::var_os(ONE_LOCATION).as_deref())
    }

    /// `etc/oned.conf`.
    pub fn oned_conf(&self) -> PathBuf {
        self.etc.join(ONED_CONF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_under_one_location_or_system_wide() {
        let local = Layout::new(Some(OsStr::new("/opt/one")));
        assert_eq!(local.oned_conf(), Path::new("/opt/one/etc/oned.conf"));
        assert_eq!(
            local.var.join(ONE_AUTH),
            Path::new("/opt/one/var/.one/one_auth")
        );
        assert_eq!(local.log, Path::new("/opt/one/var/oned.log"));
        assert_eq!(local.remotes, Path::new("/opt/one/var/remotes"));
        for system in [Layout::new(None), Layout::new(Some(OsStr::new("")))] {
            assert_eq!(system.oned_conf(), Path::new("/etc/one/oned.conf"));
            assert_eq!(system.var.join(ONE_DB), Path::new("/var/lib/one/one.db"));
            assert_eq!(system.log, Path::new("/var/log/one/oned.log"));
            assert_eq!(system.remotes, Path::new("/var/lib/one/remotes"));
        }
    }
}
