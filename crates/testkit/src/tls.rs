//! Certificates for zones with TLS on: a test CA ([`TestCa`], rcgen) that issues each server a
//! certificate for 127.0.0.1 and localhost, usable both as a server and as a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::zone::{temp_dir, Setup};

/// The files of `oned.conf`'s `TLS` section for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl TlsFiles {
    /// The `TLS = [ ... ]` section.
    pub fn conf(&self) -> String {
        format!(
            "TLS = [ CERT_FILE = \"{}\", KEY_FILE = \"{}\", CA_FILE = \"{}\" ]\n",
            self.cert_file.display(),
            self.key_file.display(),
            self.ca_file.display()
        )
    }
}

/// A certificate authority made for one test, in its own directory.
pub struct TestCa {
    dir: PathBuf,
    _tmp: Option<TempDir>,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let (dir, tmp) = temp_dir("oneha-ca-");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.crt"), cert.pem()).unwrap();
        TestCa {
            dir,
            _tmp: tmp,
            cert,
            key,
        }
    }

    /// The CA certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate and key for `name`, valid for 127.0.0.1 and localhost, signed by this CA.
    pub fn issue(&self, name: &str) -> TlsFiles {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let files = TlsFiles {
            cert_file: self.dir.join(format!("{name}.crt")),
            key_file: self.dir.join(format!("{name}.key")),
            ca_file: self.ca_file(),
        };
        std::fs::write(&files.cert_file, cert.pem()).unwrap();
        std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
        files
    }

    /// A zone set-up giving server `i` a certificate `server-i` of this CA.
    pub fn setup(self: &Arc<Self>) -> Setup {
        let ca = self.clone();
        Box::new(move |i, server| server.tls = Some(ca.issue(&format!("server-{i}"))))
    }
}

/// POSTs `body` to `url` over HTTPS, trusting `ca_file` and presenting `client` (a certificate
/// of whichever CA) if given; the status and body, or the transport error.
pub fn https_post(
    url: &str,
    ca_file: &Path,
    client: Option<&TlsFiles>,
    body: &[u8],
) -> Result<(u16, String), String> {
    let config = match client {
        Some(c) => cli::serversync::PeerTls {
            cert_file: c.cert_file.clone(),
            key_file: c.key_file.clone(),
            ca_file: ca_file.to_path_buf(),
        }
        .client_config()?,
        None => cli::client::tls_config(Some(ca_file))?,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .tls_config(Arc::new(config))
        .build();
    match agent.post(url).send_bytes(body) {
        Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}
