//! A throwaway certificate authority for TLS tests.
//!
//! [`TestCa::new`] makes a CA and a server certificate valid for `localhost` and
//! `127.0.0.1`, signed by it, and writes them as PEM files. The same files serve switchyard's
//! `[listen] tls_cert`/`tls_key`, an upstream's `ca_file`, PostgreSQL's `ssl_cert_file` and
//! a client's `sslrootcert`. PostgreSQL refuses a key that is not `0600` and owned by the
//! server's user, so it gets its own copies ([`ServerTls::copy_for_postgres`]).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::server_user::ServerUser;

/// Paths of a server certificate, its private key and the CA that signed it (PEM files).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl ServerTls {
    /// Copies the three files into `dir` as `server.crt`, `server.key` (0600) and `ca.crt`,
    /// owned by the PostgreSQL server's OS user, and returns the copies' paths.
    pub fn copy_for_postgres(&self, dir: &Path) -> ServerTls {
        let user = ServerUser::get();
        let copy = |from: &Path, name: &str, mode: u32| {
            let to = dir.join(name);
            fs::copy(from, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
            user.chown(&to);
            to
        };
        ServerTls {
            cert: copy(&self.cert, "server.crt", 0o644),
            key: copy(&self.key, "server.key", 0o600),
            ca: copy(&self.ca, "ca.crt", 0o644),
        }
    }
}

/// A CA plus one server certificate for `localhost`/`127.0.0.1`, written to a directory.
pub struct TestCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server: ServerTls,
}

impl TestCa {
    /// Generates the CA and the server certificate and writes `ca.crt`, `server.crt` and
    /// `server.key` (0600) into `dir` (which must exist).
    pub fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = distinguished_name("switchyard test CA");
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let ca_cert = params.self_signed(&ca_key).expect("self-sign the CA");
        let ca_path = dir.join("ca.crt");
        write(&ca_path, &ca_cert.pem(), 0o644);

        let mut ca = TestCa {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, ca_key),
            ca_der: ca_cert.der().clone(),
            server: ServerTls {
                cert: PathBuf::new(),
                key: PathBuf::new(),
                ca: ca_path,
            },
        };
        ca.server = ca.issue("server", &["localhost", "127.0.0.1"]);
        ca
    }

    /// Issues another server certificate for `names` (DNS names or IP addresses), written as
    /// `<stem>.crt` and `<stem>.key` next to the CA — e.g. one for the wrong host name.
    pub fn issue(&self, stem: &str, names: &[&str]) -> ServerTls {
        let sans: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(sans)
            .unwrap_or_else(|e| panic!("certificate params for {names:?}: {e}"));
        params.distinguished_name = distinguished_name(names.first().copied().unwrap_or(stem));
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        let cert_path = self.dir.join(format!("{stem}.crt"));
        let key_path = self.dir.join(format!("{stem}.key"));
        write(&cert_path, &cert.pem(), 0o644);
        write(&key_path, &key.serialize_pem(), 0o600);
        ServerTls {
            cert: cert_path,
            key: key_path,
            ca: self.dir.join("ca.crt"),
        }
    }

    /// The server certificate for `localhost`/`127.0.0.1`.
    pub fn server_tls(&self) -> ServerTls {
        self.server.clone()
    }

    /// `ca.crt`: what clients pass as `sslrootcert` / switchyard as an upstream `ca_file`.
    pub fn ca_cert_path(&self) -> &Path {
        &self.server.ca
    }

    /// A rustls client configuration that trusts this CA only.
    pub fn rustls_client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("add the test CA to a root store");
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
