//! Throwaway certificates made at test time: a CA, a server certificate
//! for 127.0.0.1 / localhost and a client certificate signed by it, plus an
//! unrelated CA that must not be trusted. Written as PEM files into a
//! temporary directory that lives as long as the [`Pki`].

use std::path::{Path, PathBuf};

use cedar_sidecar::sync::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files, by role.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates everything (a few milliseconds with ECDSA P-256 keys).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("key");
        let params = ca_params("cedar-sidecar test CA");
        let ca = params.self_signed(&ca_key).expect("ca");
        write(dir.path(), "ca.pem", &ca.pem());
        let issuer = Issuer::new(params, ca_key);

        let leaf = |name: &str, sans: &[&str], usages: &[ExtendedKeyUsagePurpose]| {
            let key = KeyPair::generate().expect("key");
            let mut params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = usages.to_vec();
            let cert = params.signed_by(&key, &issuer).expect("sign");
            write(dir.path(), &format!("{name}.pem"), &cert.pem());
            write(dir.path(), &format!("{name}.key"), &key.serialize_pem());
        };
        // Sentinel also presents the server certificate as a client (to the
        // master it monitors), so it may do both.
        leaf(
            "server",
            &["127.0.0.1", "localhost"],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        leaf("client", &[], &[ExtendedKeyUsagePurpose::ClientAuth]);

        let other_key = KeyPair::generate().expect("key");
        let other = ca_params("some other CA")
            .self_signed(&other_key)
            .expect("other ca");
        write(dir.path(), "other-ca.pem", &other.pem());
        Self { dir }
    }

    /// A file of this set (`ca.pem`, `server.pem`, `client.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Trust the test CA; no client certificate.
    pub fn ca_only(&self) -> TlsFiles {
        TlsFiles {
            ca: Some(self.path("ca.pem")),
            ..TlsFiles::default()
        }
    }

    /// Trust the test CA and present the client certificate.
    pub fn mutual(&self) -> TlsFiles {
        TlsFiles {
            ca: Some(self.path("ca.pem")),
            cert: Some(self.path("client.pem")),
            key: Some(self.path("client.key")),
        }
    }

    /// Trust only an unrelated CA.
    pub fn wrong_ca(&self) -> TlsFiles {
        TlsFiles {
            ca: Some(self.path("other-ca.pem")),
            ..TlsFiles::default()
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write pem");
}
