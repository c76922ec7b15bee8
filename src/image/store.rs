//! The content store under `/var/lib/boot/images` (0700, an owned tree in the init ledger):
//!
//! ```text
//! blobs/sha256/<hex>     manifests, indexes, configs and layer blobs, each verified before it
//!                        is renamed into place
//! layers/sha256/<hex>    each layer unpacked once, keyed by its diff_id: an overlay lower dir
//! images.json            image name (normalised reference) → manifest digest
//! tmp/                   partial downloads and unpacks; never read, cleared by gc
//! locks/                 flock files: one per blob and layer, so that concurrent pulls of the
//!                        same content share the work, and `gc` that excludes them all
//! ```
//!
//! A blob or layer is visible only after its digest (and diff_id) checked out, so a pull killed at
//! any point leaves nothing corrupt behind: the next one starts that blob over.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::{Digest, Hasher, HashingWriter};
use super::manifest::{ImageConfig, Manifest};
use super::reference::ImageRef;
use super::unpack::unpack_layer;
use super::ImageError;
use crate::host::{write_all, HostRoot, RenderedFile};

/// The store's host path.
pub const STORE_PATH: &str = "/var/lib/boot/images";
/// Bounds on what is read into memory: containerd refuses manifests over 4 MiB; configs of real
/// images are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;
const MAX_INDEX_FILE_BYTES: u64 = 16 << 20;

/// The local image store.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An image present in the store, ready to run: what the OCI runtime needs.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The normalised reference it was found under.
    pub reference: ImageRef,
    /// The image ID: the config digest, as containerd's CRI reports it.
    pub id: Digest,
    /// The digest the registry serves the image under (the index's when pulled through one).
    pub manifest_digest: Digest,
    /// `name@sha256:…`: what the kubelet shows as a container's `imageID`.
    pub repo_digests: Vec<String>,
    /// The image configuration (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, …).
    pub config: oci_spec::image::ImageConfiguration,
    /// Unpacked layer directories, bottom first: overlay lower dirs (reverse them for `lowerdir=`).
    pub layers: Vec<PathBuf>,
    /// Sum of the layer blob sizes.
    pub size: u64,
}

/// `images.json`: name → record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageIndex {
    pub images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The platform manifest.
    pub manifest: Digest,
    /// The index (manifest list) it was chosen from, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

impl ImageRecord {
    /// The digest that names the image in its repository.
    pub fn repo_digest(&self) -> &Digest {
        self.index.as_ref().unwrap_or(&self.manifest)
    }
}

/// A held lock; released on drop (or by the kernel when the process dies).
pub struct StoreLock(#[allow(dead_code)] Flock<File>);

impl Store {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &HostRoot) -> Result<Store, ImageError> {
        Store::open_dir(root.path(STORE_PATH))
    }

    pub fn open_dir(dir: PathBuf) -> Result<Store, ImageError> {
        for sub in ["blobs/sha256", "layers/sha256", "tmp", "locks"] {
            let path = dir.join(sub);
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|source| ImageError::Store { path, source })?;
        }
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(diff_id.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    fn io(&self, path: PathBuf) -> impl FnOnce(io::Error) -> ImageError {
        move |source| ImageError::Store { path, source }
    }

    /// Takes the named lock (blocking). Shared locks are held by pulls and imports; `gc` takes
    /// the `store` lock exclusively.
    pub fn lock(&self, name: &str, exclusive: bool) -> Result<StoreLock, ImageError> {
        let path = self.dir.join("locks").join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(self.io(path.clone()))?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(file, arg)
            .map(StoreLock)
            .map_err(|(_, errno)| (self.io(path))(io::Error::from(errno)))
    }

    /// A new temporary path under `tmp/` (unique per process and call).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{what}.{}.{n}", std::process::id()))
    }

    /// Starts writing the blob `digest` of `size` bytes. `None` when the store already has it.
    /// Holds the blob's lock until committed or dropped, so a second writer waits and then finds
    /// the blob present.
    pub fn blob_writer(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<BlobWriter>, ImageError> {
        if self.has_blob(digest) {
            return Ok(None);
        }
        let lock = self.lock(&format!("blob-{}", digest.hex()), true)?;
        if self.has_blob(digest) {
            return Ok(None);
        }
        let tmp = self.temp_path(&format!("blob-{}", digest.hex()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(self.io(tmp.clone()))?;
        Ok(Some(BlobWriter {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            tmp,
            target: self.blob_path(digest),
            expected: digest.clone(),
            size,
            hasher: Hasher::default(),
            _lock: lock,
        }))
    }

    /// Stores `bytes` as the blob `digest` (manifests and configs), verifying it.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
        if let Some(mut writer) = self.blob_writer(digest, bytes.len() as u64)? {
            writer.write(bytes)?;
            writer.commit()?;
        }
        Ok(())
    }

    /// Stores what `reader` yields under the digest it hashes to (legacy `docker save` layers).
    pub fn put_blob_computed(&self, reader: &mut dyn Read) -> Result<(Digest, u64), ImageError> {
        let tmp = self.temp_path("blob-import");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(self.io(tmp.clone()))?;
        let mut out = HashingWriter {
            inner: io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Hasher::default(),
        };
        let copied = io::copy(reader, &mut out).and_then(|_| out.flush());
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err((self.io(tmp))(e));
        }
        let size = out.hasher.len();
        let digest = out.hasher.finish();
        let target = self.blob_path(&digest);
        if target.is_file() {
            let _ = fs::remove_file(&tmp);
        } else {
            fs::rename(&tmp, &target).map_err(self.io(target))?;
        }
        Ok((digest, size))
    }

    /// Reads a small blob (manifest, config) into memory, at most `max` bytes.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(self.io(path.clone()))?;
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(self.io(path.clone()))?;
        if bytes.len() as u64 > max {
            return Err(ImageError::TooLarge {
                what: digest.to_string(),
                max,
            });
        }
        Ok(bytes)
    }

    /// Unpacks the layer blob `blob` into `layers/sha256/<diff_id>` unless it is there already,
    /// checking the uncompressed stream against `diff_id`. Blocking.
    pub fn unpack(&self, blob: &Digest, diff_id: &Digest) -> Result<PathBuf, ImageError> {
        let target = self.layer_path(diff_id);
        if target.is_dir() {
            return Ok(target);
        }
        let _lock = self.lock(&format!("layer-{}", diff_id.hex()), true)?;
        if target.is_dir() {
            return Ok(target);
        }
        let tmp = self.temp_path(&format!("layer-{}", diff_id.hex()));
        DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(self.io(tmp.clone()))?;
        let result = unpack_layer(&self.blob_path(blob), &tmp);
        let outcome = match result {
            Ok((actual, _)) if &actual == diff_id => fs::rename(&tmp, &target)
                .map_err(self.io(target.clone()))
                .map(|()| target),
            Ok((actual, _)) => Err(ImageError::DigestMismatch {
                what: format!("layer {blob} (uncompressed)"),
                expected: diff_id.clone(),
                actual,
            }),
            Err(source) => Err(ImageError::Unpack {
                layer: blob.clone(),
                source,
            }),
        };
        if outcome.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        outcome
    }

    pub fn read_index(&self) -> Result<ImageIndex, ImageError> {
        let path = self.dir.join("images.json");
        let bytes = crate::host::read_bounded_if_exists(
            &path,
            MAX_INDEX_FILE_BYTES,
            crate::host::Links::Refuse,
        )
        .map_err(|e| (self.io(path.clone()))(e.into()))?;
        let Some(bytes) = bytes else {
            return Ok(ImageIndex::default());
        };
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Changes `images.json` under its lock, atomically.
    pub fn update_index(&self, change: impl FnOnce(&mut ImageIndex)) -> Result<(), ImageError> {
        let _lock = self.lock("images.json", true)?;
        let mut index = self.read_index()?;
        change(&mut index);
        let path = self.dir.join("images.json");
        let mut bytes = serde_json::to_vec_pretty(&index)
            .map_err(io::Error::other)
            .map_err(self.io(path.clone()))?;
        bytes.push(b'\n');
        write_all(&[RenderedFile::new(path.clone(), 0o600, bytes)]).map_err(|e| ImageError::Store {
            path,
            source: e.source,
        })
    }

    pub fn record(&self, image: &ImageRef, record: ImageRecord) -> Result<(), ImageError> {
        self.update_index(|index| {
            index.images.insert(image.to_string(), record);
        })
    }

    /// The record for `image`: by its name, or for a digest reference any record of the same
    /// repository with that digest.
    pub fn find_record(&self, image: &ImageRef) -> Result<Option<ImageRecord>, ImageError> {
        let index = self.read_index()?;
        if let Some(record) = index.images.get(&image.to_string()) {
            return Ok(Some(record.clone()));
        }
        let Some(digest) = image.digest() else {
            return Ok(None);
        };
        let name = image.name();
        Ok(index
            .images
            .iter()
            .filter(|(key, _)| key.starts_with(&name) && key[name.len()..].starts_with([':', '@']))
            .map(|(_, record)| record)
            .find(|r| &r.manifest == digest || r.index.as_ref() == Some(digest))
            .cloned())
    }

    /// The image if it is fully present: record, manifest, config and every unpacked layer.
    pub fn resolve(&self, image: &ImageRef) -> Result<Option<LocalImage>, ImageError> {
        match self.find_record(image)? {
            Some(record) => self.load(image, &record),
            None => Ok(None),
        }
    }

    /// Reads an image's manifest and config from the store; `None` when a part is missing.
    pub fn load(
        &self,
        image: &ImageRef,
        record: &ImageRecord,
    ) -> Result<Option<LocalImage>, ImageError> {
        if !self.has_blob(&record.manifest) {
            return Ok(None);
        }
        let manifest = Manifest::parse(&self.read_blob(&record.manifest, MAX_MANIFEST_BYTES)?)
            .map_err(|reason| ImageError::Corrupt {
                path: self.blob_path(&record.manifest),
                reason,
            })?;
        if !self.has_blob(&manifest.config.digest) {
            return Ok(None);
        }
        let config_bytes = self.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
        let config =
            ImageConfig::parse(&config_bytes, manifest.layers.len()).map_err(|reason| {
                ImageError::Corrupt {
                    path: self.blob_path(&manifest.config.digest),
                    reason,
                }
            })?;
        let mut layers = Vec::with_capacity(config.diff_ids.len());
        for diff_id in &config.diff_ids {
            let dir = self.layer_path(diff_id);
            if !dir.is_dir() {
                return Ok(None);
            }
            layers.push(dir);
        }
        Ok(Some(LocalImage {
            reference: image.clone(),
            id: manifest.config.digest.clone(),
            manifest_digest: record.repo_digest().clone(),
            repo_digests: vec![format!("{}@{}", image.name(), record.repo_digest())],
            config: config.spec,
            layers,
            size: manifest.layers.iter().map(|l| l.size).sum(),
        }))
    }
}

/// A blob being written: hashed as it is written, renamed into place by [`BlobWriter::commit`]
/// only when its size and digest are right.
pub struct BlobWriter {
    file: io::BufWriter<File>,
    tmp: PathBuf,
    target: PathBuf,
    expected: Digest,
    size: u64,
    hasher: Hasher,
    _lock: StoreLock,
}

impl BlobWriter {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        if self.hasher.len() + bytes.len() as u64 > self.size {
            return Err(ImageError::SizeMismatch {
                what: self.expected.to_string(),
                expected: self.size,
                actual: self.hasher.len() + bytes.len() as u64,
            });
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|source| ImageError::Store {
                path: self.tmp.clone(),
                source,
            })
    }

    /// The digest of what was written so far (for reporting a mismatch found elsewhere).
    pub fn digest_so_far(&self) -> Digest {
        self.hasher.clone().finish()
    }

    pub fn commit(mut self) -> Result<(), ImageError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Store { path, source }
        };
        if self.hasher.len() != self.size {
            return Err(ImageError::SizeMismatch {
                what: self.expected.to_string(),
                expected: self.size,
                actual: self.hasher.len(),
            });
        }
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.expected {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {}", self.expected),
                expected: self.expected.clone(),
                actual,
            });
        }
        self.file.flush().map_err(io_err(&self.tmp))?;
        fs::rename(&self.tmp, &self.target).map_err(io_err(&self.target))?;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful commit the temporary file was renamed away; otherwise it goes.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path().join("images")).unwrap();
        (dir, store)
    }

    fn tmp_is_empty(store: &Store) -> bool {
        fs::read_dir(store.dir().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    }

    #[test]
    fn a_blob_becomes_visible_only_when_its_digest_matches() {
        let (_dir, store) = store();
        let digest = Digest::of(b"content");
        let mut writer = store.blob_writer(&digest, 7).unwrap().unwrap();
        writer.write(b"CONTENT").unwrap();
        assert!(matches!(
            writer.commit(),
            Err(ImageError::DigestMismatch { .. })
        ));
        assert!(!store.has_blob(&digest));
        assert!(tmp_is_empty(&store), "the partial file was left behind");

        let mut writer = store.blob_writer(&digest, 7).unwrap().unwrap();
        assert!(matches!(
            writer.write(b"content and more"),
            Err(ImageError::SizeMismatch { .. })
        ));
        drop(writer);
        assert!(tmp_is_empty(&store));

        store.put_blob(&digest, b"content").unwrap();
        assert_eq!(store.read_blob(&digest, 100).unwrap(), b"content");
        assert!(
            store.blob_writer(&digest, 7).unwrap().is_none(),
            "present blobs are not written again"
        );
        assert!(matches!(
            store.read_blob(&digest, 3),
            Err(ImageError::TooLarge { .. })
        ));
    }

    #[test]
    fn records_resolve_by_name_and_by_digest() {
        let (_dir, store) = store();
        let manifest = Digest::of(b"m");
        let image: ImageRef = "r.example/app:v1".parse().unwrap();
        store
            .record(
                &image,
                ImageRecord {
                    manifest: manifest.clone(),
                    index: None,
                },
            )
            .unwrap();
        assert!(store.find_record(&image).unwrap().is_some());
        let by_digest = image.with_digest(manifest.clone());
        assert_eq!(
            store.find_record(&by_digest).unwrap().unwrap().manifest,
            manifest
        );
        let other: ImageRef = format!("r.example/app2@{manifest}").parse().unwrap();
        assert!(
            store.find_record(&other).unwrap().is_none(),
            "another repository's digest"
        );
        // Recorded, but the manifest blob is missing: not present.
        assert!(store.resolve(&image).unwrap().is_none());
    }
}
