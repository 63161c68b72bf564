//! OpenNebula's `server_cipher` proxy sessions, as FireEdge, OneFlow and OneGate send them:
//! `serveradmin:<user>:<token>` (or `serveradmin:<user>:<egid>:<token>`), where the token is
//! `base64(AES-256-CBC("serveradmin:<user>:<expiration>"))`. The key is the first 32 characters
//! of the hex SHA-256 of serveradmin's password (the form the user pool stores it in), the IV
//! its first 16: what `ServerCipherAuth` does in OpenNebula's Ruby library and auth driver.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// Longest token accepted: a user name, a time stamp and padding, in base64, with room to spare.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Why a proxy token was refused. Never says more than OpenNebula's driver does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the stored server password is not a SHA-256 digest")]
    NoKey,
    #[error("the token cannot be decrypted")]
    Undecryptable,
    #[error("User name missmatch")]
    WrongServer,
    #[error("login token expired")]
    Expired,
}

/// Key and IV from the stored password (64 hex digits).
fn key_iv(stored: &str) -> Result<([u8; 32], [u8; 16]), Refused> {
    let bytes = stored.as_bytes();
    if bytes.len() < 32 {
        return Err(Refused::NoKey);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[..32]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&bytes[..16]);
    Ok((key, iv))
}

/// The hex SHA-256 of a password: what the user pool stores for a `server_cipher` user.
pub fn stored_form(password: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(password.as_bytes()))
}

/// The token a proxy made with `server_user`'s password sends for `target` until `expire`
/// (seconds since the epoch): the whole session string, `server_user:target:<token>`.
pub fn login_session(server_user: &str, password: &str, target: &str, expire: i64) -> String {
    let stored = stored_form(password);
    let (key, iv) = match key_iv(&stored) {
        Ok(k) => k,
        Err(_) => unreachable!("a SHA-256 digest is 64 hex digits"),
    };
    let text = format!("{server_user}:{target}:{expire}");
    let sealed =
        Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(text.as_bytes());
    let token = base64::engine::general_purpose::STANDARD.encode(sealed);
    format!("{server_user}:{target}:{token}")
}

/// Checks `token` (the part after `server_user:target:`) against `server_user`'s stored
/// password at `now`, as OpenNebula's driver does: it must decrypt, name `server_user` first
/// and carry an expiration later than `now`.
pub fn verify(server_user: &str, stored: &str, token: &str, now: i64) -> Result<(), Refused> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refused::Undecryptable);
    }
    let (key, iv) = key_iv(stored)?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| Refused::Undecryptable)?;
    let text = Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
        .map_err(|_| Refused::Undecryptable)?;
    let text = String::from_utf8(text).map_err(|_| Refused::Undecryptable)?;
    let (user, expires) = token_fields(&text);
    if user != server_user {
        return Err(Refused::WrongServer);
    }
    if now >= expires {
        return Err(Refused::Expired);
    }
    Ok(())
}

/// The server user and the expiry (0 if unreadable) of a proxy token's text,
/// `<server user>:<target user>:<expiry>`, as OpenNebula's drivers split it.
pub(crate) fn token_fields(text: &str) -> (&str, i64) {
    let user = text.split(':').next().unwrap_or_default();
    let expires = text
        .rsplit(':')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    (user, expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn token_of(session: &str) -> &str {
        session.splitn(3, ':').nth(2).unwrap()
    }

    #[test]
    fn a_token_made_with_the_password_verifies_against_its_stored_form() {
        let s = login_session("serveradmin", "srv-secret", "alice", NOW + 60);
        assert!(s.starts_with("serveradmin:alice:"));
        let stored = stored_form("srv-secret");
        assert_eq!(verify("serveradmin", &stored, token_of(&s), NOW), Ok(()));
    }

    #[test]
    fn expired_foreign_or_forged_tokens_are_refused() {
        let stored = stored_form("srv-secret");
        let late = login_session("serveradmin", "srv-secret", "alice", NOW);
        assert_eq!(
            verify("serveradmin", &stored, token_of(&late), NOW),
            Err(Refused::Expired)
        );
        let other_key = login_session("serveradmin", "other", "alice", NOW + 60);
        assert!(verify("serveradmin", &stored, token_of(&other_key), NOW).is_err());
        let other_server = login_session("proxy2", "srv-secret", "alice", NOW + 60);
        assert_eq!(
            verify("serveradmin", &stored, token_of(&other_server), NOW),
            Err(Refused::WrongServer)
        );
        for junk in ["", "!!!", "AAAA", &"A".repeat(MAX_TOKEN_LEN + 4)] {
            assert_eq!(
                verify("serveradmin", &stored, junk, NOW),
                Err(Refused::Undecryptable)
            );
        }
        assert_eq!(
            verify("serveradmin", "short", token_of(&late), NOW),
            Err(Refused::NoKey)
        );
    }

    /// A known answer from OpenSSL, the library Ruby's `ServerCipherAuth#login_token` calls:
    /// `openssl enc -aes-256-cbc -K <hex of sha256hex("pw")[0..32]> -iv <hex of
    /// sha256hex("pw")[0..16]>` of `serveradmin:bob:42`, in base64.
    #[test]
    fn the_token_is_the_one_openssl_makes() {
        let s = login_session("serveradmin", "pw", "bob", 42);
        assert_eq!(
            s,
            "serveradmin:bob:g7Ccom7fgitry7ZS9c0QNyw3LBhmA8Bh9m9Q8gojLOY="
        );
    }
}
