//! Air-gapped import (reference §4): an OCI image layout, as a directory or a tar (what `skopeo
//! copy … oci-archive:` writes), and `docker save` archives, legacy (`manifest.json` with
//! `<id>/layer.tar`) and Engine 25+ (an OCI layout plus `manifest.json`). Like containerd's
//! importer, an `oci-layout` file makes it OCI, else `manifest.json` makes it Docker.
//!
//! One pass over the input: `blobs/sha256/<hex>` go into the store verified against their names,
//! legacy layer tars are stored under the digest they hash to, other small files (index.json,
//! manifest.json, legacy configs) are kept in memory. Then each named image is checked (manifest,
//! config, every layer's diff_id while unpacking) and recorded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::digest::Digest;
use super::manifest::{host_arch, Fetched, ImageConfig, Manifest, DOCKER_MANIFEST};
use super::reference::ImageRef;
use super::store::{ImageRecord, Store, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use super::ImageError;

/// Files other than blobs kept in memory: the whole set is metadata.
const MAX_SMALL_FILE: u64 = 8 << 20;
const MAX_SMALL_TOTAL: u64 = 64 << 20;
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Imports the layout or archive at `path`; `name` names images the input leaves unnamed (an
/// OCI layout whose `ref.name` is only a tag). Returns the names recorded.
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&ImageRef>,
) -> Result<Vec<ImageRef>, ImageError> {
    let fail = |reason: String| ImageError::Import {
        path: path.to_path_buf(),
        reason,
    };
    let _shared = store.lock("store", false)?;
    let mut input = Ingested::default();
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.is_dir() {
        walk_dir(store, path, Path::new(""), &mut input).map_err(|e| with_path(e, path))?;
    } else {
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut archive = tar::Archive::new(io::BufReader::with_capacity(256 * 1024, file));
        for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
            let mut entry = entry.map_err(|e| fail(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let rel = entry.path().map_err(|e| fail(e.to_string()))?.into_owned();
            let size = entry.size();
            input
                .add(store, &rel, size, &mut entry)
                .map_err(|e| with_path(e, path))?;
        }
    }
    let images = if input.small.contains_key("oci-layout") {
        input
            .oci_images(store, name)
            .map_err(|e| with_path(e, path))?
    } else if input.small.contains_key("manifest.json") {
        input.docker_images(store).map_err(|e| with_path(e, path))?
    } else {
        return Err(fail(
            "neither an oci-layout file nor a manifest.json".into(),
        ));
    };
    if images.is_empty() {
        return Err(fail("it names no image".into()));
    }
    let mut names = Vec::new();
    for (image, manifest) in images {
        install(store, &manifest)?;
        store.record(
            &image,
            ImageRecord {
                manifest,
                index: None,
            },
        )?;
        names.push(image);
    }
    Ok(names)
}

/// Errors without a path (a bad manifest inside the archive) get the archive's.
fn with_path(err: ImageError, path: &Path) -> ImageError {
    match err {
        ImageError::Manifest { image, detail } => ImageError::Import {
            path: path.to_path_buf(),
            reason: format!("{image}: {detail}"),
        },
        other => other,
    }
}

/// Checks the manifest's config and unpacks its layers.
fn install(store: &Store, manifest_digest: &Digest) -> Result<(), ImageError> {
    let bad = |detail: String| ImageError::Manifest {
        image: manifest_digest.to_string(),
        detail,
    };
    let manifest =
        Manifest::parse(&store.read_blob(manifest_digest, MAX_MANIFEST_BYTES)?).map_err(bad)?;
    if !store.has_blob(&manifest.config.digest) {
        return Err(bad(format!("config {} is missing", manifest.config.digest)));
    }
    let config = ImageConfig::parse(
        &store.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?,
        manifest.layers.len(),
    )
    .map_err(bad)?;
    for (layer, diff_id) in manifest.layers.iter().zip(&config.diff_ids) {
        if store.has_layer(diff_id) {
            continue;
        }
        if !store.has_blob(&layer.digest) {
            return Err(bad(format!("layer {} is missing", layer.digest)));
        }
        store.unpack(&layer.digest, diff_id)?;
    }
    Ok(())
}

fn walk_dir(
    store: &Store,
    base: &Path,
    rel: &Path,
    input: &mut Ingested,
) -> Result<(), ImageError> {
    let dir = base.join(rel);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: io::Error| ImageError::Import {
            path,
            reason: e.to_string(),
        }
    };
    for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        let entry = entry.map_err(io_err(&dir))?;
        let kind = entry.file_type().map_err(io_err(&entry.path()))?;
        let child = rel.join(entry.file_name());
        if kind.is_dir() {
            walk_dir(store, base, &child, input)?;
        } else if kind.is_file() {
            let mut file = File::open(entry.path()).map_err(io_err(&entry.path()))?;
            let size = file.metadata().map_err(io_err(&entry.path()))?.len();
            input.add(store, &child, size, &mut file)?;
        } // symlinks are not followed out of the layout
    }
    Ok(())
}

#[derive(Default)]
struct Ingested {
    /// Small files by their cleaned relative path.
    small: BTreeMap<String, Vec<u8>>,
    small_total: u64,
    /// Large non-blob files (legacy `layer.tar`) stored under their digest.
    stored: BTreeMap<String, (Digest, u64)>,
}

impl Ingested {
    fn add(
        &mut self,
        store: &Store,
        path: &Path,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<(), ImageError> {
        let Some(rel) = clean(path) else {
            return Ok(()); // `..` entries are not part of any layout: ignored, never written
        };
        if let Some(hex) = rel.strip_prefix("blobs/sha256/") {
            let digest = Digest::from_hex(hex).map_err(|e| ImageError::Manifest {
                image: rel.clone(),
                detail: e.to_string(),
            })?;
            if let Some(mut writer) = store.blob_writer(&digest, size)? {
                copy_into(reader, |chunk| writer.write(chunk))?;
                writer.commit()?;
            }
            self.stored.insert(rel, (digest, size));
        } else if size <= MAX_SMALL_FILE && self.small_total + size <= MAX_SMALL_TOTAL {
            let mut bytes = Vec::with_capacity(size as usize);
            reader
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(|e| read_error(&rel, e))?;
            self.small_total += size;
            self.small.insert(rel, bytes);
        } else {
            let stored = store.put_blob_computed(reader)?;
            self.stored.insert(rel, stored);
        }
        Ok(())
    }

    /// The digest of an input file, storing small ones as blobs on the way.
    fn blob_of(&self, store: &Store, rel: &str) -> Result<Option<Digest>, ImageError> {
        let rel = clean(Path::new(rel)).unwrap_or_default();
        if let Some((digest, _)) = self.stored.get(&rel) {
            return Ok(Some(digest.clone()));
        }
        match self.small.get(&rel) {
            Some(bytes) => {
                let digest = Digest::of(bytes);
                store.put_blob(&digest, bytes)?;
                Ok(Some(digest))
            }
            None => Ok(None),
        }
    }

    fn oci_images(
        &self,
        store: &Store,
        name: Option<&ImageRef>,
    ) -> Result<Vec<(ImageRef, Digest)>, ImageError> {
        let bad = |detail: String| ImageError::Manifest {
            image: "index.json".into(),
            detail,
        };
        let layout = &self.small["oci-layout"];
        let version: LayoutVersion =
            serde_json::from_slice(layout).map_err(|e| bad(format!("oci-layout: {e}")))?;
        if version.image_layout_version != "1.0.0" {
            return Err(bad(format!(
                "unsupported imageLayoutVersion {}",
                version.image_layout_version
            )));
        }
        let index_bytes = self
            .small
            .get("index.json")
            .ok_or_else(|| bad("index.json is missing".into()))?;
        let index: LayoutIndex =
            serde_json::from_slice(index_bytes).map_err(|e| bad(e.to_string()))?;
        let docker_tags = self.docker_repo_tags();
        let mut images = Vec::new();
        for (i, entry) in index.manifests.iter().enumerate() {
            let annotated = entry.annotations.get(CONTAINERD_NAME).or_else(|| {
                entry
                    .annotations
                    .get(OCI_REF_NAME)
                    .filter(|n| n.contains(['/', ':']))
            });
            let image = match (annotated, docker_tags.get(i), name) {
                (Some(full), _, _) => full.parse::<ImageRef>()?,
                (None, Some(tag), _) => tag.parse::<ImageRef>()?,
                (None, None, Some(name)) => name.clone(),
                (None, None, None) => {
                    return Err(bad(format!(
                        "manifest {} has no image name; give one with --name",
                        entry.digest
                    )))
                }
            };
            let manifest = self.platform_manifest(store, &entry.digest)?;
            images.push((image, manifest));
        }
        Ok(images)
    }

    /// Follows an index entry down to this platform's manifest.
    fn platform_manifest(&self, store: &Store, digest: &Digest) -> Result<Digest, ImageError> {
        let mut digest = digest.clone();
        for _ in 0..4 {
            let bytes =
                store
                    .read_blob(&digest, MAX_MANIFEST_BYTES)
                    .map_err(|_| ImageError::Manifest {
                        image: digest.to_string(),
                        detail: "the manifest is missing from the layout".into(),
                    })?;
            match Fetched::parse(&bytes).map_err(|detail| ImageError::Manifest {
                image: digest.to_string(),
                detail,
            })? {
                Fetched::Manifest(_) => return Ok(digest),
                Fetched::Index(index) => {
                    digest = index
                        .select(host_arch())
                        .ok_or_else(|| ImageError::NoPlatform {
                            image: digest.to_string(),
                            arch: host_arch().into(),
                        })?
                        .digest
                        .clone();
                }
            }
        }
        Err(ImageError::Manifest {
            image: digest.to_string(),
            detail: "indexes nested too deeply".into(),
        })
    }

    fn docker_manifest(&self) -> Vec<DockerEntry> {
        self.small
            .get("manifest.json")
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    /// Engine 25+ lists one `manifest.json` entry per index entry, in order.
    fn docker_repo_tags(&self) -> Vec<String> {
        self.docker_manifest()
            .into_iter()
            .filter_map(|e| e.repo_tags.into_iter().next())
            .collect()
    }

    /// Legacy `docker save`: builds an image manifest over the stored config and layer tars.
    fn docker_images(&self, store: &Store) -> Result<Vec<(ImageRef, Digest)>, ImageError> {
        let entries: Vec<DockerEntry> = serde_json::from_slice(&self.small["manifest.json"])
            .map_err(|e| ImageError::Manifest {
                image: "manifest.json".into(),
                detail: e.to_string(),
            })?;
        let mut images = Vec::new();
        for entry in entries {
            let missing = |what: &str| ImageError::Manifest {
                image: "manifest.json".into(),
                detail: format!("{what} is not in the archive"),
            };
            let config = self
                .blob_of(store, &entry.config)?
                .ok_or_else(|| missing(&entry.config))?;
            let config_size = std::fs::metadata(store.blob_path(&config))
                .map(|m| m.len())
                .unwrap_or(0);
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let digest = self.blob_of(store, layer)?.ok_or_else(|| missing(layer))?;
                let size = std::fs::metadata(store.blob_path(&digest))
                    .map(|m| m.len())
                    .unwrap_or(0);
                layers.push(serde_json::json!({
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                    "digest": digest.to_string(),
                    "size": size,
                }));
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": config.to_string(),
                    "size": config_size,
                },
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Manifest {
                image: "manifest.json".into(),
                detail: e.to_string(),
            })?;
            let digest = Digest::of(&bytes);
            store.put_blob(&digest, &bytes)?;
            for tag in &entry.repo_tags {
                images.push((tag.parse::<ImageRef>()?, digest.clone()));
            }
        }
        Ok(images)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutVersion {
    image_layout_version: String,
}

#[derive(Deserialize)]
struct LayoutIndex {
    manifests: Vec<LayoutEntry>,
}

#[derive(Deserialize)]
struct LayoutEntry {
    digest: Digest,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// A relative path without `.`, `/` or `..` (None when it has `..`).
fn clean(path: &Path) -> Option<String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    out.to_str().map(str::to_string)
}

fn read_error(rel: &str, e: io::Error) -> ImageError {
    ImageError::Manifest {
        image: rel.to_string(),
        detail: format!("reading: {e}"),
    }
}

fn copy_into(
    reader: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), ImageError>,
) -> Result<(), ImageError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error("blob", e)),
        };
        sink(&buf[..n])?;
    }
}
