//! The PKI issued into a temporary directory, read back with x509-parser and `openssl verify`:
//! chains, subjects, usages, SANs, validity, key algorithms, PEM labels, file modes, and kubeadm's
//! reuse rules (reuse, tampered leaves, external CA). Advertise addresses are TEST-NET-1
//! (192.0.2.0/24): they are only written into certificates, never contacted.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "common/require.rs"]
mod require;

use boot::pki::{self, CertAction, ExistingPki, KeyAlgorithm, Pki, PkiError, PkiRequest};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

const DAY: u64 = 24 * 3600;

fn request(dir: &Path, alg: KeyAlgorithm) -> PkiRequest {
    let advertise: IpAddr = "192.0.2.10".parse().unwrap();
    let mut req = PkiRequest::with_defaults(dir.join("pki"), "node1", advertise);
    req.algorithm = alg;
    // Whole seconds, so the expected NotBefore/NotAfter are exact.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    req.now = UNIX_EPOCH + Duration::from_secs(secs);
    req
}

fn issue_and_write(req: &PkiRequest) -> Pki {
    let existing = ExistingPki::load(&req.cert_dir).unwrap();
    let pki = pki::issue(req, &existing).unwrap();
    boot::host::write_all(&pki.files).unwrap();
    pki
}

fn unix(req: &PkiRequest) -> i64 {
    req.now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn der_of(path: &Path) -> Vec<u8> {
    let text = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let block = ::pem::parse(text).unwrap();
    assert_eq!(block.tag(), "CERTIFICATE", "{}", path.display());
    block.into_contents()
}

/// What one certificate must look like, independently of the profile table.
struct Expect {
    file: &'static str,
    /// The file of the CA that signs it (itself for a CA).
    signer: &'static str,
    cn: &'static str,
    orgs: &'static [&'static str],
    server_auth: bool,
    client_auth: bool,
}

const fn expect(
    file: &'static str,
    signer: &'static str,
    cn: &'static str,
    orgs: &'static [&'static str],
    (server_auth, client_auth): (bool, bool),
) -> Expect {
    Expect {
        file,
        signer,
        cn,
        orgs,
        server_auth,
        client_auth,
    }
}

/// kubeadm's certificate list (reference §2), written out by hand.
fn expected(local_etcd: bool) -> Vec<Expect> {
    const SERVER: (bool, bool) = (true, false);
    const CLIENT: (bool, bool) = (false, true);
    const BOTH: (bool, bool) = (true, true);
    const CA: (bool, bool) = (false, false);
    let mut all = vec![
        expect("ca", "ca", "kubernetes", &[], CA),
        expect("apiserver", "ca", "kube-apiserver", &[], SERVER),
        expect(
            "apiserver-kubelet-client",
            "ca",
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins"],
            CLIENT,
        ),
        expect(
            "front-proxy-ca",
            "front-proxy-ca",
            "front-proxy-ca",
            &[],
            CA,
        ),
        expect(
            "front-proxy-client",
            "front-proxy-ca",
            "front-proxy-client",
            &[],
            CLIENT,
        ),
    ];
    if local_etcd {
        all.extend([
            expect("etcd/ca", "etcd/ca", "etcd-ca", &[], CA),
            expect("etcd/server", "etcd/ca", "node1", &[], BOTH),
            expect("etcd/peer", "etcd/ca", "node1", &[], BOTH),
            expect(
                "etcd/healthcheck-client",
                "etcd/ca",
                "kube-etcd-healthcheck-client",
                &[],
                CLIENT,
            ),
            expect(
                "apiserver-etcd-client",
                "etcd/ca",
                "kube-apiserver-etcd-client",
                &[],
                CLIENT,
            ),
        ]);
    }
    all
}

fn sans_of(cert: &X509Certificate) -> (Vec<String>, Vec<String>) {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(san) = cert.subject_alternative_name().unwrap() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string())
                }
                GeneralName::IPAddress(b) => {
                    ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string())
                }
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (dns, ips)
}

/// Checks every certificate and key of an issued PKI on disk.
fn check_pki(req: &PkiRequest, key_check: impl Fn(&X509Certificate)) {
    let dir = &req.cert_dir;
    let now = unix(req);
    for Expect {
        file,
        signer,
        cn,
        orgs,
        server_auth: server,
        client_auth: client,
    } in expected(req.local_etcd)
    {
        let crt = dir.join(format!("{file}.crt"));
        let der = der_of(&crt);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ca_der = der_of(&dir.join(format!("{signer}.crt")));
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca.public_key()))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw(), "{file}");

        let got_cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(got_cn, [cn], "{file}");
        let got_o: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(got_o, orgs, "{file}");

        let is_ca = file == signer;
        let bc = cert
            .basic_constraints()
            .unwrap()
            .expect("basic constraints");
        assert_eq!(bc.value.ca, is_ca, "{file}");
        assert!(
            bc.critical && bc.value.path_len_constraint.is_none(),
            "{file}"
        );
        let ku = cert.key_usage().unwrap().expect("key usage").value;
        assert!(ku.digital_signature() && ku.key_encipherment(), "{file}");
        assert_eq!(ku.key_cert_sign(), is_ca, "{file}");
        match cert.extended_key_usage().unwrap() {
            Some(eku) => {
                assert!(!is_ca, "{file}: a CA without ext key usage");
                assert_eq!(
                    (eku.value.server_auth, eku.value.client_auth),
                    (server, client),
                    "{file}"
                );
            }
            None => assert!(is_ca, "{file}: no ext key usage"),
        }
        let raw = cert.raw_serial();
        assert!(raw.len() <= 9, "{file}: serial {raw:?}");
        let serial = raw.iter().fold(0u128, |acc, b| acc << 8 | u128::from(*b));
        assert!(
            serial >= 1 && serial < i64::MAX as u128,
            "{file}: serial {serial}"
        );

        let validity = if is_ca {
            req.ca_validity
        } else {
            req.cert_validity
        };
        assert_eq!(
            cert.validity().not_before.timestamp(),
            now - 300,
            "{file}: backdated 5 minutes"
        );
        assert_eq!(
            cert.validity().not_after.timestamp(),
            now + validity.as_secs() as i64,
            "{file}"
        );

        let (dns, ips) = sans_of(&cert);
        match file {
            "apiserver" => {
                assert_eq!(
                    dns,
                    [
                        "node1",
                        "kubernetes",
                        "kubernetes.default",
                        "kubernetes.default.svc",
                        "kubernetes.default.svc.cluster.local"
                    ]
                );
                assert_eq!(ips, ["10.96.0.1", "192.0.2.10"]);
            }
            "etcd/server" | "etcd/peer" => {
                assert_eq!(dns, ["node1", "localhost"], "{file}");
                assert_eq!(ips, ["192.0.2.10", "127.0.0.1", "::1"], "{file}");
            }
            _ if is_ca => assert_eq!((dns, ips), (vec![cn.to_string()], vec![]), "{file}"),
            _ => assert_eq!((dns.len(), ips.len()), (0, 0), "{file}"),
        }
        key_check(&cert);

        let key = dir.join(format!("{file}.key"));
        assert_mode(&crt, 0o644);
        assert_mode(&key, 0o600);
        let key_label = ::pem::parse(fs::read(&key).unwrap())
            .unwrap()
            .tag()
            .to_string();
        let want_label = if req.algorithm.to_string().starts_with("RSA") {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert_eq!(key_label, want_label, "{file}");
        assert_key_matches(&key, &crt);
    }
    assert_mode(&dir.join("sa.key"), 0o600);
    assert_mode(&dir.join("sa.pub"), 0o600);
    let sa_pub = ::pem::parse(fs::read(dir.join("sa.pub")).unwrap()).unwrap();
    assert_eq!(sa_pub.tag(), "PUBLIC KEY");
    openssl_verify(req);
}

fn assert_mode(path: &Path, mode: u32) {
    let got = fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(got & 0o777, mode, "{}", path.display());
}

/// The key's public half is the certificate's (checked through the library's own key parser
/// and the certificate's SPKI).
fn assert_key_matches(key: &Path, crt: &Path) {
    let key = pki::PrivateKey::from_pem(&fs::read_to_string(key).unwrap()).unwrap();
    let der = der_of(crt);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref(),
        "{}",
        crt.display()
    );
}

fn openssl_available() -> bool {
    require::tool("openssl").is_some()
}

/// `openssl verify -CAfile <ca> <cert>` for every leaf, and the CAs against themselves.
fn openssl_verify(req: &PkiRequest) {
    if !openssl_available() {
        return;
    }
    for Expect { file, signer, .. } in expected(req.local_etcd) {
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(req.cert_dir.join(format!("{signer}.crt")))
            .arg(req.cert_dir.join(format!("{file}.crt")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains(": OK"),
            "openssl verify {file}: {text}"
        );
    }
}

fn curve_oid(cert: &X509Certificate) -> String {
    let params = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .expect("EC parameters");
    params.as_oid().unwrap().to_id_string()
}

#[test]
fn rsa_2048_pki_matches_kubeadm() {
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::Rsa2048);
    let pki = issue_and_write(&req);
    assert!(!pki.external_ca && pki.warnings.is_empty());
    assert!(pki
        .outcomes
        .iter()
        .all(|o| o.action == CertAction::Generated));
    assert_eq!(pki.files.len(), 22, "10 certs and keys, sa.key and sa.pub");
    check_pki(&req, |cert| match cert.public_key().parsed().unwrap() {
        PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        _ => panic!("not RSA"),
    });
    let sa_key = fs::read_to_string(req.cert_dir.join("sa.key")).unwrap();
    assert!(sa_key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    let ca_crt = fs::read_to_string(req.cert_dir.join("ca.crt")).unwrap();
    assert_eq!(pki.ca_cert_pem(), ca_crt);
}

#[test]
fn ecdsa_p256_pki_with_custom_validity() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    req.cert_validity = Duration::from_secs(30 * DAY);
    req.ca_validity = Duration::from_secs(400 * DAY);
    issue_and_write(&req);
    check_pki(&req, |cert| {
        assert_eq!(curve_oid(cert), "1.2.840.10045.3.1.7")
    });
    let ca = der_of(&req.cert_dir.join("ca.crt"));
    let (_, ca) = X509Certificate::from_der(&ca).unwrap();
    assert_eq!(
        ca.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2",
        "ecdsa-with-SHA256"
    );
}

#[test]
fn ecdsa_p384_pki() {
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP384);
    issue_and_write(&req);
    check_pki(&req, |cert| {
        assert_eq!(curve_oid(cert), "1.3.132.0.34");
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.3",
            "ecdsa-with-SHA384"
        );
    });
}

/// RSA-4096 key generation is slow in debug builds, so only the front-proxy CA and its client are
/// issued with it (two keys, generated in parallel) into an otherwise ECDSA external-etcd PKI.
#[test]
fn rsa_4096_front_proxy_ca_and_client() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    req.local_etcd = false;
    let first = issue_and_write(&req);
    assert_eq!(first.files.len(), 12, "5 certs and keys, sa.key and sa.pub");
    assert!(
        !req.cert_dir.join("etcd").exists(),
        "external etcd: no etcd CA"
    );
    for f in [
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "front-proxy-client.crt",
        "front-proxy-client.key",
    ] {
        fs::remove_file(req.cert_dir.join(f)).unwrap();
    }
    req.algorithm = KeyAlgorithm::Rsa4096;
    let second = issue_and_write(&req);
    assert_eq!(second.files.len(), 4);
    for file in ["front-proxy-ca", "front-proxy-client"] {
        let crt = req.cert_dir.join(format!("{file}.crt"));
        let der = der_of(&crt);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        match cert.public_key().parsed().unwrap() {
            PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 4096, "{file}"),
            _ => panic!("{file}: not RSA"),
        }
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11",
            "sha256WithRSA"
        );
        let key = req.cert_dir.join(format!("{file}.key"));
        assert_eq!(
            ::pem::parse(fs::read(&key).unwrap()).unwrap().tag(),
            "RSA PRIVATE KEY"
        );
        assert_key_matches(&key, &crt);
    }
    openssl_verify(&req);
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn second_issue_reuses_everything_and_fills_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    issue_and_write(&req);
    let before = snapshot(&req.cert_dir);

    let again = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap();
    assert!(
        again.files.is_empty(),
        "rewrote {:?}",
        again.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| o.action == CertAction::Reused),
        "{:?}",
        again.outcomes
    );
    assert_eq!(
        again.ca_cert_pem().as_bytes(),
        before[&req.cert_dir.join("ca.crt")]
    );

    // A missing leaf and a missing sa.pub are issued again with the same CA; nothing else moves.
    fs::remove_file(req.cert_dir.join("apiserver.crt")).unwrap();
    fs::remove_file(req.cert_dir.join("apiserver.key")).unwrap();
    fs::remove_file(req.cert_dir.join("sa.pub")).unwrap();
    let later = PkiRequest {
        now: req.now + Duration::from_secs(60),
        ..req.clone()
    };
    let third = issue_and_write(&later);
    let mut written: Vec<_> = third
        .files
        .iter()
        .map(|f| f.path.strip_prefix(&req.cert_dir).unwrap().to_path_buf())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            PathBuf::from("apiserver.crt"),
            "apiserver.key".into(),
            "sa.pub".into()
        ]
    );
    let after = snapshot(&req.cert_dir);
    assert_eq!(
        after[&req.cert_dir.join("sa.pub")],
        before[&req.cert_dir.join("sa.pub")],
        "re-derived from sa.key"
    );
    assert_eq!(
        after[&req.cert_dir.join("ca.crt")],
        before[&req.cert_dir.join("ca.crt")]
    );
    let der = der_of(&req.cert_dir.join("apiserver.crt"));
    let (_, apiserver) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        apiserver.validity().not_before.timestamp(),
        unix(&later) - 300
    );
    openssl_verify(&req);
}

/// Issues a PKI, lets `tamper` change the files, and returns the error of the next issue.
fn issue_after(tamper: impl FnOnce(&PkiRequest, &Pki)) -> PkiError {
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    let pki = issue_and_write(&req);
    tamper(&req, &pki);
    match pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()) {
        Ok(_) => panic!("the tampered PKI was accepted"),
        Err(e) => e,
    }
}

#[test]
fn leaf_signed_by_another_ca_is_rejected() {
    let err = issue_after(|req, _| {
        let other = tempfile::tempdir().unwrap();
        let other_req = request(other.path(), KeyAlgorithm::EcdsaP256);
        issue_and_write(&other_req);
        for f in ["apiserver.crt", "apiserver.key"] {
            fs::copy(other_req.cert_dir.join(f), req.cert_dir.join(f)).unwrap();
        }
    });
    let msg = err.to_string();
    assert!(
        matches!(err, PkiError::NotSignedByCa { ref name, .. } if name == "apiserver"),
        "{msg}"
    );
    assert!(
        msg.contains("apiserver.crt") && msg.contains("ca.crt") && msg.contains("remove it"),
        "{msg}"
    );
}

#[test]
fn leaf_with_another_subject_is_reused_with_a_warning_as_kubeadm_accepts_it() {
    // A client cert signed by the right CA, with another CN and O than kubeadm's profile:
    // kubeadm checks an existing leaf's signature and SANs only, so it is reused, with a warning.
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    let pki = issue_and_write(&req);
    let creds = pki
        .client_credentials("mallory", &["system:masters"])
        .unwrap();
    let crt = req.cert_dir.join("apiserver-kubelet-client.crt");
    fs::write(&crt, &creds.cert_pem).unwrap();
    fs::write(
        req.cert_dir.join("apiserver-kubelet-client.key"),
        creds.key_pem,
    )
    .unwrap();
    let again = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap();
    assert!(again.files.is_empty(), "nothing re-issued");
    let outcome = again
        .outcomes
        .iter()
        .find(|o| o.name == "apiserver-kubelet-client")
        .unwrap();
    assert_eq!(outcome.action, CertAction::Reused);
    let warning = again
        .warnings
        .iter()
        .find(|w| w.contains("apiserver-kubelet-client"))
        .unwrap_or_else(|| panic!("no warning in {:?}", again.warnings));
    assert!(
        warning.contains("CN is \"mallory\", expected \"kube-apiserver-kubelet-client\"")
            && warning.contains("kubeadm:cluster-admins")
            && warning.contains("remove it"),
        "{warning}"
    );
    assert_eq!(fs::read_to_string(&crt).unwrap(), creds.cert_pem);
}

#[test]
fn apiserver_missing_a_new_san_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    issue_and_write(&req);
    req.apiserver_cert_sans = vec!["api.example.com".into()];
    let err = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("SANs DNS:api.example.com are missing"),
        "{err}"
    );
}

#[test]
fn mismatched_or_non_ca_files_are_rejected() {
    let err = issue_after(|req, _| {
        fs::copy(
            req.cert_dir.join("front-proxy-ca.key"),
            req.cert_dir.join("ca.key"),
        )
        .unwrap();
    });
    assert!(
        matches!(err, PkiError::KeyMismatch { ref key, .. } if key.ends_with("ca.key")),
        "{err}"
    );

    let err = issue_after(|req, _| {
        fs::copy(
            req.cert_dir.join("apiserver.crt"),
            req.cert_dir.join("ca.crt"),
        )
        .unwrap();
        fs::copy(
            req.cert_dir.join("apiserver.key"),
            req.cert_dir.join("ca.key"),
        )
        .unwrap();
    });
    assert!(
        matches!(err, PkiError::NotACa { ref path } if path.ends_with("pki/ca.crt")),
        "{err}"
    );

    let err = issue_after(|req, _| fs::remove_file(req.cert_dir.join("etcd/peer.key")).unwrap());
    assert!(err.to_string().contains("peer.crt exists but"), "{err}");

    let err = issue_after(|req, _| {
        fs::write(req.cert_dir.join("front-proxy-client.crt"), "garbage").unwrap()
    });
    assert!(err.to_string().contains("front-proxy-client.crt"), "{err}");

    let err = issue_after(|req, _| {
        fs::copy(
            req.cert_dir.join("apiserver.key"),
            req.cert_dir.join("sa.key"),
        )
        .unwrap();
    });
    assert!(
        matches!(err, PkiError::ServiceAccountMismatch { .. }),
        "{err}"
    );
}

#[test]
fn ca_without_key_is_external_ca_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    issue_and_write(&req);
    fs::remove_file(req.cert_dir.join("ca.key")).unwrap();

    let pki = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap();
    assert!(pki.external_ca);
    assert!(pki.files.is_empty());
    assert_eq!(pki.outcomes[0].action, CertAction::ExternalCa);
    let err = pki
        .client_credentials("kubernetes-admin", &["kubeadm:cluster-admins"])
        .unwrap_err();
    assert!(err.to_string().contains("external CA"), "{err}");

    fs::remove_file(req.cert_dir.join("apiserver.crt")).unwrap();
    fs::remove_file(req.cert_dir.join("apiserver.key")).unwrap();
    let err = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap_err();
    assert!(
        matches!(err, PkiError::ExternalCaMissingLeaf { ref name, .. } if name == "apiserver"),
        "{err}"
    );
}

#[test]
fn client_credentials_are_client_certs_signed_by_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    req.cert_validity = Duration::from_secs(10 * DAY);
    let pki = issue_and_write(&req);
    let creds = pki
        .client_credentials("system:node:node1", &["system:nodes"])
        .unwrap();
    assert!(creds
        .key_pem
        .starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    let der = ::pem::parse(&creds.cert_pem).unwrap().into_contents();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ca = der_of(&req.cert_dir.join("ca.crt"));
    let (_, ca) = X509Certificate::from_der(&ca).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let o: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!((cn, o), (vec!["system:node:node1"], vec!["system:nodes"]));
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_eq!(
        cert.validity().not_after.timestamp(),
        unix(&req) + 10 * DAY as i64
    );
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);

    if openssl_available() {
        let crt = tmp.path().join("client.crt");
        fs::write(&crt, &creds.cert_pem).unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(req.cert_dir.join("ca.crt"))
            .arg(&crt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn invalid_cert_sans_are_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    req.local_etcd = false;
    req.apiserver_cert_sans = vec![
        "not a name".into(),
        "10.0.0.5".into(),
        "*.example.com".into(),
    ];
    req.control_plane_endpoint_host = Some("cp.example.com".into());
    let pki = issue_and_write(&req);
    assert_eq!(pki.warnings.len(), 1, "{:?}", pki.warnings);
    assert!(pki.warnings[0].contains("\"not a name\""));
    let der = der_of(&req.cert_dir.join("apiserver.crt"));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let (dns, ips) = sans_of(&cert);
    assert!(
        dns.contains(&"cp.example.com".to_string()) && dns.contains(&"*.example.com".to_string()),
        "{dns:?}"
    );
    assert!(ips.contains(&"10.0.0.5".to_string()), "{ips:?}");
}

/// A CA made by openssl (PKCS#8 RSA key, SHA-1 key identifiers, its own subject) is reused, and
/// the leaves issued under it verify with openssl.
#[test]
fn openssl_made_ca_is_reused() {
    if !openssl_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let req = request(tmp.path(), KeyAlgorithm::EcdsaP256);
    fs::create_dir_all(&req.cert_dir).unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
        ])
        .arg("/O=Example Corp/CN=example-root")
        .args([
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ])
        .arg("-keyout")
        .arg(req.cert_dir.join("ca.key"))
        .arg("-out")
        .arg(req.cert_dir.join("ca.crt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_before = fs::read(req.cert_dir.join("ca.crt")).unwrap();
    // openssl's NotBefore is its own "now", which may be later than the request's whole second.
    let req = PkiRequest {
        now: req.now + Duration::from_secs(2),
        ..req
    };

    let pki = issue_and_write(&req);
    assert!(!pki.external_ca);
    assert_eq!(pki.outcomes[0].action, CertAction::Reused);
    assert_eq!(fs::read(req.cert_dir.join("ca.crt")).unwrap(), ca_before);
    let creds = pki
        .client_credentials("kubernetes-admin", &["kubeadm:cluster-admins"])
        .unwrap();
    let client = tmp.path().join("admin.crt");
    fs::write(&client, creds.cert_pem).unwrap();
    for leaf in [
        req.cert_dir.join("apiserver.crt"),
        req.cert_dir.join("apiserver-kubelet-client.crt"),
        client,
    ] {
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(req.cert_dir.join("ca.crt"))
            .arg(&leaf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            leaf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And the reuse check accepts what it issued under the foreign CA.
    let again = pki::issue(&req, &ExistingPki::load(&req.cert_dir).unwrap()).unwrap();
    assert!(again.files.is_empty());
}

/// External CA mode (`ca.key` removed): the kubeconfigs cannot be signed, so each must exist with
/// the cluster CA; a missing one fails naming it, as kubeadm's `ValidateKubeconfigsForExternalCA`.
#[test]
fn external_ca_mode_checks_every_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let config = tmp.path().join("config.yaml");
    fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  \
         advertiseAddress: 192.0.2.10\nnodeRegistration:\n  name: node1\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         kubernetesVersion: v1.34.2\nencryptionAlgorithm: ECDSA-P256\n",
    )
    .unwrap();
    let phase = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_boot"))
            .args(["init", "phase", name, "--root"])
            .arg(&root)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let shown = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for name in ["certs", "kubeconfig"] {
        let out = phase(name);
        assert!(out.status.success(), "{}", shown(&out));
    }
    let kubernetes = root.join("etc/kubernetes");
    fs::remove_file(kubernetes.join("pki/ca.key")).unwrap();
    let out = phase("kubeconfig");
    assert!(out.status.success(), "all present: {}", shown(&out));

    fs::remove_file(kubernetes.join("scheduler.conf")).unwrap();
    let out = phase("kubeconfig");
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("scheduler.conf does not exist") && text.contains("external CA"),
        "{text}"
    );
    assert!(!kubernetes.join("scheduler.conf").exists());
}
