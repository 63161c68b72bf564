//! TLS (rustls on ring) for the one listener and for the calls this server makes.
//!
//! With `TLS = [ CERT_FILE, KEY_FILE, CA_FILE ]` in `oned.conf`:
//! - the listener speaks HTTPS only, with this server's certificate;
//! - clients of `/RPC2` need no certificate; a client that presents one must present one signed
//!   by the zone's CA (else the handshake fails). The connection's [`ClientCert`] extension says
//!   whether it did, and `/raft/*` and `/oneha/sync/*` refuse calls without one (mutual TLS
//!   between servers, on top of the zone key's MAC);
//! - every call this server makes (Raft, forwarded writes) is HTTPS only, checks the other
//!   server's certificate against the CA and the endpoint's host name, and presents this
//!   server's certificate.
//!
//! The handshake itself runs in `oned::listener`, per connection and within the same limits as
//! plain HTTP (`TIMEOUT` bounds it).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// Set on every request of a TLS connection: whether the client presented a certificate that
/// the zone's CA signed (rustls has verified the chain during the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert {
    pub verified: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS/{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS/{key}: {path}: {message}")]
    Invalid {
        key: &'static str,
        path: String,
        message: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.display().to_string(),
        source,
    })
}

fn invalid(key: &'static str, path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        key,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The PEM certificates of a file (at least one).
pub fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(key, path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

fn load_key(c: &TlsConfig) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("KEY_FILE", &c.key_file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            "KEY_FILE",
            &c.key_file,
            format!("no usable private key: {e}"),
        )
    })
}

fn load_roots(c: &TlsConfig) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA_FILE", &c.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| invalid("CA_FILE", &c.ca_file, e))?;
    }
    Ok(Arc::new(roots))
}

/// The listener's configuration: this server's certificate; client certificates optional, but
/// checked against the CA when presented.
pub fn server_config(c: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = load_roots(c)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid("CA_FILE", &c.ca_file, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("CERT_FILE", &c.cert_file, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs("CERT_FILE", &c.cert_file)?, load_key(c)?)
        .map_err(|e| {
            invalid(
                "KEY_FILE",
                &c.key_file,
                format!("does not fit CERT_FILE: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration of every call this server makes: servers are checked against the CA, and
/// this server presents its own certificate. For reqwest's `use_preconfigured_tls`.
pub fn client_config(c: &TlsConfig) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(c)?;
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("CA_FILE", &c.ca_file, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs("CERT_FILE", &c.cert_file)?, load_key(c)?)
        .map_err(|e| {
            invalid(
                "KEY_FILE",
                &c.key_file,
                format!("does not fit CERT_FILE: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: dir.join("oned.crt"),
            key_file: dir.join("oned.key"),
            ca_file: dir.join("ca.crt"),
        }
    }

    #[test]
    fn unusable_files_name_their_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let c = conf(dir.path());
        let err = server_config(&c).unwrap_err().to_string();
        assert!(err.starts_with("TLS/CA_FILE: cannot read"), "{err}");
        std::fs::write(&c.ca_file, "not a certificate").unwrap();
        let err = server_config(&c).unwrap_err().to_string();
        assert!(err.starts_with("TLS/CA_FILE:"), "{err}");
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
