//! Why a server could not start, or stopped serving: what [`crate::run()`] returns.

use std::path::PathBuf;

use crate::credentials::CredentialsError;
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or folder of the server could not be created, opened or changed.
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another oned runs on {} (lock {} is held)", var.display(), lock.display())]
    Locked { var: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{what}")]
    Database {
        what: &'static str,
        #[source]
        source: sqlstore::DbError,
    },
    #[error("{what}")]
    Sql {
        what: &'static str,
        #[source]
        source: sqlstore::SqlError,
    },
    /// The log, the state machine or Raft refused (`reason` is consensus's error, as text).
    #[error("{what}: {reason}")]
    Consensus { what: &'static str, reason: String },
    #[error("RAFT settings")]
    RaftSettings(#[source] Box<openraft::ConfigError>),
    #[error(
        "SERVER_ID = {server_id} is not in zone {zone_id}'s server pool: run `onezone server-add {zone_id} --name <name> --rpc <endpoint>` on the solo server first"
    )]
    NotInZone { server_id: i64, zone_id: i64 },
    /// This zone cannot take part in its federation as configured.
    #[error("{0}")]
    Federation(String),
    #[error("preparing password checks")]
    PasswordChecks(#[source] crate::auth::HashError),
    #[error("building the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A start-up step run on the blocking pool panicked or was cancelled.
    #[error("{what}")]
    Blocking {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

impl StartError {
    /// For consensus's errors, whatever their type: only their text is kept.
    pub fn consensus(what: &'static str, e: impl std::fmt::Display) -> StartError {
        StartError::Consensus {
            what,
            reason: e.to_string(),
        }
    }

    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StartError::Io { what, path, source }
    }
}
