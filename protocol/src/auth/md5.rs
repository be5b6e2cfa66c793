//! md5 password authentication (`AuthenticationMD5Password`), as PostgreSQL's
//! `pg_md5_encrypt` applied twice: the client sends
//! `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
//!
//! Kept for clients and configurations that still use it; SCRAM is the default. The
//! comparison is constant-time so a response's correctness cannot be learnt byte by byte.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// `"md5" + hex(md5(password + user))`: the `pg_authid` form of an md5 password.
pub fn md5_stored_hash(user: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(user.as_bytes());
    format!("md5{}", hex::encode(h.finalize()))
}

/// The response a client sends to `AuthenticationMD5Password` with `salt`.
pub fn md5_password_hash(user: &str, password: &str, salt: [u8; 4]) -> String {
    let stored = md5_stored_hash(user, password);
    salted(&stored, salt)
}

fn salted(stored: &str, salt: [u8; 4]) -> String {
    let inner = stored.strip_prefix("md5").unwrap_or(stored);
    let mut h = Md5::new();
    h.update(inner.as_bytes());
    h.update(salt);
    format!("md5{}", hex::encode(h.finalize()))
}

/// Whether `client_response` (the PasswordMessage's string, without its NUL) is the right
/// md5 response for this user, password and salt. Constant-time in the response's content.
pub fn md5_verify(user: &str, password: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    let expected = md5_password_hash(user, password, salt);
    expected.as_bytes().ct_eq(client_response).into()
}

/// Like [`md5_verify`], against a stored `"md5" + 32 hex digits` hash instead of the
/// cleartext password (what `pg_authid` holds for md5 users). A stored value of any other
/// form never verifies.
pub fn md5_verify_stored(stored: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    let well_formed = stored.len() == 35
        && stored.starts_with("md5")
        && stored.bytes().skip(3).all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return false;
    }
    let expected = salted(&stored.to_ascii_lowercase(), salt);
    expected.as_bytes().ct_eq(client_response).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::md5_hash;

    #[test]
    fn hash_matches_the_postgres_client_implementation() {
        for (user, password, salt) in [
            ("md5_user", "password", [0x2a, 0x3d, 0x8f, 0xe0]),
            ("app", "s3cr3t ünïcode", [0, 0, 0, 0]),
            ("", "", [0xff; 4]),
        ] {
            assert_eq!(
                md5_password_hash(user, password, salt),
                md5_hash(user.as_bytes(), password.as_bytes(), salt)
            );
        }
        assert_eq!(
            md5_password_hash("md5_user", "password", [0x2a, 0x3d, 0x8f, 0xe0]),
            "md562af4dd09bbb41884907a838a3233294"
        );
    }

    #[test]
    fn verify_accepts_the_right_response_and_nothing_else() {
        let salt = [1, 2, 3, 4];
        let good = md5_hash(b"app", b"pw", salt);
        assert!(md5_verify("app", "pw", salt, good.as_bytes()));
        assert!(!md5_verify("app", "pw2", salt, good.as_bytes()));
        assert!(!md5_verify("other", "pw", salt, good.as_bytes()));
        assert!(!md5_verify("app", "pw", [4, 3, 2, 1], good.as_bytes()));
        assert!(!md5_verify("app", "pw", salt, &good.as_bytes()[..34]));
        assert!(!md5_verify("app", "pw", salt, b""));
        let mut with_nul = good.clone().into_bytes();
        with_nul.push(0);
        assert!(!md5_verify("app", "pw", salt, &with_nul));
    }

    #[test]
    fn verify_stored_uses_the_pg_authid_form() {
        let salt = [9, 8, 7, 6];
        let stored = postgres_protocol::password::md5(b"pw", "app");
        assert_eq!(stored, md5_stored_hash("app", "pw"));
        let response = md5_hash(b"app", b"pw", salt);
        assert!(md5_verify_stored(&stored, salt, response.as_bytes()));
        assert!(md5_verify_stored(
            &stored.to_ascii_uppercase().replacen("MD5", "md5", 1),
            salt,
            response.as_bytes()
        ));
        assert!(!md5_verify_stored("pw", salt, response.as_bytes()));
        assert!(!md5_verify_stored(&stored[..34], salt, response.as_bytes()));
    }
}
