//! Removing images and collecting garbage: `boot images rm` drops names, `boot images prune` drops
//! every name no static pod manifest uses, and both then delete the blobs and unpacked layers no
//! remaining image references, and everything under `tmp/` (partial pulls). Collection holds the
//! store lock exclusively, so it never races a pull or an import (they hold it shared).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::digest::Digest;
use super::manifest::{ImageConfig, Manifest};
use super::reference::ImageRef;
use super::store::{Store, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use super::ImageError;

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub images: Vec<String>,
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

/// Removes the names `images` (canonical or digest references), then collects garbage. A name
/// not in the store is an error naming it, and nothing is removed.
pub fn remove(store: &Store, images: &[ImageRef]) -> Result<Collected, ImageError> {
    let index = store.read_index()?;
    let mut names = Vec::new();
    for image in images {
        let name = image.to_string();
        if index.images.contains_key(&name) {
            names.push(name);
        } else {
            return Err(ImageError::Manifest {
                image: name,
                detail: "no such image in the store".into(),
            });
        }
    }
    store.update_index(|index| {
        for name in &names {
            index.images.remove(name);
        }
    })?;
    let mut collected = collect(store)?;
    collected.images = names;
    Ok(collected)
}

/// Removes every image that none of `used` names (by name, or by digest for digest references),
/// then collects garbage.
pub fn prune(store: &Store, used: &[ImageRef]) -> Result<Collected, ImageError> {
    let mut keep = BTreeSet::new();
    for image in used {
        keep.insert(image.to_string());
        if let (Some(digest), Some(_)) = (image.digest(), store.find_record(image)?) {
            let index = store.read_index()?;
            for (name, record) in &index.images {
                if &record.manifest == digest || record.index.as_ref() == Some(digest) {
                    keep.insert(name.clone());
                }
            }
        }
    }
    let mut removed = Vec::new();
    store.update_index(|index| {
        index.images.retain(|name, _| {
            let kept = keep.contains(name);
            if !kept {
                removed.push(name.clone());
            }
            kept
        });
    })?;
    let mut collected = collect(store)?;
    collected.images = removed;
    Ok(collected)
}

/// Deletes unreferenced blobs and layers and all temporary files.
pub fn collect(store: &Store) -> Result<Collected, ImageError> {
    let _exclusive = store.lock("store", true)?;
    let (blobs, layers) = referenced(store)?;
    let mut collected = Collected::default();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Store { path, source }
    };
    let blob_dir = store.dir().join("blobs/sha256");
    for entry in fs::read_dir(&blob_dir).map_err(io(&blob_dir))? {
        let entry = entry.map_err(io(&blob_dir))?;
        let keep = entry
            .file_name()
            .to_str()
            .and_then(|n| Digest::from_hex(n).ok())
            .is_some_and(|d| blobs.contains(&d));
        if !keep {
            collected.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            remove_entry(&entry.path()).map_err(io(&entry.path()))?;
            collected.blobs += 1;
        }
    }
    let layer_dir = store.dir().join("layers/sha256");
    for entry in fs::read_dir(&layer_dir).map_err(io(&layer_dir))? {
        let entry = entry.map_err(io(&layer_dir))?;
        let keep = entry
            .file_name()
            .to_str()
            .and_then(|n| Digest::from_hex(n).ok())
            .is_some_and(|d| layers.contains(&d));
        if !keep {
            remove_entry(&entry.path()).map_err(io(&entry.path()))?;
            collected.layers += 1;
        }
    }
    let tmp = store.dir().join("tmp");
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
        let entry = entry.map_err(io(&tmp))?;
        remove_entry(&entry.path()).map_err(io(&entry.path()))?;
    }
    Ok(collected)
}

/// Never follows a symlink: a link is removed itself.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path)? {
        m if m.is_dir() => fs::remove_dir_all(path),
        _ => fs::remove_file(path),
    }
}

/// Blobs and layers (diff_ids) the recorded images use. A record whose manifest or config is
/// unreadable keeps what can be read of it.
fn referenced(store: &Store) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>), ImageError> {
    let index = store.read_index()?;
    let mut blobs = BTreeSet::new();
    let mut layers = BTreeSet::new();
    for record in index.images.values() {
        if let Some(list) = &record.index {
            // Other platforms' manifests were never stored: the index alone is kept.
            blobs.insert(list.clone());
        }
        blobs.insert(record.manifest.clone());
        let Ok(bytes) = store.read_blob(&record.manifest, MAX_MANIFEST_BYTES) else {
            continue;
        };
        let Ok(manifest) = Manifest::parse(&bytes) else {
            continue;
        };
        blobs.insert(manifest.config.digest.clone());
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        if let Ok(config) = store
            .read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)
            .map_err(|e| e.to_string())
            .and_then(|b| ImageConfig::parse(&b, manifest.layers.len()))
        {
            layers.extend(config.diff_ids);
        }
    }
    Ok((blobs, layers))
}
