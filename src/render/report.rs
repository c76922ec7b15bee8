//! kubeadm's progress lines for what a [`Bundle`] holds: `[certs] Generating "ca" certificate and
//! key`, `[kubeconfig] Writing "admin.conf" kubeconfig file`, `[control-plane] Creating static Pod
//! manifest for "kube-apiserver"` (the wording of kubeadm's `certs`, `kubeconfig`, `etcd` and
//! `controlplane` phases).

use super::{Bundle, OutputLayout};
use crate::pki::{CertAction, CertOutcome};

/// One line per certificate, kubeconfig and manifest, each starting with its phase tag.
pub fn lines(bundle: &Bundle, layout: &OutputLayout) -> Vec<String> {
    let mut lines = Vec::new();
    if !bundle.certs.is_empty() {
        lines.push(format!(
            "[certs] Using certificateDir folder {:?}",
            layout.cert_dir.display().to_string()
        ));
        lines.extend(bundle.certs.iter().map(cert_line));
    }
    let kubeconfigs: Vec<_> = bundle
        .files
        .iter()
        .filter(|f| f.path.parent() == Some(layout.kubernetes_dir.as_path()))
        .collect();
    if !kubeconfigs.is_empty() {
        lines.push(format!(
            "[kubeconfig] Using kubeconfig folder {:?}",
            layout.kubernetes_dir.display().to_string()
        ));
        for file in kubeconfigs {
            let name = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            lines.push(format!("[kubeconfig] Writing {name:?} kubeconfig file"));
        }
    }
    let manifest_dir = layout.manifest_dir.display().to_string();
    for file in bundle
        .files
        .iter()
        .filter(|f| f.path.starts_with(&layout.manifest_dir))
    {
        match file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .as_str()
        {
            "etcd" => lines.push(format!(
                "[etcd] Creating static Pod manifest for local etcd in {manifest_dir:?}"
            )),
            component => lines.push(format!(
                "[control-plane] Creating static Pod manifest for {component:?}"
            )),
        }
    }
    lines
}

/// kubeadm prints a certificate's base name (`etcd/server`), not its phase name (`etcd-server`).
fn cert_line(outcome: &CertOutcome) -> String {
    let name = &outcome.file;
    let is_ca = name == "ca" || name.ends_with("-ca") || name.ends_with("/ca");
    match (outcome.action, name.as_str(), is_ca) {
        (CertAction::Generated, "sa", _) => "[certs] Generating \"sa\" key and public key".into(),
        (CertAction::Generated, _, _) => format!("[certs] Generating {name:?} certificate and key"),
        (CertAction::Reused, "sa", _) => "[certs] Using the existing \"sa\" key".into(),
        (CertAction::Reused, _, true) => {
            format!("[certs] Using existing {name} certificate authority")
        }
        (CertAction::Reused, _, false) => {
            format!("[certs] Using existing {name} certificate and key on disk")
        }
        (CertAction::ExternalCa, _, _) => {
            format!("[certs] Using existing {name} keyless certificate authority")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_lines_read_as_kubeadms() {
        let outcome = |file: &str, action| CertOutcome {
            name: file.replace('/', "-"),
            file: file.into(),
            action,
        };
        assert_eq!(
            cert_line(&outcome("ca", CertAction::Generated)),
            "[certs] Generating \"ca\" certificate and key"
        );
        assert_eq!(
            cert_line(&outcome("etcd/ca", CertAction::Reused)),
            "[certs] Using existing etcd/ca certificate authority"
        );
        assert_eq!(
            cert_line(&outcome("apiserver", CertAction::Reused)),
            "[certs] Using existing apiserver certificate and key on disk"
        );
        assert_eq!(
            cert_line(&outcome("sa", CertAction::Generated)),
            "[certs] Generating \"sa\" key and public key"
        );
    }
}
