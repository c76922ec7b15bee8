//! The CRI client: the runtime and image services of the container runtime (containerd, CRI-O)
//! over gRPC on its unix socket, through the `k8s-cri` bindings and tonic. What boot asks a
//! worker's runtime: its version (preflight), its cgroup driver (the kubelet's configuration),
//! image pulls (`boot images pull`), and the pod sandboxes to stop and remove (`boot reset`).
//! Every call is bounded by the client's timeout. Touches only the socket.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::CriEndpoint;

/// The cgroup driver a runtime reports (`RuntimeConfig`), as the kubelet's `cgroupDriver` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

impl CgroupDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

/// What `Version` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// `containerd`, `cri-o`.
    pub name: String,
    pub version: String,
    /// The CRI API version (`v1`).
    pub api_version: String,
}

/// A pod sandbox the runtime holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandbox {
    pub id: String,
    /// `namespace/name` of the pod, when the runtime knows it.
    pub pod: String,
    pub ready: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the container runtime at {socket}: {detail}")]
    Connect { socket: PathBuf, detail: String },
    #[error("the container runtime at {socket} did not answer {call} within {}s", after.as_secs())]
    Timeout {
        socket: PathBuf,
        call: &'static str,
        after: Duration,
    },
    #[error("the container runtime at {socket} failed {call}: {status}")]
    Call {
        socket: PathBuf,
        call: &'static str,
        status: String,
        /// `Unimplemented`: the runtime does not know the call (containerd 1.6 and RuntimeConfig).
        unimplemented: bool,
    },
}

impl CriError {
    pub fn hint(&self) -> &'static str {
        match self {
            CriError::Connect { .. } | CriError::Timeout { .. } => {
                "is the runtime running (e.g. `systemctl status containerd`) and is this its CRI socket? containerd needs its CRI plugin enabled (it is unless `disabled_plugins` lists \"cri\")"
            }
            CriError::Call { .. } => "the runtime's log says why",
        }
    }
}

/// A connection to one runtime.
pub struct CriClient {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
    timeout: Duration,
}

impl CriClient {
    /// Connects to the socket; every later call is bounded by `timeout`.
    pub async fn connect(endpoint: &CriEndpoint, timeout: Duration) -> Result<CriClient, CriError> {
        let socket = endpoint.socket.clone();
        let path = socket.clone();
        // The URI is a placeholder: the connector below dials the socket.
        let endpoint = Endpoint::from_static("http://[::1]:50051")
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }));
        let channel = match tokio::time::timeout(timeout, channel).await {
            Err(_) => {
                return Err(CriError::Timeout {
                    socket,
                    call: "connect",
                    after: timeout,
                })
            }
            Ok(Err(e)) => {
                return Err(CriError::Connect {
                    detail: chain(&e),
                    socket,
                })
            }
            Ok(Ok(channel)) => channel,
        };
        Ok(CriClient {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            socket,
            timeout,
        })
    }

    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// `Version`: the runtime answers, and says what it is.
    pub async fn version(&mut self) -> Result<RuntimeVersion, CriError> {
        let request = cri::VersionRequest {
            version: "v1".into(),
        };
        let call = self.runtime.version(request);
        let answer = bounded(&self.socket, "Version", self.timeout, call).await?;
        Ok(RuntimeVersion {
            name: answer.runtime_name,
            version: answer.runtime_version,
            api_version: answer.runtime_api_version,
        })
    }

    /// `RuntimeConfig`'s cgroup driver; `None` when the runtime does not implement the call
    /// (containerd before 2.0), where the kubelet falls back to its configured driver.
    pub async fn cgroup_driver(&mut self) -> Result<Option<CgroupDriver>, CriError> {
        let call = self.runtime.runtime_config(cri::RuntimeConfigRequest {});
        match bounded(&self.socket, "RuntimeConfig", self.timeout, call).await {
            Ok(answer) => Ok(answer.linux.map(|linux| {
                match cri::CgroupDriver::try_from(linux.cgroup_driver) {
                    Ok(cri::CgroupDriver::Cgroupfs) => CgroupDriver::Cgroupfs,
                    _ => CgroupDriver::Systemd,
                }
            })),
            Err(CriError::Call {
                unimplemented: true,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every pod sandbox, ready or not.
    pub async fn pod_sandboxes(&mut self) -> Result<Vec<PodSandbox>, CriError> {
        let call = self
            .runtime
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None });
        let answer = bounded(&self.socket, "ListPodSandbox", self.timeout, call).await?;
        Ok(answer
            .items
            .into_iter()
            .map(|s| PodSandbox {
                pod: s
                    .metadata
                    .map(|m| format!("{}/{}", m.namespace, m.name))
                    .unwrap_or_default(),
                ready: s.state == cri::PodSandboxState::SandboxReady as i32,
                id: s.id,
            })
            .collect())
    }

    /// Stops a sandbox (its containers are killed, its network torn down) and removes it, as
    /// `crictl stopp` and `rmp` do for kubeadm's reset.
    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), CriError> {
        let stop = self.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        });
        bounded(&self.socket, "StopPodSandbox", self.timeout, stop).await?;
        let remove = self
            .runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            });
        bounded(&self.socket, "RemovePodSandbox", self.timeout, remove).await?;
        Ok(())
    }

    /// Whether the runtime has `image` (`ImageStatus`).
    pub async fn has_image(&mut self, image: &str) -> Result<bool, CriError> {
        let call = self.images.image_status(cri::ImageStatusRequest {
            image: Some(spec(image)),
            verbose: false,
        });
        let answer = bounded(&self.socket, "ImageStatus", self.timeout, call).await?;
        Ok(answer.image.is_some())
    }

    /// Pulls `image` into the runtime (`PullImage`, without credentials: the runtime's own
    /// registry configuration applies); returns the runtime's reference to it. A pull may take
    /// longer than one call's timeout: `timeout` bounds this one.
    pub async fn pull_image(&mut self, image: &str, timeout: Duration) -> Result<String, CriError> {
        let mut request = tonic::Request::new(cri::PullImageRequest {
            image: Some(spec(image)),
            auth: None,
            sandbox_config: None,
        });
        request.set_timeout(timeout);
        let call = self.images.pull_image(request);
        let answer = bounded(&self.socket, "PullImage", timeout, call).await?;
        Ok(answer.image_ref)
    }
}

fn spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..cri::ImageSpec::default()
    }
}

async fn bounded<T>(
    socket: &std::path::Path,
    call: &'static str,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    match tokio::time::timeout(timeout, future).await {
        Err(_) => Err(CriError::Timeout {
            socket: socket.to_path_buf(),
            call,
            after: timeout,
        }),
        Ok(Err(status)) => Err(CriError::Call {
            socket: socket.to_path_buf(),
            call,
            unimplemented: status.code() == tonic::Code::Unimplemented,
            status: format!("{:?}: {}", status.code(), status.message()),
        }),
        Ok(Ok(answer)) => Ok(answer.into_inner()),
    }
}

/// tonic keeps the cause (no such file, permission denied) in the source chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
