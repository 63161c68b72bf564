//! Names of a server's files, relative to its `var/` directory (`$ONE_LOCATION/var` or
//! `/var/lib/one`) or, for the configuration, its `etc/`. `oned` creates them; `onedb` and
//! `onezone serversync` work on them while it is stopped.

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
/// Held (flock) while `oned` runs on the directory.
pub const LOCK: &str = "oned.lock";
/// `oned`'s log when `ONE_LOCATION` is set.
pub const ONED_LOG: &str = "oned.log";
/// The configuration file, under `etc/`.
pub const ONED_CONF: &str = "oned.conf";
