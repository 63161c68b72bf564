//! OpenNebula's `server_x509` proxy tokens (`ServerX509Auth`): a trusted server (Sunstone,
//! FireEdge) holding the zone's server certificate calls for a user with the session
//! `<server user>:<target user>:<token>`, the token being `<server user>:<target user>:<expiry>`
//! encrypted with the certificate's RSA private key (OpenSSL's `private_encrypt`, PKCS#1 v1.5
//! type 1 padding) in base64. oned checks it with the certificate's public key; the server
//! user's stored password is the certificate's subject, as OpenSSL prints it without spaces.

use base64::Engine;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use x509_cert::der::DecodePem;

/// Tokens longer than this are refused before any arithmetic (a 16384-bit key's token).
const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Server password missmatch")]
    WrongCertificate,
    #[error("the token does not decrypt with the server certificate")]
    Undecryptable,
    #[error("User name missmatch")]
    WrongServer,
    #[error("login token expired")]
    Expired,
}

/// The server certificate: its RSA public key and subject.
#[derive(Debug, Clone)]
pub struct ServerCert {
    key: RsaPublicKey,
    subject: String,
}

impl ServerCert {
    /// The first certificate of a PEM file, which must hold an RSA key.
    pub fn from_pem(pem: &str) -> Result<ServerCert, String> {
        let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
            .map_err(|e| format!("not an X.509 certificate in PEM: {e}"))?;
        use rsa::pkcs8::DecodePublicKey;
        use x509_cert::der::Encode;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("the certificate's key does not encode: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("the certificate's key is not RSA: {e}"))?;
        Ok(ServerCert {
            key,
            subject: oneline(&cert.tbs_certificate.subject),
        })
    }

    /// The subject as OpenNebula stores it for the server user (`/C=ES/O=.../CN=...`, no
    /// spaces).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Checks a token of `server_user` (the user the session names, whose stored password is
    /// `stored`), as `ServerX509Auth#authenticate`: the token decrypts with this certificate,
    /// names `server_user`, who is `srv_user`, and has not expired at `now`.
    pub fn verify(
        &self,
        server_user: &str,
        srv_user: &str,
        stored: &str,
        token: &str,
        now: i64,
    ) -> Result<(), Refused> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refused::Undecryptable);
        }
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| Refused::Undecryptable)?;
        let text = self.public_decrypt(&sealed)?;
        let text = String::from_utf8(text).map_err(|_| Refused::Undecryptable)?;
        if stored != self.subject {
            return Err(Refused::WrongCertificate);
        }
        let (user, expires) = crate::server_cipher::token_fields(&text);
        if user != server_user || user != srv_user {
            return Err(Refused::WrongServer);
        }
        if now >= expires {
            return Err(Refused::Expired);
        }
        Ok(())
    }

    /// OpenSSL's `public_decrypt` with PKCS#1 v1.5 padding: the RSA public operation, then
    /// `00 01 FF..FF 00 <data>` with at least 8 bytes of FF.
    fn public_decrypt(&self, sealed: &[u8]) -> Result<Vec<u8>, Refused> {
        let k = self.key.size();
        if sealed.len() != k {
            return Err(Refused::Undecryptable);
        }
        let c = BigUint::from_bytes_be(sealed);
        if &c >= self.key.n() {
            return Err(Refused::Undecryptable);
        }
        let m = c.modpow(self.key.e(), self.key.n()).to_bytes_be();
        let mut em = vec![0u8; k - m.len()];
        em.extend(m);
        let body = em.strip_prefix(&[0, 1]).ok_or(Refused::Undecryptable)?;
        let pad = body.iter().take_while(|&&b| b == 0xFF).count();
        match body.get(pad) {
            Some(0) if pad >= 8 => Ok(body[pad + 1..].to_vec()),
            _ => Err(Refused::Undecryptable),
        }
    }
}

/// A name as OpenSSL's one-line form (`X509_NAME_oneline`), which Ruby's `Name#to_s` prints,
/// without white space as OpenNebula's `X509Auth#password` keeps it.
fn oneline(name: &x509_cert::name::Name) -> String {
    let mut out = String::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            let short = match oid.as_str() {
                "2.5.4.6" => "C",
                "2.5.4.8" => "ST",
                "2.5.4.7" => "L",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.3" => "CN",
                "2.5.4.5" => "serialNumber",
                "1.2.840.113549.1.9.1" => "emailAddress",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                _ => oid.as_str(),
            };
            out.push('/');
            out.push_str(short);
            out.push('=');
            out.push_str(&value_text(&atv.value));
        }
    }
    out.retain(|c| !c.is_whitespace());
    out
}

fn value_text(v: &x509_cert::der::Any) -> String {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    if let Ok(s) = v.decode_as::<Utf8StringRef<'_>>() {
        return s.as_str().to_string();
    }
    if let Ok(s) = v.decode_as::<PrintableStringRef<'_>>() {
        return s.as_str().to_string();
    }
    if let Ok(s) = v.decode_as::<Ia5StringRef<'_>>() {
        return s.as_str().to_string();
    }
    String::from_utf8_lossy(v.value()).into_owned()
}

/// The base64 token a server with `key_pem` (PKCS#8) sends to act as `target`, as
/// `ServerX509Auth#login_token` makes it: for tests and tools.
pub fn login_token(
    key_pem: &str,
    srv_user: &str,
    target: &str,
    expires: i64,
) -> Result<String, String> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).map_err(|e| e.to_string())?;
    let text = format!("{srv_user}:{target}:{expires}");
    let k = key.size();
    if text.len() + 11 > k {
        return Err("the token text is too long for the key".into());
    }
    let mut em = vec![0u8, 1];
    em.extend(std::iter::repeat_n(0xFF, k - 3 - text.len()));
    em.push(0);
    em.extend(text.as_bytes());
    let c = BigUint::from_bytes_be(&em).modpow(key.d(), key.n());
    let mut sealed = vec![0u8; k - c.to_bytes_be().len()];
    sealed.extend(c.to_bytes_be());
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const CERT: &str = include_str!("testdata/x509-cert.pem");
    const KEY: &str = include_str!("testdata/x509-key.pem");

    #[test]
    fn the_subject_reads_as_openssl_prints_it_without_spaces() {
        let cert = ServerCert::from_pem(CERT).unwrap();
        assert_eq!(cert.subject(), "/C=ES/O=OpenNebulaTest/CN=onehaserver");
    }

    #[test]
    fn a_token_of_the_certificates_key_is_taken_until_it_expires() {
        let cert = ServerCert::from_pem(CERT).unwrap();
        let dn = cert.subject().to_string();
        let token = login_token(KEY, "serveradmin", "alice", 2_000).unwrap();
        let check = |user: &str, stored: &str, token: &str, now: i64| {
            cert.verify(user, "serveradmin", stored, token, now)
        };
        assert_eq!(check("serveradmin", &dn, &token, 1_999), Ok(()));
        assert_eq!(
            check("serveradmin", &dn, &token, 2_000),
            Err(Refused::Expired)
        );
        assert_eq!(
            check("serveradmin", "/CN=other", &token, 1_000),
            Err(Refused::WrongCertificate)
        );
        assert_eq!(
            check("oneadmin", &dn, &token, 1_000),
            Err(Refused::WrongServer)
        );
        let other = login_token(KEY, "proxy", "alice", 2_000).unwrap();
        assert_eq!(
            check("proxy", &dn, &other, 1_000),
            Err(Refused::WrongServer)
        );
        // Anything else is not a token of this key.
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&token)
            .unwrap();
        bytes[10] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(
            check("serveradmin", &dn, &tampered, 1_000),
            Err(Refused::Undecryptable)
        );
        assert_eq!(
            check("serveradmin", &dn, "bm90IGEgdG9rZW4=", 1_000),
            Err(Refused::Undecryptable)
        );
        assert_eq!(
            check("serveradmin", &dn, &"A".repeat(5000), 1_000),
            Err(Refused::Undecryptable)
        );
    }

    #[test]
    fn a_certificate_file_that_is_not_one_is_refused_clearly() {
        let e = ServerCert::from_pem("hello").unwrap_err();
        assert!(e.starts_with("not an X.509 certificate in PEM"), "{e}");
    }
}
