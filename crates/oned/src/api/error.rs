//! How a method fails, and the one place a failure becomes OpenNebula's answer
//! (`[false, "[method] message", code, -1]`) or an XML-RPC fault.

use sqlstore::TxnErrorKind;
use xmlrpc::{one, Fault};

use crate::auth::Session;

/// OpenNebula's error codes (`include/Request.h`).
pub mod code {
    pub const AUTHENTICATION: i32 = 0x100;
    pub const AUTHORIZATION: i32 = 0x200;
    pub const NO_EXISTS: i32 = 0x400;
    pub const ACTION: i32 = 0x800;
    pub const XML_RPC_API: i32 = 0x1000;
    pub const INTERNAL: i32 = 0x2000;
    pub const ALLOCATE: i32 = 0x4000;
    pub const REPLICATION: i32 = 0x10000;
}

/// Why a method did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// `[false, "[method] message", code, ...]`
    Api { code: i32, message: String },
    /// A protocol-level XML-RPC fault (bad parameters).
    Fault(Fault),
    /// A write reached a server that is not (or no longer) the leader: forward it.
    NotLeader,
    /// A federated record refused (`one.zone.fedreplicate`): OpenNebula's answer carries the
    /// index the sending zone must resume from as its fifth value (-1: none).
    Replication {
        code: i32,
        message: String,
        index: i64,
    },
}

impl From<Fault> for Failure {
    fn from(f: Fault) -> Failure {
        Failure::Fault(f)
    }
}

pub fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure::Api {
        code,
        message: message.into(),
    }
}

/// The answer for a failure of `method`. `NotLeader` never gets here: dispatch forwards it.
pub fn failure_body(method: &str, f: &Failure) -> String {
    match f {
        Failure::Api { code, message } => api_failure(method, *code, message),
        Failure::Fault(f) => xmlrpc::write_fault(f.code, &f.message),
        Failure::NotLeader => api_failure(
            method,
            code::INTERNAL,
            "Cannot process request, leadership changed",
        ),
        Failure::Replication {
            code,
            message,
            index,
        } => xmlrpc::write_response(&one::failure_at(
            &format!("[{method}] {message}"),
            *code,
            -1,
            *index,
        )),
    }
}

/// `[false, "[method] message", code, resp_id]`.
pub fn api_failure(method: &str, code: i32, message: &str) -> String {
    xmlrpc::write_response(&one::failure(
        &format!("[{method}] {message}"),
        code,
        resp_id(code, message),
    ))
}

/// The fourth value of a failure, `att.resp_id`: the id of the object a NO_EXISTS refusal did
/// not find (`Error getting <object> [<id>].`), else -1 as `RequestAttributes` starts it.
pub(super) fn resp_id(code: i32, message: &str) -> i32 {
    if code != code::NO_EXISTS {
        return -1;
    }
    message
        .strip_suffix("].")
        .and_then(|m| m.rsplit_once('['))
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or(-1)
}

/// A replicated transaction the SQL refused (a guard that matched no row, a name already
/// taken...): the same outcome on every server, which each method words its own way.
#[derive(Debug)]
pub struct Refused {
    pub kind: TxnErrorKind,
    /// Which statement of the transaction refused it.
    pub stmt: usize,
    pub message: String,
}

impl Refused {
    /// INTERNAL with the database's message: for refusals the method did not expect.
    pub fn internal(self) -> Failure {
        fail(code::INTERNAL, self.message)
    }

    /// `missing` when a guarded statement matched nothing, INTERNAL otherwise.
    pub fn missing(self, missing: Failure) -> Failure {
        match self.kind {
            TxnErrorKind::NotFound => missing,
            _ => self.internal(),
        }
    }
}

/// AUTHORIZATION: `User [uid] : Not authorized to perform <what>.`
pub fn not_authorized(s: &Session, what: &str) -> Failure {
    fail(
        code::AUTHORIZATION,
        format!("User [{}] : Not authorized to perform {what}.", s.uid),
    )
}

/// AUTHORIZATION in the request's own words: `User [uid] : <why>.`
pub fn unauthorized(s: &Session, why: &str) -> Failure {
    fail(code::AUTHORIZATION, format!("User [{}] : {why}.", s.uid))
}

/// One `AuthRequest`'s answer: granted when nothing refused it, else AUTHORIZATION with every
/// reason, joined as `AuthManager::authorize` joins them.
pub fn granted_unless(s: &Session, why: &[String]) -> Result<(), Failure> {
    if why.is_empty() {
        Ok(())
    } else {
        Err(unauthorized(s, &why.join("; ")))
    }
}

/// AUTHORIZATION for a non-admin on an admin-only action.
pub fn require_admin(s: &Session, what: &str) -> Result<(), Failure> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(not_authorized(s, &format!("ADMIN {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_objects_id_is_the_fourth_value() {
        assert_eq!(
            resp_id(code::NO_EXISTS, "Error getting virtual machine [42]."),
            42
        );
        assert_eq!(resp_id(code::NO_EXISTS, "Error getting user [-7]."), -7);
        assert_eq!(resp_id(code::NO_EXISTS, "Error getting group Pool."), -1);
        assert_eq!(
            resp_id(code::ACTION, "Error getting virtual machine [42]."),
            -1
        );
    }
}
