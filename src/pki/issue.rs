//! `issue`: decides for every certificate of the profile table whether to reuse what is on disk,
//! rely on an external CA or issue it anew; generates all new keys at once (in parallel), then
//! signs in table order (every CA before its leaves). Pure: files come back as
//! [`RenderedFile`]s under the certificates directory, nothing is written here.

use std::path::Path;

use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::inspect::CertFacts;
use super::keys::{generate_keys, PrivateKey, PUBLIC_KEY_LABEL};
use super::profiles::{CertProfile, KeyPairProfile, Profiles, Signer};
use super::reuse::{check_ca, check_leaf, find_pair, ExistingPki, Found, LeafExpectation};
use super::sans::{alt_names, AltNames};
use super::sign::{cert_pem, sign, CertSpec};
use super::{CertAction, CertOutcome, Pki, PkiError, PkiRequest};
use crate::host::RenderedFile;

/// kubeadm's modes: keys and `sa.pub` 0600 (keyutil.WriteKey), certificates 0644 (certutil.WriteCert).
pub const KEY_MODE: u32 = 0o600;
pub const CERT_MODE: u32 = 0o644;

/// The name of the cluster CA profile: the one kubeconfig client certs are signed by.
pub const CLUSTER_CA: &str = "ca";

enum State {
    Ready {
        cert: CertFacts,
        key: Box<PrivateKey>,
        generated: bool,
    },
    /// A CA certificate without its key: it cannot sign, everything it signs must exist.
    External(CertFacts),
    /// To be issued.
    Pending,
}

struct Entry<'p> {
    profile: &'p CertProfile,
    cn: String,
    alt_names: AltNames,
    state: State,
}

/// Issues (or reuses) the whole PKI for `req`, given what is already on disk.
pub fn issue(req: &PkiRequest, existing: &ExistingPki) -> Result<Pki, PkiError> {
    let profiles = Profiles::embedded()?;
    let dir = req.cert_dir.as_path();
    let mut warnings = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for profile in profiles.selected(req.local_etcd) {
        let cn = profile.cn.resolve(&req.node_name);
        let alt_names = alt_names(&profile.sans, &cn, &profile.name, req, &mut warnings);
        let found = find_pair(profile, existing, dir)?;
        let state = match &profile.signer {
            Signer::SelfSigned => ca_state(profile, found, dir, req)?,
            Signer::Ca(signer) => {
                let ca = entries.iter().find(|e| &e.profile.name == signer);
                let Some(ca) = ca else {
                    return Err(PkiError::Profiles {
                        reason: format!("{signer} is not selected"),
                    });
                };
                leaf_state(profile, &cn, &alt_names, ca, found, dir, req, &mut warnings)?
            }
        };
        entries.push(Entry {
            profile,
            cn,
            alt_names,
            state,
        });
    }

    let sa = &profiles.service_account;
    let sa_key = existing_sa_key(sa, existing, dir)?;

    // Every new key at once, on every core: key generation is nearly all of the time.
    let pending = entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending))
        .count();
    let mut keys = generate_keys(req.algorithm, pending + usize::from(sa_key.is_none()))?;

    let mut files = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..entries.len() {
        let (done, rest) = entries.split_at_mut(i);
        let Some((entry, _)) = rest.split_first_mut() else {
            break;
        };
        if matches!(entry.state, State::Pending) {
            let key = keys.pop().ok_or_else(|| PkiError::KeyGeneration {
                algorithm: req.algorithm.to_string(),
                reason: "fewer keys than certificates".into(),
            })?;
            let der = issue_one(entry, &key, done, req)?;
            let crt_path = dir.join(entry.profile.crt_file());
            files.push(RenderedFile::new(
                dir.join(entry.profile.key_file()),
                KEY_MODE,
                key.pem(),
            ));
            files.push(RenderedFile::new(&crt_path, CERT_MODE, cert_pem(&der)));
            let cert = CertFacts::from_der(der, &crt_path)?;
            entry.state = State::Ready {
                cert,
                key: Box::new(key),
                generated: true,
            };
        }
        let action = match entry.state {
            State::Ready {
                generated: true, ..
            } => CertAction::Generated,
            State::Ready {
                generated: false, ..
            } => CertAction::Reused,
            State::External(_) | State::Pending => CertAction::ExternalCa,
        };
        let (name, file) = (entry.profile.name.clone(), entry.profile.file.clone());
        outcomes.push(CertOutcome { name, file, action });
    }

    let sa_new_key = match sa_key {
        Some(_) => None,
        None => Some(keys.pop().ok_or_else(|| PkiError::KeyGeneration {
            algorithm: req.algorithm.to_string(),
            reason: "no key left for the service-account key pair".into(),
        })?),
    };
    let sa_action = service_account(sa, sa_key, sa_new_key, existing, dir, &mut files)?;
    outcomes.push(CertOutcome {
        name: sa.name.clone(),
        file: sa.file.clone(),
        action: sa_action,
    });

    let ca = entries.into_iter().find(|e| e.profile.name == CLUSTER_CA);
    let (ca_cert, ca_key) = match ca.map(|e| e.state) {
        Some(State::Ready { cert, key, .. }) => (cert, Some(*key)),
        Some(State::External(cert)) => (cert, None),
        _ => {
            return Err(PkiError::Profiles {
                reason: format!("no {CLUSTER_CA:?} CA profile"),
            })
        }
    };
    Ok(Pki {
        files,
        external_ca: ca_key.is_none(),
        ca_cert_pem: cert_pem(&ca_cert.der),
        warnings,
        outcomes,
        ca_cert,
        ca_key,
        algorithm: req.algorithm,
        cert_validity: req.cert_validity,
        now: req.now,
    })
}

fn ca_state(
    profile: &CertProfile,
    found: Found,
    dir: &Path,
    req: &PkiRequest,
) -> Result<State, PkiError> {
    Ok(match found {
        Found::Nothing => State::Pending,
        Found::CertOnly(cert) => {
            check_ca(profile, &cert, dir, req.now)?;
            State::External(cert)
        }
        Found::Pair(cert, key) => {
            check_ca(profile, &cert, dir, req.now)?;
            State::Ready {
                cert,
                key,
                generated: false,
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn leaf_state(
    profile: &CertProfile,
    cn: &str,
    alt_names: &AltNames,
    ca: &Entry,
    found: Found,
    dir: &Path,
    req: &PkiRequest,
    warnings: &mut Vec<String>,
) -> Result<State, PkiError> {
    let (crt_path, key_path) = (dir.join(profile.crt_file()), dir.join(profile.key_file()));
    let ca_path = dir.join(ca.profile.crt_file());
    match (found, &ca.state) {
        (Found::Nothing, State::External(_)) => Err(PkiError::ExternalCaMissingLeaf {
            name: profile.name.clone(),
            path: crt_path,
            ca_key: dir.join(ca.profile.key_file()),
        }),
        (Found::Nothing, _) => Ok(State::Pending),
        (Found::CertOnly(_), _) => Err(PkiError::IncompletePair {
            present: crt_path,
            missing: key_path,
        }),
        (Found::Pair(..), State::Pending) => Err(PkiError::NotSignedByCa {
            name: profile.name.clone(),
            path: crt_path,
            ca: ca_path,
            reason: "that CA does not exist yet and is being issued anew".into(),
        }),
        (Found::Pair(cert, key), State::Ready { cert: ca_cert, .. } | State::External(ca_cert)) => {
            let want = LeafExpectation {
                profile,
                cn,
                alt_names,
                ca: ca_cert,
                ca_path,
            };
            warnings.extend(check_leaf(&want, &cert, dir, req.now)?);
            Ok(State::Ready {
                cert,
                key,
                generated: false,
            })
        }
    }
}

/// Signs one pending certificate; its CA is among `done` (profiles list signers first).
fn issue_one(
    entry: &Entry,
    key: &PrivateKey,
    done: &[Entry],
    req: &PkiRequest,
) -> Result<Vec<u8>, PkiError> {
    let p = entry.profile;
    let spec = CertSpec {
        name: &p.name,
        cn: &entry.cn,
        orgs: &p.o,
        is_ca: p.is_ca(),
        key_usages: &p.key_usages,
        ext_key_usages: &p.ext_key_usages,
        alt_names: &entry.alt_names,
        now: req.now,
        validity: if p.is_ca() {
            req.ca_validity
        } else {
            req.cert_validity
        },
    };
    match &p.signer {
        Signer::SelfSigned => sign(&spec, key, None),
        Signer::Ca(name) => match done
            .iter()
            .find(|e| &e.profile.name == name)
            .map(|e| &e.state)
        {
            Some(State::Ready {
                cert, key: ca_key, ..
            }) => sign(&spec, key, Some(&super::sign::Signer { cert, key: ca_key })),
            _ => Err(PkiError::Sign {
                name: p.name.clone(),
                reason: format!("CA {name} cannot sign"),
            }),
        },
    }
}

/// `sa.key` as found on disk, if any.
fn existing_sa_key(
    sa: &KeyPairProfile,
    existing: &ExistingPki,
    dir: &Path,
) -> Result<Option<PrivateKey>, PkiError> {
    let Some(bytes) = existing.get(&sa.key_file()) else {
        return Ok(None);
    };
    std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(PrivateKey::from_pem)
        .map(Some)
        .map_err(|reason| PkiError::ParseKey {
            path: dir.join(sa.key_file()),
            reason,
        })
}

/// The service-account key pair (certs.go CreateServiceAccountKeyAndPublicKeyFiles): an existing
/// `sa.key` is reused and `sa.pub` derived from it when missing; otherwise `new_key` is written.
fn service_account(
    sa: &KeyPairProfile,
    found: Option<PrivateKey>,
    new_key: Option<PrivateKey>,
    existing: &ExistingPki,
    dir: &Path,
    files: &mut Vec<RenderedFile>,
) -> Result<CertAction, PkiError> {
    let (key_path, pub_path) = (dir.join(sa.key_file()), dir.join(sa.pub_file()));
    match (found, new_key) {
        (Some(key), _) => {
            match existing.get(&sa.pub_file()) {
                Some(public) => check_sa_public(public, &key, &pub_path, &key_path)?,
                None => files.push(RenderedFile::new(pub_path, KEY_MODE, key.public_key_pem())),
            }
            Ok(CertAction::Reused)
        }
        (None, Some(key)) => {
            files.push(RenderedFile::new(key_path, KEY_MODE, key.pem()));
            files.push(RenderedFile::new(pub_path, KEY_MODE, key.public_key_pem()));
            Ok(CertAction::Generated)
        }
        (None, None) => Err(PkiError::KeyGeneration {
            algorithm: "service-account".into(),
            reason: "no key was generated for sa.key".into(),
        }),
    }
}

/// An existing `sa.pub` must be the public half of `sa.key`.
fn check_sa_public(
    public: &[u8],
    key: &PrivateKey,
    public_path: &Path,
    key_path: &Path,
) -> Result<(), PkiError> {
    let bad = |reason: String| PkiError::Pem {
        path: public_path.to_path_buf(),
        expected: "public key",
        reason,
    };
    let block = pem::parse(public).map_err(|e| bad(e.to_string()))?;
    if block.tag() != PUBLIC_KEY_LABEL {
        return Err(bad(format!("found a {:?} block", block.tag())));
    }
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(block.contents()).map_err(|e| bad(e.to_string()))?;
    if spki.subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::ServiceAccountMismatch {
            public: public_path.to_path_buf(),
            private: key_path.to_path_buf(),
        });
    }
    Ok(())
}
