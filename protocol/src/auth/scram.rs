//! The server side of SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), as PostgreSQL speaks it.
//!
//! What PostgreSQL does, and so what we do:
//! - The user name in client-first-message is ignored (the StartupMessage's `user` counts);
//!   PostgreSQL clients send `n=`.
//! - Only `SCRAM-SHA-256` is advertised, never `-PLUS`: switchyard terminates TLS itself and
//!   does not offer channel binding. So the gs2 flag may be `n` (client does not support
//!   binding) or `y` (client supports it but thinks we do not — true); `p=` is refused.
//! - Authorization identities (`a=`) and mandatory extensions (`m=`) are refused; optional
//!   extensions are ignored.
//! - Verifiers have `pg_authid`'s form, `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`,
//!   so a verifier copied from PostgreSQL (or made by `postgres_protocol::password`) works.
//! - A user that does not exist gets a mock exchange ([`ScramServer::new_mock`]) with a salt
//!   that is stable for that name, so that probing names learns nothing, and it fails at the
//!   proof exactly like a wrong password.
//!
//! The proof is checked in constant time, and no error carries any part of the exchange.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

/// The SASL mechanism name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length for new verifiers (`SCRAM_DEFAULT_SALT_LEN`).
pub const DEFAULT_SALT_LEN: usize = 16;
/// Raw bytes of the server nonce before base64, as PostgreSQL (`SCRAM_RAW_NONCE_LEN`).
const SERVER_NONCE_LEN: usize = 18;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A stored SCRAM-SHA-256 secret: enough to verify a client's proof and to prove ourselves
/// to it, but not the password. `Debug` leaves the keys out.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// Parses the `pg_authid` form: `SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(AuthError::InvalidVerifier(
                "does not start with SCRAM-SHA-256$",
            ))?;
        let (iter_salt, keys) = rest
            .split_once('$')
            .ok_or(AuthError::InvalidVerifier("missing '$' before the keys"))?;
        let (iterations, salt) = iter_salt.split_once(':').ok_or(AuthError::InvalidVerifier(
            "missing ':' between iterations and salt",
        ))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(AuthError::InvalidVerifier("missing ':' between the keys"))?;
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::InvalidVerifier(
                "iteration count is not a number",
            ));
        }
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| AuthError::InvalidVerifier("iteration count is out of range"))?;
        if iterations == 0 {
            return Err(AuthError::InvalidVerifier("iteration count is zero"));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| AuthError::InvalidVerifier("salt is not valid base64"))?;
        if salt.is_empty() {
            return Err(AuthError::InvalidVerifier("salt is empty"));
        }
        let key = |b64: &str, what: &'static str| -> Result<[u8; 32], AuthError> {
            STANDARD
                .decode(b64)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or(AuthError::InvalidVerifier(what))
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored_key, "StoredKey is not 32 bytes of base64")?,
            server_key: key(server_key, "ServerKey is not 32 bytes of base64")?,
        })
    }

    /// Derives the verifier of `password` as PostgreSQL's `scram_build_secret` does:
    /// SASLprep the password (falling back to its raw bytes when it has prohibited
    /// characters, as PostgreSQL and libpq do), PBKDF2-HMAC-SHA-256 it into SaltedPassword,
    /// then StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
    /// ServerKey = HMAC(SaltedPassword, "Server Key"). An iteration count of 0 is taken as 1.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(1);
        let prepared = stringprep::saslprep(password);
        let prepared = match &prepared {
            Ok(p) => p.as_bytes(),
            Err(_) => password.as_bytes(),
        };
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepared, salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// [`ScramVerifier::from_password`] with a fresh random 16-byte salt and PostgreSQL's
    /// default 4096 iterations: what to do once per configured cleartext password.
    pub fn generate(password: &str) -> Self {
        let salt: [u8; DEFAULT_SALT_LEN] = rand::random();
        Self::from_password(password, &salt, DEFAULT_ITERATIONS)
    }

    /// The `pg_authid` form, which [`ScramVerifier::parse`] reads back. It is a secret (it
    /// lets its holder impersonate the server): do not log it.
    pub fn to_string_form(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

impl FromStr for ScramVerifier {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        Self::parse(s)
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .field("keys", &"<redacted>")
            .finish()
    }
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// One SCRAM-SHA-256 exchange, server side: [`ScramServer::client_first`] answers the
/// SASLInitialResponse's data with the server-first-message (send it in
/// AuthenticationSASLContinue), [`ScramServer::client_final`] checks the SASLResponse's
/// proof and returns the server-final-message (send it in AuthenticationSASLFinal, then
/// AuthenticationOk). Any error ends the exchange; the next call says so.
pub struct ScramServer {
    verifier: ScramVerifier,
    server_nonce: String,
    mock: bool,
    state: State,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitingClientFirst => "awaiting client-first-message",
            State::AwaitingClientFinal { .. } => "awaiting client-final-message",
            State::Done => "done",
        };
        f.debug_struct("ScramServer")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// A process-wide random secret for mock salts: stable for the life of the process (so a
/// name always gets the same salt), unknowable outside it (so nobody can compute the salt a
/// missing user would get and compare).
fn process_mock_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(rand::random)
}

impl ScramServer {
    /// Starts an exchange for a user with this verifier, with a random 18-byte nonce.
    pub fn new(verifier: ScramVerifier) -> Self {
        let nonce: [u8; SERVER_NONCE_LEN] = rand::random();
        Self::with_nonce(verifier, STANDARD.encode(nonce), false)
    }

    /// Starts an exchange for a user that does not exist (or cannot use SCRAM), as
    /// PostgreSQL does: it looks like a real one, with a salt derived from the user name and
    /// a process-wide secret, and always fails at [`ScramServer::client_final`] with
    /// [`AuthError::InvalidPassword`].
    pub fn new_mock(user_name: &str) -> Self {
        Self::new_mock_with_secret(user_name, process_mock_secret())
    }

    /// [`ScramServer::new_mock`] with a caller-supplied secret, for salts that must stay
    /// the same across restarts (PostgreSQL keeps its `mock_authentication_nonce` in
    /// `pg_control` for this reason).
    pub fn new_mock_with_secret(user_name: &str, secret: &[u8]) -> Self {
        let digest = hmac(
            secret,
            &[b"switchyard SCRAM mock salt\0", user_name.as_bytes()],
        );
        let salt = digest.get(..DEFAULT_SALT_LEN).unwrap_or(&digest).to_vec();
        // Random keys: no proof can match them, and the `mock` flag makes sure of it.
        let verifier = ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt,
            stored_key: rand::random(),
            server_key: rand::random(),
        };
        let nonce: [u8; SERVER_NONCE_LEN] = rand::random();
        Self::with_nonce(verifier, STANDARD.encode(nonce), true)
    }

    fn with_nonce(verifier: ScramVerifier, server_nonce: String, mock: bool) -> Self {
        Self {
            verifier,
            server_nonce,
            mock,
            state: State::AwaitingClientFirst,
        }
    }

    /// Reads client-first-message (the data of SASLInitialResponse) and returns
    /// server-first-message.
    pub fn client_first(&mut self, client_first_message: &[u8]) -> Result<Vec<u8>, AuthError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitingClientFirst => {}
            _ => {
                return Err(AuthError::OutOfOrder(
                    "client-first-message already received",
                ))
            }
        }
        let msg = std::str::from_utf8(client_first_message)
            .map_err(|_| AuthError::Malformed("client-first-message is not valid UTF-8"))?;

        // gs2-header = gs2-cbind-flag "," [authzid] ","
        let (flag, rest) = msg.split_once(',').ok_or(AuthError::Malformed(
            "client-first-message has no gs2 header",
        ))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(AuthError::ChannelBindingUnsupported),
            _ => return Err(AuthError::Malformed("invalid channel-binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(AuthError::Malformed(
            "client-first-message has no gs2 header",
        ))?;
        if authzid.starts_with("a=") {
            return Err(AuthError::AuthzidUnsupported);
        }
        if !authzid.is_empty() {
            return Err(AuthError::Malformed("invalid authorization identity"));
        }
        let gs2_header = msg
            .get(..msg.len() - bare.len())
            .ok_or(AuthError::Malformed(
                "client-first-message has no gs2 header",
            ))?;

        // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
        let mut attrs = bare.split(',');
        let user = attrs.next().unwrap_or_default();
        if user.starts_with("m=") {
            return Err(AuthError::UnsupportedExtension);
        }
        if !user.starts_with("n=") {
            return Err(AuthError::Malformed("expected username attribute"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(AuthError::Malformed("expected nonce attribute"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(AuthError::Malformed("nonce is empty or not printable"));
        }
        if !attrs.all(is_attribute) {
            return Err(AuthError::Malformed("invalid extension attribute"));
        }

        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::AwaitingClientFinal {
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        };
        Ok(reply)
    }

    /// Reads client-final-message (the data of SASLResponse), verifies the proof and returns
    /// server-final-message (`v=<ServerSignature>`). A wrong proof, and any proof in a mock
    /// exchange, is [`AuthError::InvalidPassword`].
    pub fn client_final(&mut self, client_final_message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (gs2_header, client_first_bare, server_first, nonce) =
            match std::mem::replace(&mut self.state, State::Done) {
                State::AwaitingClientFinal {
                    gs2_header,
                    client_first_bare,
                    server_first,
                    nonce,
                } => (gs2_header, client_first_bare, server_first, nonce),
                State::AwaitingClientFirst => {
                    return Err(AuthError::OutOfOrder(
                        "client-final-message before client-first-message",
                    ))
                }
                State::Done => return Err(AuthError::OutOfOrder("exchange already finished")),
            };
        let msg = std::str::from_utf8(client_final_message)
            .map_err(|_| AuthError::Malformed("client-final-message is not valid UTF-8"))?;

        // client-final-message = channel-binding "," nonce ["," extensions] "," proof
        let (without_proof, proof) = msg.rsplit_once(',').ok_or(AuthError::Malformed(
            "client-final-message has too few attributes",
        ))?;
        let proof = proof
            .strip_prefix("p=")
            .ok_or(AuthError::Malformed("proof must be the last attribute"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(AuthError::Malformed("expected channel-binding attribute"))?;
        let final_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(AuthError::Malformed("expected nonce attribute"))?;
        if !attrs.all(is_attribute) {
            return Err(AuthError::Malformed("invalid extension attribute"));
        }
        let cbind = STANDARD
            .decode(cbind)
            .map_err(|_| AuthError::Malformed("channel binding is not valid base64"))?;
        if cbind != gs2_header.as_bytes() {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if final_nonce != nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof: [u8; 32] = STANDARD
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(AuthError::Malformed("proof is not 32 bytes of base64"))?;

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        let matches: bool = computed.ct_eq(&self.verifier.stored_key).into();
        if !matches || self.mock {
            return Err(AuthError::InvalidPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

/// `attr-val = ALPHA "=" value`, as an (ignored) extension.
fn is_attribute(a: &str) -> bool {
    matches!(a.as_bytes(), [letter, b'=', ..] if letter.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// Runs a whole exchange with the real client from postgres-protocol; returns the
    /// server's error, or the client's verdict on our server-final-message.
    fn exchange(
        server: &mut ScramServer,
        password: &str,
        binding: ChannelBinding,
    ) -> Result<Result<(), String>, AuthError> {
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let server_first = server.client_first(client.message())?;
        client
            .update(&server_first)
            .expect("client accepts server-first-message");
        let server_final = server.client_final(client.message())?;
        Ok(client.finish(&server_final).map_err(|e| e.to_string()))
    }

    #[test]
    fn rfc7677_test_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = ScramVerifier::from_password("pencil", &salt, 4096);
        let mut server =
            ScramServer::with_nonce(verifier, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(), false);
        let first = server
            .client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .unwrap();
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = server
            .client_final(
                concat!(
                    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,",
                    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                )
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(fin, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn real_client_with_right_password_succeeds_and_accepts_our_signature() {
        let verifier = ScramVerifier::generate("app-secret");
        for binding in [ChannelBinding::unrequested(), ChannelBinding::unsupported()] {
            let mut server = ScramServer::new(verifier.clone());
            assert_eq!(exchange(&mut server, "app-secret", binding), Ok(Ok(())));
        }
    }

    #[test]
    fn real_client_with_wrong_password_is_refused() {
        let mut server = ScramServer::new(ScramVerifier::generate("app-secret"));
        assert_eq!(
            exchange(&mut server, "app-secreT", ChannelBinding::unsupported()),
            Err(AuthError::InvalidPassword)
        );
    }

    #[test]
    fn our_signature_is_rejected_by_a_client_if_our_server_key_is_wrong() {
        // Proves the client really checks the server-final-message we send.
        let mut verifier = ScramVerifier::generate("pw");
        verifier.server_key[0] ^= 1;
        let mut server = ScramServer::new(verifier);
        let outcome = exchange(&mut server, "pw", ChannelBinding::unsupported()).unwrap();
        assert!(outcome.is_err());
    }

    #[test]
    fn verifier_from_postgres_protocol_parses_round_trips_and_authenticates() {
        let stored = postgres_protocol::password::scram_sha_256(b"I\xc2\xadX pw");
        let verifier = ScramVerifier::parse(&stored).unwrap();
        assert_eq!(verifier.to_string_form(), stored);
        assert_eq!(
            ScramVerifier::from_password("I\u{ad}X pw", &verifier.salt, verifier.iterations),
            verifier,
            "our derivation (with SASLprep) gives the same keys"
        );
        let mut server = ScramServer::new(verifier);
        assert_eq!(
            exchange(&mut server, "I\u{ad}X pw", ChannelBinding::unrequested()),
            Ok(Ok(()))
        );
    }

    #[test]
    fn saslprep_maps_soft_hyphen_away_like_postgres() {
        let a = ScramVerifier::from_password("I\u{ad}X", b"salt", 16);
        let b = ScramVerifier::from_password("IX", b"salt", 16);
        assert_eq!(a, b);
    }

    #[test]
    fn channel_binding_request_is_refused_clearly() {
        let mut server = ScramServer::new(ScramVerifier::generate("pw"));
        let client = ScramSha256::new(b"pw", ChannelBinding::tls_server_end_point(vec![1; 32]));
        let err = server.client_first(client.message()).unwrap_err();
        assert_eq!(err, AuthError::ChannelBindingUnsupported);
        assert!(err.to_string().contains("channel binding"));
    }

    #[test]
    fn client_first_grammar_violations_are_refused() {
        let cases: [(&[u8], AuthError); 8] = [
            (b"n,a=admin,n=,r=abc", AuthError::AuthzidUnsupported),
            (b"n,,m=ext,n=,r=abc", AuthError::UnsupportedExtension),
            (
                b"x,,n=,r=abc",
                AuthError::Malformed("invalid channel-binding flag"),
            ),
            (
                b"n,,r=abc",
                AuthError::Malformed("expected username attribute"),
            ),
            (b"n,,n=", AuthError::Malformed("expected nonce attribute")),
            (
                b"n,,n=,r=",
                AuthError::Malformed("nonce is empty or not printable"),
            ),
            (
                b"n,,n=,r=a,=x",
                AuthError::Malformed("invalid extension attribute"),
            ),
            (
                b"n,,n=,r=\xff",
                AuthError::Malformed("client-first-message is not valid UTF-8"),
            ),
        ];
        for (msg, expected) in cases {
            let mut server = ScramServer::new(ScramVerifier::generate("pw"));
            assert_eq!(server.client_first(msg), Err(expected), "{msg:?}");
        }
    }

    #[test]
    fn optional_extensions_in_client_first_are_ignored() {
        let mut server = ScramServer::new(ScramVerifier::generate("pw"));
        let first = server.client_first(b"n,,n=,r=abc,x=future").unwrap();
        assert!(first.starts_with(b"r=abc"));
    }

    /// Drives the server to the client-final step with a fixed client-first-message.
    fn after_first(gs2: &str) -> (ScramServer, String) {
        let mut server = ScramServer::new(ScramVerifier::generate("pw"));
        let first = server
            .client_first(format!("{gs2}n=,r=abc").as_bytes())
            .unwrap();
        let first = String::from_utf8(first).unwrap();
        let nonce = first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap()
            .to_owned();
        (server, nonce)
    }

    #[test]
    fn client_final_checks_binding_nonce_and_proof_shape() {
        let proof = STANDARD.encode([0u8; 32]);
        let (mut s, nonce) = after_first("n,,");
        assert_eq!(
            s.client_final(format!("c=eSws,r={nonce},p={proof}").as_bytes()),
            Err(AuthError::ChannelBindingMismatch),
            "header was n,, but final claims y,,"
        );
        let (mut s, nonce) = after_first("y,,");
        assert_eq!(
            s.client_final(format!("c=eSws,r={nonce}x,p={proof}").as_bytes()),
            Err(AuthError::NonceMismatch)
        );
        let (mut s, nonce) = after_first("n,,");
        assert_eq!(
            s.client_final(format!("c=biws,r={nonce},p=AAAA").as_bytes()),
            Err(AuthError::Malformed("proof is not 32 bytes of base64"))
        );
        let (mut s, nonce) = after_first("n,,");
        assert_eq!(
            s.client_final(format!("c=biws,r={nonce},p={proof},x=1").as_bytes()),
            Err(AuthError::Malformed("proof must be the last attribute"))
        );
        let (mut s, nonce) = after_first("n,,");
        assert_eq!(
            s.client_final(format!("c=biws,r={nonce},p={proof}").as_bytes()),
            Err(AuthError::InvalidPassword),
            "well-formed but wrong proof"
        );
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let mut server = ScramServer::new(ScramVerifier::generate("pw"));
        assert!(matches!(
            server.client_final(b"c=biws,r=x,p=y"),
            Err(AuthError::OutOfOrder(_))
        ));
        let (mut server, _) = after_first("n,,");
        assert!(matches!(
            server.client_first(b"n,,n=,r=abc"),
            Err(AuthError::OutOfOrder(_))
        ));
        // A failed exchange stays failed.
        let (mut server, _) = after_first("n,,");
        assert!(server.client_final(b"garbage").is_err());
        assert!(matches!(
            server.client_final(b"garbage"),
            Err(AuthError::OutOfOrder(_))
        ));
    }

    #[test]
    fn mock_exchange_looks_real_is_stable_per_user_and_always_fails() {
        let salt_of = |server: &mut ScramServer| {
            let first = server.client_first(b"n,,n=,r=abc").unwrap();
            let first = String::from_utf8(first).unwrap();
            let parts: Vec<&str> = first.split(',').collect();
            assert_eq!(parts.len(), 3);
            assert_eq!(
                parts[0].len(),
                "r=abc".len() + 24,
                "same nonce length as real"
            );
            assert_eq!(parts[2], "i=4096");
            parts[1].to_owned()
        };
        let ghost = salt_of(&mut ScramServer::new_mock("ghost"));
        assert_eq!(ghost, salt_of(&mut ScramServer::new_mock("ghost")));
        assert_ne!(ghost, salt_of(&mut ScramServer::new_mock("ghost2")));
        assert_eq!(
            STANDARD
                .decode(ghost.strip_prefix("s=").unwrap())
                .unwrap()
                .len(),
            DEFAULT_SALT_LEN
        );
        assert_ne!(
            salt_of(&mut ScramServer::new_mock_with_secret("ghost", b"one")),
            salt_of(&mut ScramServer::new_mock_with_secret("ghost", b"two")),
            "the salt depends on the secret, so it cannot be computed from the name alone"
        );
        let mut mock = ScramServer::new_mock("ghost");
        assert_eq!(
            exchange(&mut mock, "any", ChannelBinding::unsupported()),
            Err(AuthError::InvalidPassword)
        );
    }

    #[test]
    fn verifier_parse_rejects_malformed_strings() {
        let good = ScramVerifier::generate("pw").to_string_form();
        assert!(ScramVerifier::parse(&good).is_ok());
        let (head, keys) = good.rsplit_once('$').unwrap();
        let (stored, _) = keys.split_once(':').unwrap();
        for bad in [
            good.replacen("SCRAM-SHA-256", "SCRAM-SHA-1", 1),
            good.replacen("$4096:", "$0:", 1),
            good.replacen("$4096:", "$-1:", 1),
            good.replacen("$4096:", "$99999999999:", 1),
            good.replacen("$4096:", "$4096", 1),
            format!("{head}${stored}"),
            format!("{head}${stored}:AAAA"),
            format!("{head}${stored}:!!!!"),
            "SCRAM-SHA-256$4096:$a:b".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(
                    ScramVerifier::parse(&bad),
                    Err(AuthError::InvalidVerifier(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_leaks_no_key_material() {
        let v = ScramVerifier::generate("pw");
        let text = format!("{v:?} {:?}", ScramServer::new(v.clone()));
        assert!(!text.contains(&STANDARD.encode(v.stored_key)));
        assert!(!text.contains(&STANDARD.encode(v.server_key)));
        assert!(!text.contains(&format!("{:?}", v.stored_key)));
    }
}
