//! Post-boot failures as users see them; API calls fail as [`ApiError`]s (the object, the
//! identity, what the server said); [`PostBootError::hint`] says what to try (the CLI prints it
//! as `hint:`).

use std::path::PathBuf;

use crate::kubeapi::ApiError;

/// What went wrong in the post-boot phase.
#[derive(Debug, thiserror::Error)]
pub enum PostBootError {
    /// A call to the API server (or its kubeconfig).
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "{} may not create ClusterRoleBinding kubeadm:cluster-admins yet (Forbidden) and {} does \
         not exist to create it",
        admin.display(),
        super_admin.display()
    )]
    NoSuperAdmin {
        admin: PathBuf,
        super_admin: PathBuf,
    },
    #[error("cannot render the ClusterConfiguration as YAML for ConfigMap kube-system/kubeadm-config: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("a bootstrap token with ID {id:?} already exists")]
    TokenExists { id: String },
    #[error("bootstrap token {id:?} not found")]
    TokenNotFound { id: String },
    #[error("ConfigMap kube-public/cluster-info does not exist (or has no kubeconfig)")]
    NoClusterInfo,
    #[error("cannot update {object}: it kept changing concurrently")]
    Conflict { object: String },
    #[error("upload-certs: {0}")]
    UploadCerts(#[from] crate::join::UploadCertsError),
}

impl PostBootError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            PostBootError::Api(e) => Some(e.hint()),
            PostBootError::NoSuperAdmin { .. } => Some(
                "run `boot init phase kubeconfig` to write super-admin.conf, or create the binding \
                 with a cluster-admin identity"
                    .into(),
            ),
            PostBootError::Yaml(_) => None,
            PostBootError::TokenExists { .. } => {
                Some("give another token, or let `boot token create` generate one".into())
            }
            PostBootError::TokenNotFound { .. } => {
                Some("`boot token list` shows the existing tokens".into())
            }
            PostBootError::NoClusterInfo => Some(
                "run `boot init phase bootstrap-token` on this control-plane node to create it"
                    .into(),
            ),
            PostBootError::Conflict { .. } => Some("run the command again".into()),
            PostBootError::UploadCerts(e) => Some(e.hint()),
        }
    }
}
