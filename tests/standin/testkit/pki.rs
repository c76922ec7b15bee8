//! A test PKI written with rcgen: the cluster CA with an RSA serving cert for 127.0.0.1 and an
//! EC admin client cert, and the etcd CA with etcd's server cert and the apiserver's etcd
//! client cert, keys in the PKCS#1 and SEC1 files kubeadm and Go write.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// What a leaf certificate says; `name` is the file name without `.crt`/`.key`.
pub struct Leaf<'a> {
    pub name: &'a str,
    pub cn: &'a str,
    pub orgs: &'a [&'a str],
    pub sans: &'a [&'a str],
    pub usages: &'a [ExtendedKeyUsagePurpose],
}

/// A CA and the leaf certificates it signs, written as PEM files into a directory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// Issues `leaf` for `key` (the key pair and the PEM that lands in the `.key` file).
    pub fn issue(&self, dir: &Path, leaf: Leaf, key: (KeyPair, String)) {
        let Leaf {
            name,
            cn,
            orgs,
            sans,
            usages,
        } = leaf;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = usages.to_vec();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&key.0, &self.issuer).unwrap();
        fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        fs::write(dir.join(format!("{name}.key")), key.1).unwrap();
    }
}

/// An RSA key whose file is PKCS#1 (`RSA PRIVATE KEY`), as kubeadm writes them.
pub fn rsa_key() -> (KeyPair, String) {
    let key = boot::pki::PrivateKey::generate(boot::pki::KeyAlgorithm::Rsa2048).unwrap();
    let pkcs1 = key.pem().to_string();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &key.pair().serialized_der().into(),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    (pair, pkcs1)
}

/// A P-256 key whose file is SEC1 (`EC PRIVATE KEY`) with the curve named, as Go and
/// OpenSSL write and require it (p256's `to_sec1_der` leaves the optional curve out, which
/// Go's `tls.X509KeyPair` rejects with "failed to parse private key").
pub fn ec_key() -> (KeyPair, String) {
    use p256::pkcs8::DecodePrivateKey;
    const NAMED_CURVE_P256: [u8; 12] = [
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let key = KeyPair::generate().unwrap();
    let bare = p256::SecretKey::from_pkcs8_der(key.serialized_der())
        .unwrap()
        .to_sec1_der()
        .unwrap();
    // SEQUENCE { INTEGER 1, OCTET STRING (32 bytes), [1] public key }: the curve goes before [1].
    assert_eq!((bare[0], bare[1], bare[5]), (0x30, 107, 0x04));
    let mut der = vec![0x30, bare[1] + NAMED_CURVE_P256.len() as u8];
    der.extend_from_slice(&bare[2..39]);
    der.extend_from_slice(&NAMED_CURVE_P256);
    der.extend_from_slice(&bare[39..]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    (
        key,
        format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
}

pub const SERVER: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth];
pub const CLIENT: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ClientAuth];
pub const BOTH: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// The cluster CA, an RSA serving cert for 127.0.0.1, an EC admin client cert, and the etcd
/// CA with etcd's (RSA) server cert and the apiserver's (EC) etcd client cert, so the
/// stand-in loads both PKCS#1 and SEC1 keys.
pub fn write_test_pki(dir: &Path) {
    let ca = Ca::new("kubernetes");
    fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
    let leaf = |name, cn, orgs, sans, usages| Leaf {
        name,
        cn,
        orgs,
        sans,
        usages,
    };
    let local: &[&str] = &["127.0.0.1", "localhost"];
    ca.issue(
        dir,
        leaf("apiserver", "kube-apiserver", &[], local, SERVER),
        rsa_key(),
    );
    let admin = leaf(
        "admin",
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
        &[],
        CLIENT,
    );
    ca.issue(dir, admin, ec_key());
    let etcd_ca = Ca::new("etcd-ca");
    fs::write(dir.join("etcd-ca.crt"), &etcd_ca.cert_pem).unwrap();
    etcd_ca.issue(
        dir,
        leaf("etcd-server", "standin-test", &[], local, BOTH),
        rsa_key(),
    );
    let etcd_client = leaf(
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        &[],
        &[],
        CLIENT,
    );
    etcd_ca.issue(dir, etcd_client, ec_key());
}

/// A kubeconfig for the admin cert, embedded as kubeadm writes them.
pub fn write_kubeconfig(dir: &Path, name: &str, port: u16) -> PathBuf {
    let b64 = |file: &str| {
        base64::engine::general_purpose::STANDARD.encode(fs::read(dir.join(file)).unwrap())
    };
    let path = dir.join(name);
    fs::write(&path, format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{port}\n\
         contexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64("ca.crt"), b64("admin.crt"), b64("admin.key"))).unwrap();
    path
}
