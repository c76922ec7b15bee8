//! Pulling an image through the `oci-client` crate: resolve the manifest (an index resolves to
//! this host's linux platform), then fetch the config and every missing layer in parallel, each
//! blob hashed while it streams into the store and unpacked once. A blob the store has is never
//! fetched again; a layer already unpacked needs not even its blob.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};

use super::digest::Digest;
use super::error::RegistryFailure;
use super::manifest::{host_arch, Descriptor, Fetched, ImageConfig, Manifest, ACCEPTED};
use super::reference::PullPolicy;
use super::registries::{Endpoint, Registries};
use super::store::{
    BlobWriter, ImageRecord, LocalImage, Store, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES,
};
use super::ImageError;

const USER_AGENT: &str = concat!("boot/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A registry that sends nothing for this long is given up on (then the next mirror is tried).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a pull reports what it does (the CLI's live display, the agent's log).
pub trait Progress: Send + Sync {
    /// The image's layers are known: `total` bytes of which `missing` must be downloaded.
    fn resolved(&self, _image: &str, _total: u64, _missing: u64) {}
    /// `n` more bytes arrived.
    fn bytes(&self, _image: &str, _n: u64) {}
}

/// Reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Pulls `image` into `store`, trying its mirrors before the registry itself.
pub async fn pull(
    store: &Store,
    image: &super::ImageRef,
    registries: &Registries,
    progress: Arc<dyn Progress>,
) -> Result<LocalImage, ImageError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Shared with other pulls and imports; `gc` waits for it exclusively.
    let lock_store = store.clone();
    let _shared = tokio::task::spawn_blocking(move || lock_store.lock("store", false))
        .await
        .map_err(|e| ImageError::Join(e.to_string()))??;
    let mut last_error = None;
    for endpoint in registries.endpoints(image) {
        match pull_from(store, image, &endpoint, progress.clone()).await {
            Ok(local) => return Ok(local),
            // Content that fails verification is not retried elsewhere: it is an attack or a bug.
            Err(e @ (ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. })) => {
                return Err(e)
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("endpoints always include the registry itself"))
}

impl Store {
    /// Makes `image` present as `policy` asks (the kubelet's `EnsureImageExists`): `Never` only
    /// looks, `IfNotPresent` pulls when it is missing, `Always` resolves the manifest again (no
    /// blob the store has is downloaded again).
    pub async fn ensure(
        &self,
        image: &super::ImageRef,
        policy: PullPolicy,
        registries: &Registries,
        progress: Arc<dyn Progress>,
    ) -> Result<LocalImage, ImageError> {
        if policy != PullPolicy::Always {
            if let Some(local) = self.resolve(image)? {
                return Ok(local);
            }
            if policy == PullPolicy::Never {
                return Err(ImageError::NeverPull {
                    image: image.to_string(),
                });
            }
        }
        pull(self, image, registries, progress).await
    }
}

struct Session<'a> {
    client: Client,
    auth: oci_client::secrets::RegistryAuth,
    image: &'a super::ImageRef,
    endpoint: &'a Endpoint,
}

impl Session<'_> {
    fn oci_ref(&self, digest: Option<&Digest>) -> Reference {
        let (registry, repository) = (
            self.endpoint.host.clone(),
            self.image.repository().to_string(),
        );
        match (digest.or(self.image.digest()), self.image.tag()) {
            (Some(digest), _) => Reference::with_digest(registry, repository, digest.to_string()),
            (None, tag) => {
                Reference::with_tag(registry, repository, tag.unwrap_or("latest").to_string())
            }
        }
    }

    fn fail(&self, err: OciDistributionError) -> ImageError {
        let (failure, detail) = classify(&err);
        ImageError::Registry {
            image: self.image.to_string(),
            registry: self.endpoint.host.clone(),
            failure,
            detail,
        }
    }

    /// Fetches a manifest or index, checking it against `expected` when the reference pins one.
    async fn manifest(&self, expected: Option<&Digest>) -> Result<(Vec<u8>, Digest), ImageError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&self.oci_ref(expected), &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.fail(e))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ImageError::TooLarge {
                what: format!("the manifest of {}", self.image),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let actual = Digest::of(&bytes);
        if let Some(expected) = expected.or(self.image.digest()) {
            if &actual != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("the manifest of {}", self.image),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Streams a blob into the store unless it is there; returns the bytes fetched.
    async fn blob(
        &self,
        store: &Store,
        desc: &Descriptor,
        progress: &dyn Progress,
    ) -> Result<u64, ImageError> {
        let writer_store = store.clone();
        let (digest, size) = (desc.digest.clone(), desc.size);
        // Taking the blob's lock may wait for another pull of the same blob.
        let writer = tokio::task::spawn_blocking(move || writer_store.blob_writer(&digest, size))
            .await
            .map_err(|e| ImageError::Join(e.to_string()))??;
        let Some(mut writer) = writer else {
            return Ok(0);
        };
        let oci_desc = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.to_string(),
            size: desc.size as i64,
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&self.oci_ref(None), &oci_desc)
            .await
            .map_err(|e| self.fail(e))?;
        let mut fetched = 0;
        let name = self.image.to_string();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(desc, e, &writer))?;
            writer.write(&chunk)?;
            fetched += chunk.len() as u64;
            progress.bytes(&name, chunk.len() as u64);
        }
        tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| ImageError::Join(e.to_string()))??;
        Ok(fetched)
    }

    /// oci-client's stream checks the digest too and reports a mismatch as an I/O error.
    fn stream_error(
        &self,
        desc: &Descriptor,
        err: std::io::Error,
        writer: &BlobWriter,
    ) -> ImageError {
        let text = err.to_string();
        if text.to_lowercase().contains("digest") {
            return ImageError::DigestMismatch {
                what: format!("blob {} of {}", desc.digest, self.image),
                expected: desc.digest.clone(),
                actual: writer.digest_so_far(),
            };
        }
        ImageError::Registry {
            image: self.image.to_string(),
            registry: self.endpoint.host.clone(),
            failure: RegistryFailure::Unreachable,
            detail: format!("downloading {}: {text}", desc.digest),
        }
    }
}

async fn pull_from(
    store: &Store,
    image: &super::ImageRef,
    endpoint: &Endpoint,
    progress: Arc<dyn Progress>,
) -> Result<LocalImage, ImageError> {
    let config = ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent: USER_AGENT,
        ..Default::default()
    };
    let client = Client::try_from(config).map_err(|e| ImageError::Registry {
        image: image.to_string(),
        registry: endpoint.host.clone(),
        failure: RegistryFailure::Other,
        detail: format!("building the HTTP client: {e}"),
    })?;
    let session = Session {
        client,
        auth: endpoint.auth.clone(),
        image,
        endpoint,
    };
    let (bytes, digest) = session.manifest(None).await?;
    let fetched = Fetched::parse(&bytes).map_err(|detail| ImageError::Manifest {
        image: image.to_string(),
        detail,
    })?;
    let (index, manifest_bytes, manifest_digest) = match fetched {
        Fetched::Manifest(_) => (None, bytes.clone(), digest.clone()),
        Fetched::Index(list) => {
            let arch = host_arch();
            let chosen = list.select(arch).ok_or_else(|| ImageError::NoPlatform {
                image: image.to_string(),
                arch: arch.to_string(),
            })?;
            let (child, child_digest) = session.manifest(Some(&chosen.digest)).await?;
            store.put_blob(&digest, &bytes)?;
            (Some(digest.clone()), child, child_digest)
        }
    };
    let manifest = Manifest::parse(&manifest_bytes).map_err(|detail| ImageError::Manifest {
        image: image.to_string(),
        detail,
    })?;
    store.put_blob(&manifest_digest, &manifest_bytes)?;

    if manifest.config.size > MAX_CONFIG_BYTES {
        return Err(ImageError::TooLarge {
            what: format!("the config of {image}"),
            max: MAX_CONFIG_BYTES,
        });
    }
    session
        .blob(store, &manifest.config, &super::pull::Quiet)
        .await?;
    let config_bytes = store.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
    let config = ImageConfig::parse(&config_bytes, manifest.layers.len()).map_err(|detail| {
        ImageError::Manifest {
            image: image.to_string(),
            detail: format!("config {}: {detail}", manifest.config.digest),
        }
    })?;

    let layers: Vec<(&Descriptor, &Digest)> =
        manifest.layers.iter().zip(&config.diff_ids).collect();
    let total = layers.iter().map(|(d, _)| d.size).sum();
    let missing = layers
        .iter()
        .filter(|(d, diff)| !store.has_layer(diff) && !store.has_blob(&d.digest))
        .map(|(d, _)| d.size)
        .sum();
    progress.resolved(&image.to_string(), total, missing);
    let session = &session;
    let jobs = layers.into_iter().map(|(desc, diff_id)| {
        let progress = progress.clone();
        async move {
            if store.has_layer(diff_id) {
                return Ok(());
            }
            session.blob(store, desc, progress.as_ref()).await?;
            let (store, blob, diff) = (store.clone(), desc.digest.clone(), diff_id.clone());
            tokio::task::spawn_blocking(move || store.unpack(&blob, &diff))
                .await
                .map_err(|e| ImageError::Join(e.to_string()))?
                .map(|_| ())
        }
    });
    futures::future::try_join_all(jobs).await?;

    let record = ImageRecord {
        manifest: manifest_digest,
        index,
    };
    store.record(image, record.clone())?;
    store
        .load(image, &record)?
        .ok_or_else(|| ImageError::Manifest {
            image: image.to_string(),
            detail: "a part of the image vanished from the store while it was pulled".into(),
        })
}

/// Sorts oci-client's errors into what the user can act on, with the status or network cause.
fn classify(err: &OciDistributionError) -> (RegistryFailure, String) {
    use OciDistributionError as E;
    let failure = match err {
        E::ImageManifestNotFoundError(_) => RegistryFailure::NotFound,
        E::RegistryError { envelope, .. } => {
            let codes = format!("{envelope}");
            if codes.contains("UNKNOWN") {
                RegistryFailure::NotFound
            } else if codes.contains("UNAUTHORIZED") || codes.contains("DENIED") {
                RegistryFailure::Unauthorized
            } else {
                RegistryFailure::Other
            }
        }
        E::ServerError { code: 404, .. } => RegistryFailure::NotFound,
        E::ServerError {
            code: 401 | 403, ..
        }
        | E::UnauthorizedError { .. }
        | E::AuthenticationFailure(_) => RegistryFailure::Unauthorized,
        E::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
            RegistryFailure::Unreachable
        }
        E::IoError(_) => RegistryFailure::Unreachable,
        _ => RegistryFailure::Other,
    };
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    (failure, detail)
}
