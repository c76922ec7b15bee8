//! The kubeconfig files kubeadm writes to `/etc/kubernetes` (reference §3): client certificates
//! signed by the cluster CA, embedded with the CA; written 0600. An existing kubeconfig is kept
//! when it has the same CA (a different server only warns), as kubeadm's `validateKubeConfig`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::templates::Templates;
use super::RenderError;
use crate::config::Config;
use crate::host::RenderedFile;
use crate::pki::{ClientSubject, Pki};

/// One kubeconfig: its file, the client's CN and O, and whether it talks to the
/// controlPlaneEndpoint (admins, the node) or the local API server (components). `{nodeName}` in
/// the user is replaced by the node name, as in `pki/profiles.yaml`.
pub struct KubeconfigSpec {
    pub file: &'static str,
    pub user: &'static str,
    pub organizations: &'static [&'static str],
    pub via_endpoint: bool,
}

/// `getKubeConfigSpecsBase`: `kubelet.conf` is the agent's identity in the API (its Node, Lease
/// and mirror pods), which the Node authorizer and NodeRestriction admit for `system:node:<node>`.
pub const KUBECONFIGS: &[KubeconfigSpec] = &[
    KubeconfigSpec {
        file: "admin.conf",
        user: "kubernetes-admin",
        organizations: &["kubeadm:cluster-admins"],
        via_endpoint: true,
    },
    KubeconfigSpec {
        file: "super-admin.conf",
        user: "kubernetes-super-admin",
        organizations: &["system:masters"],
        via_endpoint: true,
    },
    KubeconfigSpec {
        file: "kubelet.conf",
        user: "system:node:{nodeName}",
        organizations: &["system:nodes"],
        via_endpoint: true,
    },
    KubeconfigSpec {
        file: "controller-manager.conf",
        user: "system:kube-controller-manager",
        organizations: &[],
        via_endpoint: false,
    },
    KubeconfigSpec {
        file: "scheduler.conf",
        user: "system:kube-scheduler",
        organizations: &[],
        via_endpoint: false,
    },
];

/// Renders every kubeconfig that is not already present with the same CA. The client keys are
/// generated in parallel (RSA key generation is most of the time `boot` takes).
pub fn render(
    cfg: &Config,
    templates: &Templates,
    dir: &Path,
    pki: &Pki,
) -> Result<(Vec<RenderedFile>, Vec<String>), RenderError> {
    let mut warnings = Vec::new();
    let ca_data = BASE64.encode(pki.ca_cert_pem());
    let mut wanted = Vec::new();
    for spec in KUBECONFIGS {
        let path = dir.join(spec.file);
        let server = if spec.via_endpoint {
            cfg.control_plane_url()
        } else {
            cfg.local_api_url()
        };
        match read_existing(&path)? {
            Some(existing) if !same_ca(&existing.ca_data, pki.ca_cert_pem()) => {
                return Err(RenderError::KubeconfigCaMismatch { path })
            }
            Some(existing) => {
                if existing.server != server {
                    warnings.push(format!(
                        "{}: keeps server {} (expected {server})",
                        path.display(),
                        existing.server
                    ));
                }
            }
            None => wanted.push((spec, path, server, spec.user_for(&cfg.node_name))),
        }
    }
    let subjects: Vec<ClientSubject> = wanted
        .iter()
        .map(|(spec, _, _, user)| ClientSubject {
            cn: user,
            organizations: spec.organizations,
        })
        .collect();
    let credentials = pki.client_credentials_many(&subjects).map_err(|source| {
        RenderError::KubeconfigCredentials {
            path: wanted
                .first()
                .map(|(_, p, _, _)| p.clone())
                .unwrap_or_default(),
            source: Box::new(source),
        }
    })?;
    let mut files = Vec::new();
    for ((_, path, server, user), credentials) in wanted.into_iter().zip(credentials) {
        let mut context = tera::Context::new();
        context.insert("ca_data", &ca_data);
        context.insert("server", &server);
        context.insert("cluster_name", &cfg.cluster.cluster_name);
        context.insert("user", &user);
        context.insert(
            "context_name",
            &format!("{user}@{}", cfg.cluster.cluster_name),
        );
        context.insert(
            "client_certificate_data",
            &BASE64.encode(&credentials.cert_pem),
        );
        context.insert("client_key_data", &BASE64.encode(&credentials.key_pem));
        let text = templates
            .render("kubeconfig.yaml.tera", &context)?
            .trim_start()
            .to_string();
        files.push(RenderedFile::new(path, 0o600, text));
    }
    Ok((files, warnings))
}

impl KubeconfigSpec {
    /// The client's CN for `node_name` (`system:node:<node>` for `kubelet.conf`).
    pub fn user_for(&self, node_name: &str) -> String {
        self.user.replace("{nodeName}", node_name)
    }
}

/// External CA mode (`ca.crt` without `ca.key`): nothing can be signed, so every kubeconfig must
/// already exist with the cluster CA, as kubeadm's `ValidateKubeconfigsForExternalCA` requires; a
/// different server is a warning, as for any existing kubeconfig. Returns the warnings.
pub fn check_external(cfg: &Config, dir: &Path, pki: &Pki) -> Result<Vec<String>, RenderError> {
    let mut warnings = Vec::new();
    for spec in KUBECONFIGS {
        let path = dir.join(spec.file);
        let server = if spec.via_endpoint {
            cfg.control_plane_url()
        } else {
            cfg.local_api_url()
        };
        match read_existing(&path)? {
            None => return Err(RenderError::KubeconfigMissingExternalCa { path }),
            Some(existing) if !same_ca(&existing.ca_data, pki.ca_cert_pem()) => {
                return Err(RenderError::KubeconfigCaMismatch { path })
            }
            Some(existing) if existing.server != server => warnings.push(format!(
                "{}: keeps server {} (expected {server})",
                path.display(),
                existing.server
            )),
            Some(_) => {}
        }
    }
    Ok(warnings)
}

/// The kubeconfig's `certificate-authority-data` holds the cluster CA (compared as DER, so that
/// another PEM layout or a bundle that includes it counts as the same CA).
fn same_ca(ca_data: &str, ca_pem: &str) -> bool {
    let Ok(decoded) = BASE64.decode(ca_data.trim()) else {
        return false;
    };
    let (Ok(theirs), Ok(ours)) = (pem::parse_many(decoded), pem::parse(ca_pem)) else {
        return false;
    };
    theirs
        .iter()
        .any(|block| block.contents() == ours.contents())
}

struct ExistingKubeconfig {
    ca_data: String,
    server: String,
}

fn read_existing(path: &Path) -> Result<Option<ExistingKubeconfig>, RenderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RenderError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let invalid = |why: &str| RenderError::KubeconfigInvalid {
        path: path.into(),
        why: why.into(),
    };
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
    let cluster = &value["clusters"][0]["cluster"];
    let field = |name: &str| {
        cluster[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| invalid(&format!("clusters[0].cluster.{name} is missing")))
    };
    Ok(Some(ExistingKubeconfig {
        ca_data: field("certificate-authority-data")?,
        server: field("server")?,
    }))
}
