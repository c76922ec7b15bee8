//! Certificates a component re-reads from disk by itself, so that renewing them needs no restart.
//!
//! kube-apiserver watches its serving pair (`--tls-cert-file`, `--tls-private-key-file`) and
//! swaps it in within about a second of a change (measured with v1.36.2: 1.5 s). Its other
//! client certificates (etcd, kubelet, front proxy) are read once at start, so any of those in a
//! renewal still restarts it. Instead of a restart, the new certificate is confirmed by a TLS
//! handshake with the API server on loopback, verified against the cluster CA, until it presents
//! exactly the renewed certificate.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A pod that takes a renewed certificate without a restart, and how to see that it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCheck {
    pub pod: String,
    /// Where it serves: loopback and its `--secure-port`.
    pub address: SocketAddr,
    /// The renewed certificate it must present.
    pub cert: PathBuf,
    /// The CA that signs it (`--client-ca-file`, the cluster CA).
    pub ca: PathBuf,
}

/// Splits `affected` into the pods to restart and those that reload `changed` by themselves.
pub fn split(
    manifests: &[(PathBuf, Pod)],
    affected: Vec<(PathBuf, String)>,
    changed: &[PathBuf],
) -> (Vec<(PathBuf, String)>, Vec<ServingCheck>) {
    let mut restart = Vec::new();
    let mut checks = Vec::new();
    for (path, name) in affected {
        let pod = manifests
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, pod)| pod);
        match pod.and_then(|pod| serving_check(pod, &name, changed)) {
            Some(check) => checks.push(check),
            None => restart.push((path, name)),
        }
    }
    (restart, checks)
}

/// `Some` when `pod` is kube-apiserver and the only renewed file it names is its serving
/// certificate (the key always changes with it).
fn serving_check(pod: &Pod, name: &str, changed: &[PathBuf]) -> Option<ServingCheck> {
    if name != "kube-apiserver" {
        return None;
    }
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "kube-apiserver")?;
    let words: Vec<&String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .collect();
    let flag = |flag: &str| {
        let wanted = format!("--{flag}=");
        words
            .iter()
            .rev()
            .find_map(|w| w.strip_prefix(&wanted).map(str::to_string))
    };
    let cert = PathBuf::from(flag("tls-cert-file")?);
    let other_use = changed.iter().filter(|f| **f != cert).any(|f| {
        let f = f.to_string_lossy();
        words.iter().any(|w| w.contains(&*f))
    });
    if other_use || !changed.contains(&cert) {
        return None;
    }
    let port: u16 = flag("secure-port").map_or(Some(6443), |p| p.parse().ok())?;
    Some(ServingCheck {
        pod: name.to_string(),
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        cert,
        ca: PathBuf::from(flag("client-ca-file")?),
    })
}

/// Waits until `check.address` presents the certificate in `check.cert`; returns how long it took.
pub fn wait_served(check: &ServingCheck, timeout: Duration) -> Result<Duration, String> {
    let want = first_cert(&check.cert)?;
    let config = client_config(&check.ca)?;
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match served(&config, check.address) {
            Ok(der) if der == want => return Ok(started.elapsed()),
            Ok(_) => last = "it still presents the previous certificate".into(),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "{} did not present the renewed {} within {timeout:?}: {last}",
        check.pod,
        check.cert.display()
    ))
}

/// How long a reloading pod may take to present a renewed certificate before it is restarted
/// instead (its file watch answers in about a second; the periodic re-read is once a minute).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes every pod in `affected` take the renewed `changed` files: those that reload them by
/// themselves are only checked, the others restarted one at a time ([`super::rolling_restart`]).
/// One that does not present its renewed certificate in time is restarted after the others.
pub fn take_renewed(
    socket: &Path,
    manifests: &[(PathBuf, Pod)],
    affected: Vec<(PathBuf, String)>,
    changed: &[PathBuf],
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), super::RestartError> {
    // Without an agent nothing runs to reload anything: every manifest is only marked.
    let agent_up = crate::agent::status::fetch_blocking(socket).is_ok();
    let (restart, checks) = if agent_up {
        split(manifests, affected, changed)
    } else {
        (affected, Vec::new())
    };
    super::rolling_restart(socket, &restart, timeout, progress)?;
    let mut late = Vec::new();
    for check in checks {
        match wait_served(&check, RELOAD_TIMEOUT) {
            Ok(took) => progress(&format!(
                "{} presents the renewed certificate after {:.1}s, without a restart",
                check.pod,
                took.as_secs_f64()
            )),
            Err(why) => {
                progress(&format!("{why}; restarting it"));
                let manifest = manifests
                    .iter()
                    .find(|(_, pod)| pod.metadata.name.as_deref() == Some(check.pod.as_str()))
                    .map(|(path, _)| path.clone());
                late.extend(manifest.map(|path| (path, check.pod.clone())));
            }
        }
    }
    super::rolling_restart(socket, &late, timeout, progress)
}

fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = read_small(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(der)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The leaf certificate `address` presents, verified for the name `kubernetes` (a SAN kubeadm
/// always gives the API server).
fn served(config: &Arc<rustls::ClientConfig>, address: SocketAddr) -> Result<Vec<u8>, String> {
    let name = ServerName::try_from("kubernetes").map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut tcp =
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|()| tcp.set_write_timeout(Some(Duration::from_secs(2))))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS: {e}"))?;
    }
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate presented".to_string())
}

fn first_cert(path: &Path) -> Result<Vec<u8>, String> {
    CertificateDer::pem_slice_iter(&read_small(path)?)
        .next()
        .ok_or_else(|| format!("{}: no certificate", path.display()))?
        .map(|c| c.to_vec())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1024 * 1024).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apiserver() -> (PathBuf, Pod) {
        let pod: Pod = serde_yaml::from_str(
            "apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver}
spec:
  containers:
  - name: kube-apiserver
    command:
    - kube-apiserver
    - --secure-port=7443
    - --client-ca-file=/pki/ca.crt
    - --tls-cert-file=/pki/apiserver.crt
    - --tls-private-key-file=/pki/apiserver.key
    - --etcd-certfile=/pki/apiserver-etcd-client.crt
",
        )
        .unwrap();
        (PathBuf::from("/m/kube-apiserver.yaml"), pod)
    }

    fn affected() -> Vec<(PathBuf, String)> {
        vec![(
            PathBuf::from("/m/kube-apiserver.yaml"),
            "kube-apiserver".into(),
        )]
    }

    #[test]
    fn only_a_serving_certificate_alone_skips_the_restart() {
        let manifests = [apiserver()];
        let (restart, checks) = split(
            &manifests,
            affected(),
            &[PathBuf::from("/pki/apiserver.crt")],
        );
        assert!(restart.is_empty());
        assert_eq!(
            checks,
            [ServingCheck {
                pod: "kube-apiserver".into(),
                address: "127.0.0.1:7443".parse().unwrap(),
                cert: "/pki/apiserver.crt".into(),
                ca: "/pki/ca.crt".into(),
            }]
        );
        // With the etcd client certificate as well, it restarts: that one is read once.
        let both = [
            PathBuf::from("/pki/apiserver.crt"),
            PathBuf::from("/pki/apiserver-etcd-client.crt"),
        ];
        let (restart, checks) = split(&manifests, affected(), &both);
        assert_eq!(restart, affected());
        assert!(checks.is_empty());
        // A file it does not name changes nothing; other pods always restart.
        let (restart, _) = split(
            &manifests,
            vec![(PathBuf::from("/m/etcd.yaml"), "etcd".into())],
            &[PathBuf::from("/pki/apiserver.crt")],
        );
        assert_eq!(restart.len(), 1);
    }
}
