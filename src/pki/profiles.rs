//! The certificate profiles: kubeadm's certificate list, kept as data in `pki/profiles.yaml`
//! (embedded at build time) and parsed into typed structs. Pure; touches no host path.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use super::PkiError;

/// The profile table, embedded so the binary is self-contained.
const PROFILES_YAML: &str = include_str!("../../pki/profiles.yaml");

/// The placeholder a profile's CN may use for the node name (etcd server and peer certs).
const NODE_NAME_PLACEHOLDER: &str = "{nodeName}";

/// The whole table: the certificates in issuing order (every CA before its leaves) and the
/// service-account key pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    pub certificates: Vec<CertProfile>,
    pub service_account: KeyPairProfile,
}

/// One certificate and key pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProfile {
    /// kubeadm's certificate name, e.g. `apiserver`, `etcd-server`.
    pub name: String,
    /// Base name under the certificates directory, e.g. `etcd/server`.
    pub file: String,
    pub signer: Signer,
    pub cn: CommonName,
    #[serde(default)]
    pub o: Vec<String>,
    pub key_usages: Vec<KeyUsage>,
    #[serde(default)]
    pub ext_key_usages: Vec<ExtKeyUsage>,
    #[serde(default)]
    pub sans: Vec<SanRule>,
    /// Only issued with a local (stacked) etcd.
    #[serde(default)]
    pub local_etcd: bool,
}

/// The service-account key pair: `<file>.key` and `<file>.pub`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairProfile {
    pub name: String,
    pub file: String,
}

/// Who signs a certificate: itself (a CA) or the CA with that profile name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    SelfSigned,
    Ca(String),
}

/// A CN, literal or the node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommonName {
    Literal(String),
    NodeName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyUsage {
    DigitalSignature,
    KeyEncipherment,
    CertSign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtKeyUsage {
    ServerAuth,
    ClientAuth,
}

/// How a certificate's subject alternative names are built (see `sans.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SanRule {
    /// One DNS name equal to the CN (kubeadm's NewSelfSignedCACert).
    Ca,
    /// GetAPIServerAltNames.
    Apiserver,
    /// getAltNames(cfg, "server").
    EtcdServer,
    /// getAltNames(cfg, "peer").
    EtcdPeer,
}

impl<'de> Deserialize<'de> for Signer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "self" {
            Signer::SelfSigned
        } else {
            Signer::Ca(s)
        })
    }
}

impl<'de> Deserialize<'de> for CommonName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == NODE_NAME_PLACEHOLDER {
            Ok(CommonName::NodeName)
        } else if s.contains('{') || s.contains('}') {
            Err(serde::de::Error::custom(format!(
                "cn {s:?}: the only placeholder is {NODE_NAME_PLACEHOLDER}, on its own"
            )))
        } else {
            Ok(CommonName::Literal(s))
        }
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyUsage::DigitalSignature => "digital-signature",
            KeyUsage::KeyEncipherment => "key-encipherment",
            KeyUsage::CertSign => "cert-sign",
        })
    }
}

impl fmt::Display for ExtKeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtKeyUsage::ServerAuth => "server-auth",
            ExtKeyUsage::ClientAuth => "client-auth",
        })
    }
}

impl CommonName {
    pub fn resolve(&self, node_name: &str) -> String {
        match self {
            CommonName::Literal(cn) => cn.clone(),
            CommonName::NodeName => node_name.to_string(),
        }
    }
}

impl CertProfile {
    pub fn is_ca(&self) -> bool {
        self.signer == Signer::SelfSigned
    }
    pub fn crt_file(&self) -> String {
        format!("{}.crt", self.file)
    }
    pub fn key_file(&self) -> String {
        format!("{}.key", self.file)
    }
}

impl KeyPairProfile {
    pub fn key_file(&self) -> String {
        format!("{}.key", self.file)
    }
    pub fn pub_file(&self) -> String {
        format!("{}.pub", self.file)
    }
}

impl Profiles {
    /// Parses and checks a profile table.
    pub fn parse(yaml: &str) -> Result<Profiles, PkiError> {
        let profiles: Profiles = serde_yaml::from_str(yaml).map_err(|e| PkiError::Profiles {
            reason: e.to_string(),
        })?;
        profiles
            .check()
            .map_err(|reason| PkiError::Profiles { reason })?;
        Ok(profiles)
    }

    /// The embedded table, parsed once.
    pub fn embedded() -> Result<&'static Profiles, PkiError> {
        static PARSED: OnceLock<Result<Profiles, String>> = OnceLock::new();
        PARSED
            .get_or_init(|| Profiles::parse(PROFILES_YAML).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| PkiError::Profiles {
                reason: reason.clone(),
            })
    }

    /// The certificates to issue: all of them with a local etcd, otherwise kubeadm's
    /// GetCertsWithoutEtcd (no etcd CA and nothing it signs).
    pub fn selected(&self, local_etcd: bool) -> impl Iterator<Item = &CertProfile> {
        self.certificates
            .iter()
            .filter(move |p| local_etcd || !p.local_etcd)
    }

    pub fn find(&self, name: &str) -> Option<&CertProfile> {
        self.certificates.iter().find(|p| p.name == name)
    }

    /// The consistency rules kubeadm relies on; the first broken one is returned.
    fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        let mut files = HashSet::from([self.service_account.file.as_str()]);
        for (i, p) in self.certificates.iter().enumerate() {
            let at = format!("certificate {}", p.name);
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(format!("{at}: name is empty or used twice"));
            }
            if p.file.is_empty() || p.file.starts_with('/') || p.file.contains("..") {
                return Err(format!("{at}: file {:?} must be a relative path", p.file));
            }
            if !files.insert(p.file.as_str()) {
                return Err(format!("{at}: file {:?} is used twice", p.file));
            }
            if p.cn == CommonName::Literal(String::new()) {
                return Err(format!("{at}: a certificate needs a CN"));
            }
            let has = |u| p.key_usages.contains(&u);
            if !has(KeyUsage::DigitalSignature) || !has(KeyUsage::KeyEncipherment) {
                return Err(format!(
                    "{at}: needs digital-signature and key-encipherment"
                ));
            }
            match &p.signer {
                Signer::SelfSigned => {
                    if !has(KeyUsage::CertSign) || !p.ext_key_usages.is_empty() {
                        return Err(format!("{at}: a CA needs cert-sign and no ext_key_usages"));
                    }
                }
                Signer::Ca(signer) => {
                    // Signers come first, so issuing in table order always has the CA ready.
                    let ca = self.certificates[..i].iter().find(|c| &c.name == signer);
                    let Some(ca) = ca.filter(|c| c.is_ca()) else {
                        return Err(format!(
                            "{at}: signer {signer:?} is not a CA listed before it"
                        ));
                    };
                    if ca.local_etcd && !p.local_etcd {
                        return Err(format!(
                            "{at}: signed by local-etcd CA {signer} but not local_etcd"
                        ));
                    }
                    if has(KeyUsage::CertSign) || p.ext_key_usages.is_empty() {
                        // pki_helpers.go refuses a leaf without ExtKeyUsage.
                        return Err(format!(
                            "{at}: a leaf needs ext_key_usages and no cert-sign"
                        ));
                    }
                    if p.sans.contains(&SanRule::Ca) {
                        return Err(format!("{at}: SAN rule `ca` is for CAs only"));
                    }
                }
            }
        }
        if self.service_account.name.is_empty() {
            return Err("service_account: name is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_is_kubeadms_list() {
        let p = Profiles::embedded().unwrap();
        let names: Vec<_> = p.certificates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ca",
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-ca",
                "front-proxy-client",
                "etcd-ca",
                "etcd-server",
                "etcd-peer",
                "etcd-healthcheck-client",
                "apiserver-etcd-client"
            ]
        );
        let apiserver = p.find("apiserver").unwrap();
        assert_eq!(apiserver.signer, Signer::Ca("ca".into()));
        assert_eq!(apiserver.ext_key_usages, [ExtKeyUsage::ServerAuth]);
        assert_eq!(p.find("etcd-peer").unwrap().cn, CommonName::NodeName);
        assert_eq!(p.find("etcd-ca").unwrap().crt_file(), "etcd/ca.crt");
        assert_eq!(
            p.find("apiserver-kubelet-client").unwrap().o,
            ["kubeadm:cluster-admins"]
        );
        assert_eq!(p.service_account.pub_file(), "sa.pub");
    }

    #[test]
    fn external_etcd_drops_the_etcd_ca_and_everything_it_signs() {
        let p = Profiles::embedded().unwrap();
        let names: Vec<_> = p.selected(false).map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ca",
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-ca",
                "front-proxy-client"
            ]
        );
        for c in p.selected(false) {
            assert_ne!(c.signer, Signer::Ca("etcd-ca".into()), "{}", c.name);
        }
    }

    fn table_with(entry: &str) -> String {
        format!(
            "certificates:\n  - {{name: ca, file: ca, signer: self, cn: kubernetes, \
             key_usages: [digital-signature, key-encipherment, cert-sign], sans: [ca]}}\n  \
             - {entry}\nservice_account: {{name: sa, file: sa}}\n"
        )
    }

    fn broken(entry: &str) -> String {
        match Profiles::parse(&table_with(entry)) {
            Ok(_) => panic!("accepted: {entry}"),
            Err(e) => e.to_string(),
        }
    }

    const LEAF: &str = "key_usages: [digital-signature, key-encipherment]";

    #[test]
    fn a_valid_leaf_is_accepted() {
        let entry = format!(
            "{{name: x, file: x, signer: ca, cn: x, {LEAF}, ext_key_usages: [client-auth]}}"
        );
        Profiles::parse(&table_with(&entry)).unwrap();
    }

    #[test]
    fn inconsistent_tables_are_rejected() {
        let e = broken(&format!(
            "{{name: x, file: x, signer: nope, cn: x, {LEAF}, ext_key_usages: [client-auth]}}"
        ));
        assert!(e.contains("signer \"nope\""), "{e}");
        let e = broken(&format!("{{name: x, file: x, signer: ca, cn: x, {LEAF}}}"));
        assert!(e.contains("needs ext_key_usages"), "{e}");
        let e = broken(&format!(
            "{{name: x, file: ca, signer: ca, cn: x, {LEAF}, ext_key_usages: [client-auth]}}"
        ));
        assert!(e.contains("used twice"), "{e}");
        let e = broken(&format!("{{name: x, file: x, signer: ca, cn: \"{{node}}\", {LEAF}, ext_key_usages: [client-auth]}}"));
        assert!(e.contains("placeholder"), "{e}");
        let e = broken(&format!("{{name: x, file: x, signer: ca, cn: x, {LEAF}, ext_key_usages: [client-auth], colour: red}}"));
        assert!(e.contains("unknown field"), "{e}");
        let e = broken(&format!("{{name: x, file: x, signer: ca, cn: x, {LEAF}, ext_key_usages: [client-auth], sans: [ca]}}"));
        assert!(e.contains("CAs only"), "{e}");
        let e = broken(&format!(
            "{{name: x, file: ../x, signer: ca, cn: x, {LEAF}, ext_key_usages: [client-auth]}}"
        ));
        assert!(e.contains("relative path"), "{e}");
    }
}
