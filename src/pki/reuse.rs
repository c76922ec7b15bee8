//! What is already in the certificates directory and whether it may be reused (kubeadm's
//! certs.go rules, reference §2). [`ExistingPki::load`] is the PKI's only I/O: it reads the
//! files the profiles name under the certificates directory (`/etc/kubernetes/pki` by default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::inspect::{format_time, CertFacts};
use super::keys::PrivateKey;
use super::profiles::{CertProfile, Profiles};
use super::sans::AltNames;
use super::PkiError;

/// The PKI files found on disk: name relative to the certificates directory -> content.
#[derive(Debug, Clone, Default)]
pub struct ExistingPki {
    files: BTreeMap<String, Vec<u8>>,
}

impl ExistingPki {
    pub fn empty() -> Self {
        ExistingPki::default()
    }

    /// Reads every certificate, key and service-account file the profiles name. Missing files
    /// (or a missing directory) are simply absent; any other read error is returned.
    pub fn load(cert_dir: &Path) -> Result<Self, PkiError> {
        let profiles = Profiles::embedded()?;
        let sa = &profiles.service_account;
        let names = profiles
            .certificates
            .iter()
            .flat_map(|p| [p.crt_file(), p.key_file()])
            .chain([sa.key_file(), sa.pub_file()]);
        let mut existing = ExistingPki::empty();
        for name in names {
            let path = cert_dir.join(&name);
            match std::fs::read(&path) {
                Ok(bytes) => existing.files.insert(name, bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(PkiError::Read { path, source }),
            };
        }
        Ok(existing)
    }

    /// Adds a file (name relative to the certificates directory), e.g. for tests.
    pub fn with_file(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.insert(name.into(), bytes.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What exists of one certificate's pair.
pub enum Found {
    Nothing,
    /// Only the certificate: an external CA, or an error for a leaf.
    CertOnly(CertFacts),
    /// Both files, and the key belongs to the certificate.
    Pair(CertFacts, Box<PrivateKey>),
}

/// Loads a certificate's pair from `existing`. A key without its certificate is an error, and so
/// is a key that does not belong to its certificate.
pub fn find_pair(
    profile: &CertProfile,
    existing: &ExistingPki,
    dir: &Path,
) -> Result<Found, PkiError> {
    let (crt_path, key_path) = (dir.join(profile.crt_file()), dir.join(profile.key_file()));
    let crt = existing.get(&profile.crt_file());
    let key = existing.get(&profile.key_file());
    let facts = match crt {
        Some(bytes) => CertFacts::from_pem(bytes, &crt_path)?,
        None if key.is_some() => {
            return Err(PkiError::IncompletePair {
                present: key_path,
                missing: crt_path,
            })
        }
        None => return Ok(Found::Nothing),
    };
    let Some(key) = key else {
        return Ok(Found::CertOnly(facts));
    };
    let key = std::str::from_utf8(key)
        .map_err(|e| e.to_string())
        .and_then(PrivateKey::from_pem)
        .map_err(|reason| PkiError::ParseKey {
            path: key_path.clone(),
            reason,
        })?;
    if key.public_key_raw() != facts.public_key_raw.as_slice() {
        return Err(PkiError::KeyMismatch {
            cert: crt_path,
            key: key_path,
        });
    }
    Ok(Found::Pair(facts, Box::new(key)))
}

/// A certificate must be valid at `now` to be reused.
pub fn check_validity(
    name: &str,
    facts: &CertFacts,
    path: &Path,
    now: SystemTime,
    hint: &'static str,
) -> Result<(), PkiError> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now < facts.not_before || now >= facts.not_after {
        return Err(PkiError::OutsideValidity {
            name: name.to_string(),
            path: path.to_path_buf(),
            not_before: format_time(facts.not_before),
            not_after: format_time(facts.not_after),
            hint,
        });
    }
    Ok(())
}

/// An existing CA must be a CA (kubeadm's LoadCertificateAuthority) and valid now.
pub fn check_ca(
    profile: &CertProfile,
    facts: &CertFacts,
    dir: &Path,
    now: SystemTime,
) -> Result<(), PkiError> {
    let path = dir.join(profile.crt_file());
    if !facts.is_ca || !facts.has_key_usage(super::profiles::KeyUsage::CertSign) {
        return Err(PkiError::NotACa { path });
    }
    let hint = "renew the CA or remove it, its key and every certificate it signed";
    check_validity(&profile.name, facts, &path, now, hint)
}

/// What a leaf found on disk must satisfy: signed by its CA, valid now, and its profile.
pub struct LeafExpectation<'a> {
    pub profile: &'a CertProfile,
    pub cn: &'a str,
    pub alt_names: &'a AltNames,
    pub ca: &'a CertFacts,
    pub ca_path: PathBuf,
}

/// kubeadm's checks of an existing leaf: signed by its CA (`validateSignedCertWithCA`), valid
/// now, and covering every SAN of the configuration (`validateCertificateWithConfig`, with
/// `VerifyHostname`'s wildcards). Those are errors. kubeadm does not look at the CN, O, usages
/// or the CA flag: differences there are returned as warnings, and the leaf is reused.
pub fn check_leaf(
    want: &LeafExpectation,
    facts: &CertFacts,
    dir: &Path,
    now: SystemTime,
) -> Result<Vec<String>, PkiError> {
    let name = want.profile.name.clone();
    let path = dir.join(want.profile.crt_file());
    if let Err(reason) = facts.verify_signed_by(want.ca) {
        return Err(PkiError::NotSignedByCa {
            name,
            path,
            ca: want.ca_path.clone(),
            reason,
        });
    }
    if let Some(missing) = missing_sans(want, facts) {
        return Err(PkiError::ProfileMismatch {
            name,
            path,
            differences: missing,
        });
    }
    check_validity(
        &name,
        facts,
        &path,
        now,
        "renew it or remove it to have it re-issued",
    )?;
    let differences = profile_differences(want, facts);
    Ok(if differences.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "certificate {name} ({}) is reused as kubeadm would (signed by its CA, SANs present), \
             but differs from kubeadm's profile: {}; remove it to have it re-issued",
            path.display(),
            differences.join("; ")
        )]
    })
}

/// The configured SANs `facts` does not cover, as `SANs DNS:a, IP:b are missing`.
pub fn missing_sans(want: &LeafExpectation, facts: &CertFacts) -> Option<String> {
    let covered = |d: &String| facts.dns.iter().any(|f| matches_hostname(f, d));
    let missing: Vec<String> = (want.alt_names.dns.iter())
        .filter(|d| !covered(d))
        .map(|d| format!("DNS:{d}"))
        .chain(
            want.alt_names
                .ips
                .iter()
                .filter(|ip| !facts.ips.contains(ip))
                .map(|ip| format!("IP:{ip}")),
        )
        .collect();
    (!missing.is_empty()).then(|| format!("SANs {} are missing", missing.join(", ")))
}

/// Go's `VerifyHostname` for DNS names: case-insensitive, a leading `*.` matches one label.
fn matches_hostname(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    let (pattern, host) = (pattern.trim_end_matches('.'), host.trim_end_matches('.'));
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// How `facts` differs from the profile beyond what kubeadm checks: CN and O exactly, not a CA,
/// the profile's usages at least.
pub fn profile_differences(want: &LeafExpectation, facts: &CertFacts) -> Vec<String> {
    let p = want.profile;
    let mut diffs = Vec::new();
    if facts.cn.as_deref() != Some(want.cn) {
        diffs.push(format!(
            "CN is {:?}, expected {:?}",
            facts.cn.as_deref().unwrap_or(""),
            want.cn
        ));
    }
    let (mut have_o, mut want_o) = (facts.orgs.clone(), p.o.clone());
    have_o.sort();
    want_o.sort();
    if have_o != want_o {
        diffs.push(format!("O is {have_o:?}, expected {want_o:?}"));
    }
    if facts.is_ca {
        diffs.push("it is a CA, expected a leaf certificate".into());
    }
    for usage in p.key_usages.iter().filter(|u| !facts.has_key_usage(**u)) {
        diffs.push(format!("key usage {usage} is missing"));
    }
    for usage in p
        .ext_key_usages
        .iter()
        .filter(|u| !facts.has_ext_key_usage(**u))
    {
        diffs.push(format!("ext key usage {usage} is missing"));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::tests_support::request;
    use crate::pki::{issue, sans::alt_names, Pki, PkiRequest};

    /// Issues a fresh PKI and returns it with the files as they would be found on disk.
    fn issued(req: &PkiRequest) -> (Pki, ExistingPki) {
        let pki = issue(req, &ExistingPki::empty()).unwrap();
        let existing = pki.files.iter().fold(ExistingPki::empty(), |e, f| {
            let name = f
                .path
                .strip_prefix(&req.cert_dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            e.with_file(name, f.bytes.clone())
        });
        (pki, existing)
    }

    fn facts(existing: &ExistingPki, name: &str) -> CertFacts {
        CertFacts::from_pem(existing.get(name).unwrap(), Path::new(name)).unwrap()
    }

    #[test]
    fn profile_differences_lists_everything_that_differs() {
        let req = request();
        let (_, existing) = issued(&req);
        let profiles = Profiles::embedded().unwrap();
        let etcd_server = profiles.find("etcd-server").unwrap();
        let sans = alt_names(
            &etcd_server.sans,
            "node1",
            "etcd-server",
            &req,
            &mut Vec::new(),
        );
        let ca = facts(&existing, "ca.crt");
        let want = LeafExpectation {
            profile: etcd_server,
            cn: "node1",
            alt_names: &sans,
            ca: &ca,
            ca_path: "ca.crt".into(),
        };
        let apiserver = facts(&existing, "apiserver.crt");
        let diffs = profile_differences(&want, &apiserver);
        assert_eq!(
            diffs,
            [
                "CN is \"kube-apiserver\", expected \"node1\"",
                "ext key usage client-auth is missing",
            ]
        );
        assert_eq!(
            missing_sans(&want, &apiserver).as_deref(),
            Some("SANs DNS:localhost, IP:127.0.0.1, IP:::1 are missing")
        );
        let same = LeafExpectation {
            profile: profiles.find("apiserver").unwrap(),
            cn: "kube-apiserver",
            ..want
        };
        let apiserver_sans = alt_names(
            &[crate::pki::SanRule::Apiserver],
            "",
            "apiserver",
            &req,
            &mut Vec::new(),
        );
        let same = LeafExpectation {
            alt_names: &apiserver_sans,
            ..same
        };
        assert!(profile_differences(&same, &facts(&existing, "apiserver.crt")).is_empty());
        assert_eq!(
            missing_sans(&same, &facts(&existing, "apiserver.crt")),
            None
        );
    }

    #[test]
    fn wildcards_match_one_label_as_go_verify_hostname() {
        assert!(matches_hostname("*.example.com", "api.example.com"));
        assert!(matches_hostname("API.example.com.", "api.EXAMPLE.com"));
        assert!(!matches_hostname("*.example.com", "a.b.example.com"));
        assert!(!matches_hostname("*.example.com", "example.com"));
    }

    #[test]
    fn a_key_without_its_certificate_is_an_error() {
        let req = request();
        let (_, existing) = issued(&req);
        let key = existing.get("etcd/ca.key").unwrap().to_vec();
        let only_key = ExistingPki::empty().with_file("etcd/ca.key", key);
        let err = issue(&req, &only_key).unwrap_err().to_string();
        assert!(
            err.contains("etcd/ca.key exists but") && err.contains("etcd/ca.crt does not"),
            "{err}"
        );
    }

    #[test]
    fn an_expired_leaf_is_an_error_naming_it() {
        let mut req = request();
        req.cert_validity = Duration::from_secs(3600);
        let (_, existing) = issued(&req);
        req.now += Duration::from_secs(2 * 3600);
        let err = issue(&req, &existing).unwrap_err();
        assert!(
            matches!(err, PkiError::OutsideValidity { ref name, .. } if name == "apiserver"),
            "{err}"
        );
        assert!(err.to_string().contains("renew it or remove it"), "{err}");
    }
}
