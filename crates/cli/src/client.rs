//! A blocking XML-RPC client for OpenNebula's `/RPC2` API, plus the rules the
//! OpenNebula CLI uses to find the endpoint (`ONE_XMLRPC`), the session
//! (`ONE_AUTH`, `~/.one/one_auth`) and, for `https://` endpoints, the CAs to trust
//! (the system's, or `SSL_CERT_FILE` / `SSL_CERT_DIR`; plus `ONE_CERT_DIR` and `--ca-file`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// A CA certificate file (PEM) trusted for `https://`, besides the system's.
    ca_file: Option<PathBuf>,
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
            ca_file: None,
        }
    }

    /// The same client, also trusting the CA certificates in `ca_file` (PEM) for `https://`.
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Client {
        self.ca_file = ca_file;
        self
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
        Client::new(endpoint, self.session.clone(), timeout).with_ca_file(self.ca_file.clone())
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
        let agent = agent(self.timeout, &self.endpoint, self.ca_file.as_deref()).map_err(|e| {
            CallError::Transport {
                url: self.endpoint.clone(),
                message: e,
                not_sent: true,
            }
        })?;
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

/// The HTTP agent of every call the CLIs make to `url`; for `https://`, with [`tls_config`].
pub fn agent(timeout: Duration, url: &str, ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let mut builder = ureq::AgentBuilder::new().timeout(timeout);
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        builder = builder.tls_config(Arc::new(tls_config(ca_file)?));
    }
    Ok(builder.build())
}

/// `--ca-file`, else `ONE_CA_FILE`: a PEM file of CA certificates to trust (OneHA's).
pub fn resolve_ca_file(flag: Option<String>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var("ONE_CA_FILE").ok())
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Adds every certificate of a PEM file to `roots`; how many.
fn add_pem_file(roots: &mut rustls::RootCertStore, path: &Path) -> Result<usize, String> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        added += 1;
    }
    Ok(added)
}

/// The CAs an `https://` endpoint is checked against, as OpenNebula's Ruby client finds them:
/// - the system's (OpenSSL's default paths, or `SSL_CERT_FILE` / `SSL_CERT_DIR` instead when set);
/// - every file in `ONE_CERT_DIR`;
/// - `ca_file` (`--ca-file` / `ONE_CA_FILE`, a OneHA addition).
///
/// No client certificate is sent: `/RPC2` needs none.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(trusted_roots(ca_file)?)
        .with_no_client_auth())
}

/// The CAs of [`tls_config`].
fn trusted_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system files are skipped, as OpenSSL does.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(dir) = std::env::var_os("ONE_CERT_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("ONE_CERT_DIR: cannot read {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                // Not every file of a certificate directory is a certificate (OpenSSL's CRLs).
                let _ = add_pem_file(&mut roots, &entry.path());
            }
        }
    }
    if let Some(f) = ca_file {
        if add_pem_file(&mut roots, f)? == 0 {
            return Err(format!("{}: no CERTIFICATE in the file", f.display()));
        }
    }
    Ok(roots)
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

/// The endpoint: `--endpoint`, else `$ONE_XMLRPC`, else the first line of
/// `$HOME/.one/one_endpoint` (which `onezone set` writes), else [`DEFAULT_ENDPOINT`], in the
/// order of OpenNebula's Ruby client.
pub fn resolve_endpoint(flag: Option<String>) -> String {
    let from_file = || {
        let text = std::fs::read_to_string(endpoint_file()?).ok()?;
        text.lines().next().map(str::to_string)
    };
    resolve_endpoint_from(
        flag,
        std::env::var("ONE_XMLRPC")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(from_file),
    )
}

/// `$HOME/.one/one_endpoint`: the endpoint `onezone set` chose for this user's shell sessions.
pub fn endpoint_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".one").join("one_endpoint"))
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
        (None, Some(h)) => h.join(wire::files::ONE_AUTH),
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

    fn ca_pem(name: &str) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    /// One test for every variable, since they are process-wide.
    #[test]
    fn https_trusts_ssl_cert_file_one_cert_dir_and_the_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let system = file("system.pem", &ca_pem("system"));
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::write(certs.join("extra.0"), ca_pem("extra")).unwrap();
        std::fs::write(certs.join("README"), "not a certificate").unwrap();
        let zone = file("zone-ca.crt", &ca_pem("zone"));

        // SSL_CERT_FILE replaces the system's CAs, as with OpenSSL.
        std::env::set_var("SSL_CERT_FILE", &system);
        std::env::remove_var("SSL_CERT_DIR");
        std::env::remove_var("ONE_CERT_DIR");
        assert_eq!(trusted_roots(None).unwrap().len(), 1);
        // ONE_CERT_DIR adds every certificate file in it, as OpenNebula's Ruby client.
        std::env::set_var("ONE_CERT_DIR", &certs);
        assert_eq!(trusted_roots(None).unwrap().len(), 2);
        // --ca-file / ONE_CA_FILE add theirs.
        assert_eq!(trusted_roots(Some(&zone)).unwrap().len(), 3);
        assert!(tls_config(Some(&zone)).is_ok());
        std::env::set_var("ONE_CA_FILE", &zone);
        assert_eq!(resolve_ca_file(None), Some(zone.clone()));
        assert_eq!(
            resolve_ca_file(Some("/flag.crt".into())),
            Some(PathBuf::from("/flag.crt"))
        );
        std::env::remove_var("ONE_CA_FILE");
        std::env::remove_var("ONE_CERT_DIR");
        std::env::remove_var("SSL_CERT_FILE");

        let err = trusted_roots(Some(Path::new("/nonexistent/ca.crt"))).unwrap_err();
        assert!(err.contains("/nonexistent/ca.crt"), "{err}");
        let bad = file("bad.crt", "not a certificate");
        let err = trusted_roots(Some(&bad)).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
        // A plain-HTTP endpoint needs no CA at all.
        assert!(agent(Duration::from_secs(1), "http://h/RPC2", Some(&bad)).is_ok());
        assert!(agent(Duration::from_secs(1), "https://h/RPC2", Some(&bad)).is_err());
    }

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
