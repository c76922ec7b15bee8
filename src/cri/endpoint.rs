//! Where the container runtime listens: kubeadm's `--cri-socket` / `nodeRegistration.criSocket`
//! (`unix:///var/run/containerd/containerd.sock`, or a bare absolute path, which kubeadm also
//! accepts), or, when none is given, the one known socket present on this host, as kubeadm's
//! `DetectCRISocket`. Pure apart from [`detect`], which looks at the host's paths.

use std::fmt;
use std::path::{Path, PathBuf};

/// The sockets kubeadm knows (`constants_unix.go`: containerd, CRI-O, cri-dockerd), in its order.
pub const KNOWN_SOCKETS: &[&str] = &[
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/run/cri-dockerd.sock",
];

/// A CRI endpoint: a unix socket (the only transport the kubelet and kubeadm use on Linux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriEndpoint {
    pub socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "CRI endpoint {0:?} is not a unix socket (unix:///path/to/socket or an absolute path)"
    )]
    NotUnix(String),
    #[error("no CRI socket found on this host (looked for {})", KNOWN_SOCKETS.join(", "))]
    NoneFound,
    #[error("found more than one CRI socket on this host ({}): say which with --cri-socket", .0.join(", "))]
    Several(Vec<String>),
}

impl EndpointError {
    pub fn hint(&self) -> &'static str {
        match self {
            EndpointError::NotUnix(_) => {
                "give --cri-socket unix:///run/containerd/containerd.sock (or the path alone)"
            }
            EndpointError::NoneFound => {
                "install and start a CRI runtime (containerd or CRI-O; boot installs none), or give its socket with --cri-socket"
            }
            EndpointError::Several(_) => {
                "pass --cri-socket (or nodeRegistration.criSocket) naming the runtime the kubelet should use"
            }
        }
    }
}

impl CriEndpoint {
    /// `unix:///path` or `/path`.
    pub fn parse(text: &str) -> Result<CriEndpoint, EndpointError> {
        let path = text.strip_prefix("unix://").unwrap_or(text);
        let plain = Path::new(path).is_absolute()
            && !path.contains('\0')
            && !Path::new(path)
                .components()
                .any(|c| c == std::path::Component::ParentDir);
        if !plain {
            return Err(EndpointError::NotUnix(text.to_string()));
        }
        Ok(CriEndpoint {
            socket: PathBuf::from(path),
        })
    }

    /// The form the kubelet's `--container-runtime-endpoint` takes.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl fmt::Display for CriEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// The endpoint the user gave, else the only known socket that exists (`is_socket` says which
/// do; `/var/run` and `/run` are the same directory on a modern host, so each is looked up once).
pub fn resolve(
    given: Option<&str>,
    is_socket: impl Fn(&Path) -> bool,
) -> Result<CriEndpoint, EndpointError> {
    if let Some(text) = given {
        return CriEndpoint::parse(text);
    }
    let found: Vec<&str> = KNOWN_SOCKETS
        .iter()
        .copied()
        .filter(|s| is_socket(Path::new(s)))
        .collect();
    match found[..] {
        [] => Err(EndpointError::NoneFound),
        [one] => CriEndpoint::parse(one),
        _ => Err(EndpointError::Several(
            found.iter().map(|s| format!("unix://{s}")).collect(),
        )),
    }
}

/// [`resolve`] against this host's file system.
pub fn detect(given: Option<&str>) -> Result<CriEndpoint, EndpointError> {
    use std::os::unix::fs::FileTypeExt;
    resolve(given, |path| {
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_sockets_given_as_urls_or_paths() {
        let e = CriEndpoint::parse("unix:///run/containerd/containerd.sock").unwrap();
        assert_eq!(e.socket, Path::new("/run/containerd/containerd.sock"));
        assert_eq!(e.url(), "unix:///run/containerd/containerd.sock");
        assert_eq!(
            CriEndpoint::parse("/run/crio/crio.sock").unwrap().url(),
            "unix:///run/crio/crio.sock"
        );
        for bad in [
            "tcp://10.0.0.1:1234",
            "unix://relative.sock",
            "npipe:////./pipe/x",
            "/a/../b",
        ] {
            assert!(
                matches!(CriEndpoint::parse(bad), Err(EndpointError::NotUnix(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn detection_takes_the_one_socket_and_refuses_none_or_several() {
        let only_crio = |p: &Path| p == Path::new("/var/run/crio/crio.sock");
        assert_eq!(
            resolve(None, only_crio).unwrap().socket,
            Path::new("/var/run/crio/crio.sock")
        );
        assert_eq!(resolve(None, |_| false), Err(EndpointError::NoneFound));
        let err = resolve(None, |_| true).unwrap_err();
        assert!(
            err.to_string().contains("unix:///var/run/cri-dockerd.sock"),
            "{err}"
        );
        // A given endpoint wins over detection.
        assert_eq!(
            resolve(Some("/tmp/c.sock"), |_| true).unwrap().socket,
            Path::new("/tmp/c.sock")
        );
    }
}
