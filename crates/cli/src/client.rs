//! A blocking XML-RPC client for OpenNebula's `/RPC2` API, plus the rules the
//! OpenNebula CLI uses to find the endpoint (`ONE_XMLRPC`) and the session
//! (`ONE_AUTH`, `~/.one/one_auth`).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use xmlrpc::one::OneError;
use xmlrpc::{MethodCall, Response, Value};

/// Endpoint used when neither `--endpoint` nor `ONE_XMLRPC` is set.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:2633/RPC2";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The endpoint could not be reached: connection refused, timeout, DNS, HTTP status...
    #[error("Could not connect to OpenNebula at {url}: {message}")]
    Transport {
        /// The endpoint called.
        url: String,
        /// What went wrong.
        message: String,
        /// The connection could not even be made, so the server never saw the call.
        not_sent: bool,
    },
    /// The endpoint answered something that is not an OpenNebula XML-RPC response.
    #[error("Invalid XML-RPC response from {url}: {message}")]
    Protocol {
        /// The endpoint called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an XML-RPC `<fault>` (bad method or parameters).
    #[error("[{method}] XML-RPC fault {code}: {message}")]
    Fault {
        /// The method called.
        method: String,
        /// Fault code, e.g. -501.
        code: i32,
        /// Fault string.
        message: String,
    },
    /// OpenNebula reported an error (`[false, message, code, ...]`).
    #[error("{0}")]
    One(OneError),
}

/// An XML-RPC client bound to one endpoint and one session string.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: String,
    session: String,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

impl Client {
    /// Creates a client; `session` is sent as parameter 0 of every call.
    pub fn new(
        endpoint: impl Into<String>,
        session: impl Into<String>,
        timeout: Duration,
    ) -> Client {
        Client {
            endpoint: endpoint.into(),
            session: session.into(),
            timeout,
            headers: Vec::new(),
        }
    }

    /// The same client, sending `name: value` with every call (e.g. OneHA's `X-OneHA-Read`).
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The same credentials against another endpoint, with another timeout.
    pub fn with_endpoint(&self, endpoint: impl Into<String>, timeout: Duration) -> Client {
        Client::new(endpoint, self.session.clone(), timeout)
    }

    /// Calls `method(session, params...)` and returns the value of a successful
    /// `[true, value, 0]` answer.
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(self.session.clone()));
        all.extend(params);
        let body = xmlrpc::write_call(&MethodCall {
            method: method.to_string(),
            params: all,
        });
        let raw = self.post(&body)?;
        match xmlrpc::parse_response(&raw) {
            Ok(Response::Fault { code, message }) => Err(CallError::Fault {
                method: method.to_string(),
                code,
                message,
            }),
            Ok(success) => xmlrpc::one::result(success).map_err(CallError::One),
            Err(e) => Err(CallError::Protocol {
                url: self.endpoint.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Calls a method whose success value is an XML document (info methods).
    pub fn call_xml(&self, method: &str, params: Vec<Value>) -> Result<String, CallError> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            other => Err(CallError::Protocol {
                url: self.endpoint.clone(),
                message: format!("{method} returned {other:?} instead of an XML string"),
            }),
        }
    }

    fn post(&self, body: &str) -> Result<Vec<u8>, CallError> {
        let transport = |message: String| CallError::Transport {
            url: self.endpoint.clone(),
            message,
            not_sent: false,
        };
        let agent = ureq::AgentBuilder::new().timeout(self.timeout).build();
        let mut request = agent.post(&self.endpoint).set("Content-Type", "text/xml");
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        let response = match request.send_string(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(transport(format!("HTTP {code} {}", r.status_text())))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(CallError::Transport {
                    url: self.endpoint.clone(),
                    message: describe_transport(&t),
                    not_sent: t.kind() == ureq::ErrorKind::ConnectionFailed,
                })
            }
        };
        let mut raw = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut raw)
            .map_err(|e| transport(e.to_string()))?;
        Ok(raw)
    }
}

/// The HTTP agent of every call the CLIs make.
pub fn agent(timeout: Duration) -> Result<ureq::Agent, String> {
    Ok(ureq::AgentBuilder::new().timeout(timeout).build())
}

/// A short, URL-free description of a ureq transport error (the URL is
/// added by [`CallError::Transport`]).
fn describe_transport(t: &ureq::Transport) -> String {
    let mut msg = t
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| t.kind().to_string());
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains(&msg) {
            msg = text;
        } else if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = s.source();
    }
    msg
}

/// The endpoint: `--endpoint`, else `$ONE_XMLRPC`, else [`DEFAULT_ENDPOINT`].
pub fn resolve_endpoint(flag: Option<String>) -> String {
    resolve_endpoint_from(flag, std::env::var("ONE_XMLRPC").ok())
}

/// [`resolve_endpoint`] with the environment passed in (empty values count as unset).
pub fn resolve_endpoint_from(flag: Option<String>, one_xmlrpc: Option<String>) -> String {
    flag.into_iter()
        .chain(one_xmlrpc)
        .find(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// The session string `user:password`: from `--user` and `--password` when both
/// are given (only one of them is an error), else the first line of the file
/// named by `$ONE_AUTH`, else of `$HOME/.one/one_auth`.
pub fn resolve_session(user: Option<String>, password: Option<String>) -> anyhow::Result<String> {
    resolve_session_from(
        user,
        password,
        std::env::var_os("ONE_AUTH").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`resolve_session`] with the environment passed in.
pub fn resolve_session_from(
    user: Option<String>,
    password: Option<String>,
    one_auth: Option<PathBuf>,
    home: Option<PathBuf>,
) -> anyhow::Result<String> {
    match (user, password) {
        (Some(u), Some(p)) => return Ok(format!("{u}:{p}")),
        (Some(_), None) => bail!("--user requires --password"),
        (None, Some(_)) => bail!("--password requires --user"),
        (None, None) => {}
    }
    let file = match (one_auth.filter(|p| !p.as_os_str().is_empty()), home) {
        (Some(f), _) => f,
        (None, Some(h)) => h.join(".one").join("one_auth"),
        (None, None) => bail!("No credentials: set ONE_AUTH or HOME, or use --user and --password"),
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("Cannot read authentication file {}", file.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        bail!("Authentication file {} is empty", file.display());
    }
    if !line.contains(':') {
        bail!(
            "Authentication file {} must contain user:password",
            file.display()
        );
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_precedence() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            resolve_endpoint_from(s("http://a/RPC2"), s("http://b/RPC2")),
            "http://a/RPC2"
        );
        assert_eq!(
            resolve_endpoint_from(None, s("http://b/RPC2")),
            "http://b/RPC2"
        );
        assert_eq!(resolve_endpoint_from(None, s("")), DEFAULT_ENDPOINT);
        assert_eq!(resolve_endpoint_from(None, None), DEFAULT_ENDPOINT);
    }

    #[test]
    fn session_sources() {
        let dir = std::env::temp_dir().join(format!("onecli-auth-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".one")).unwrap();
        let auth = dir.join("auth");
        std::fs::write(&auth, "oneadmin:secret\nignored\n").unwrap();
        std::fs::write(dir.join(".one/one_auth"), "home:pw\r\n").unwrap();
        let s = |v: &str| Some(v.to_string());

        assert_eq!(
            resolve_session_from(s("u"), s("p:x"), None, None).unwrap(),
            "u:p:x"
        );
        assert!(resolve_session_from(s("u"), None, Some(auth.clone()), None).is_err());
        assert_eq!(
            resolve_session_from(None, None, Some(auth.clone()), Some(dir.clone())).unwrap(),
            "oneadmin:secret"
        );
        assert_eq!(
            resolve_session_from(None, None, None, Some(dir.clone())).unwrap(),
            "home:pw"
        );

        let missing = dir.join("missing");
        let e = resolve_session_from(None, None, Some(missing), None).unwrap_err();
        assert!(format!("{e:#}").contains("missing"), "{e:#}");
        std::fs::write(&auth, "\n").unwrap();
        let e = resolve_session_from(None, None, Some(auth.clone()), None).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        std::fs::write(&auth, "nocolon\n").unwrap();
        let e = resolve_session_from(None, None, Some(auth.clone()), None).unwrap_err();
        assert!(e.to_string().contains("user:password"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
