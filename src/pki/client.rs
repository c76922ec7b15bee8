//! Client certificates for the kubeconfig files (reference §3): signed by the cluster CA,
//! ExtKeyUsage ClientAuth, the leaf validity of the PKI. Pure; touches no host path.

use super::keys::generate_keys;
use super::profiles::{ExtKeyUsage, KeyUsage};
use super::sans::AltNames;
use super::sign::{cert_pem, sign, CertSpec, Signer};
use super::{ClientCredentials, Pki, PkiError};

/// The subject of one client certificate, e.g. CN `kubernetes-admin`, O `kubeadm:cluster-admins`.
#[derive(Debug, Clone, Copy)]
pub struct ClientSubject<'a> {
    pub cn: &'a str,
    pub organizations: &'a [&'a str],
}

const CLIENT_KEY_USAGES: [KeyUsage; 2] = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
const CLIENT_EXT_KEY_USAGES: [ExtKeyUsage; 1] = [ExtKeyUsage::ClientAuth];

impl Pki {
    /// The cluster CA certificate (`ca.crt`), for `certificate-authority-data`.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// A client cert + key signed by the cluster CA, for a kubeconfig.
    pub fn client_credentials(
        &self,
        cn: &str,
        organizations: &[&str],
    ) -> Result<ClientCredentials, PkiError> {
        let mut all = self.client_credentials_many(&[ClientSubject { cn, organizations }])?;
        all.pop().ok_or_else(|| PkiError::Subject {
            cn: cn.to_string(),
            reason: "nothing issued".into(),
        })
    }

    /// Several client certificates at once; their keys are generated in parallel.
    pub fn client_credentials_many(
        &self,
        subjects: &[ClientSubject],
    ) -> Result<Vec<ClientCredentials>, PkiError> {
        let Some(ca_key) = &self.ca_key else {
            let cn = subjects.first().map_or("", |s| s.cn).to_string();
            return Err(PkiError::ExternalCaNoKey { cn });
        };
        for subject in subjects {
            if subject.cn.is_empty() {
                return Err(PkiError::Subject {
                    cn: String::new(),
                    reason: "the CN is empty".into(),
                });
            }
        }
        let keys = generate_keys(self.algorithm, subjects.len())?;
        let signer = Signer {
            cert: &self.ca_cert,
            key: ca_key,
        };
        subjects
            .iter()
            .zip(keys)
            .map(|(subject, key)| {
                let orgs: Vec<String> = subject
                    .organizations
                    .iter()
                    .map(|o| o.to_string())
                    .collect();
                let spec = CertSpec {
                    name: subject.cn,
                    cn: subject.cn,
                    orgs: &orgs,
                    is_ca: false,
                    key_usages: &CLIENT_KEY_USAGES,
                    ext_key_usages: &CLIENT_EXT_KEY_USAGES,
                    alt_names: &AltNames::default(),
                    now: self.now,
                    validity: self.cert_validity,
                };
                let der = sign(&spec, &key, Some(&signer)).map_err(|e| match e {
                    PkiError::Sign { reason, .. } => PkiError::Subject {
                        cn: subject.cn.to_string(),
                        reason,
                    },
                    other => other,
                })?;
                Ok(ClientCredentials {
                    cert_pem: cert_pem(&der),
                    key_pem: key.pem().to_string(),
                })
            })
            .collect()
    }
}
