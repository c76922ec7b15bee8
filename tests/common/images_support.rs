//! Helpers for the image tests: a real registry (Debian's `docker-registry`) on a free loopback
//! port with filesystem storage in a temporary directory, images built by the tests' own tar
//! writer as OCI layouts, `skopeo` to push them, and a throttling TCP proxy for a slow registry.
//! Everything started here stops on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

// A test crate may include two support modules that both bring `wait`: two copies, no harm.
#[path = "http.rs"]
pub mod http;
#[allow(clippy::duplicate_mod)]
#[path = "wait.rs"]
pub mod wait;
#[allow(unused_imports)] // each test crate uses a different part
pub use wait::wait_for;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry serve` process; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub storage: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(binary: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            // The access log (one line per request) goes to stdout.
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            storage,
            log,
            _dir: dir,
        };
        wait_for(
            "the registry to answer /v2/",
            Duration::from_secs(20),
            || http::get(http::loopback(port), "/v2/").is_some_and(|a| a.status == 200),
        );
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many blob downloads (GET …/blobs/sha256:…) the registry answered so far.
    pub fn blob_gets(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// The file the registry stores blob `hex` in.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A layer under construction: entries in order, written as a tar by the `tar` crate (or with
/// raw names for hostile entries).
#[derive(Default)]
pub struct Layer {
    builder: Option<tar::Builder<Vec<u8>>>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn b(&mut self) -> &mut tar::Builder<Vec<u8>> {
        self.builder.as_mut().unwrap()
    }

    fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        // Raw bytes: tar's set_path refuses `..`, and hostile layers need it.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, name, mode, 0);
        h.set_cksum();
        self.b().append(&h, &[][..]).unwrap();
        self
    }

    pub fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.file_owned(name, mode, 0, 0, data)
    }

    pub fn file_owned(mut self, name: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, name, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b().append(&h, data).unwrap();
        self
    }

    pub fn file_with_xattr(mut self, name: &str, data: &[u8], key: &str, value: &str) -> Self {
        let line = pax_record(&format!("SCHILY.xattr.{key}"), value);
        let mut pax = Self::header(
            tar::EntryType::XHeader,
            "PaxHeaders/x",
            0o644,
            line.len() as u64,
        );
        pax.set_cksum();
        self.b().append(&pax, line.as_bytes()).unwrap();
        self.file(name, 0o644, data)
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, name, 0o777, 0);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.b().append(&h, &[][..]).unwrap();
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, name, 0o644, 0);
        let bytes = target.as_bytes();
        h.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        self.b().append(&h, &[][..]).unwrap();
        self
    }

    pub fn char_device(mut self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Char, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b().append(&h, &[][..]).unwrap();
        self
    }

    pub fn tar(mut self) -> Vec<u8> {
        self.builder.take().unwrap().into_inner().unwrap()
    }
}

/// `LEN key=value\n`, where LEN counts the whole record including itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    loop {
        let record = format!("{len}{body}");
        if record.len() == len {
            return record;
        }
        len = record.len();
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes an OCI image layout at `dir` with one image of `layers` (uncompressed tars; stored
/// gzipped) tagged `tag`; returns the manifest digest hex.
pub fn write_layout(dir: &Path, tag: &str, layers: &[Vec<u8>], cmd: &[&str]) -> String {
    let config = serde_json::json!({"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"});
    write_layout_with_config(dir, tag, layers, config)
}

/// [`write_layout`] with the image configuration's `config` object given (`Entrypoint`, `Env`…).
pub fn write_layout_with_config(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    image_config: serde_json::Value,
) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (hex, bytes.len())
    };
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for layer in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(layer)));
        let (hex, size) = put(&gzip(layer));
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{hex}"), "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_hex, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{config_hex}"), "size": config_size},
        "layers": descriptors,
    });
    let (manifest_hex, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{manifest_hex}"), "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifest_hex
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A busybox-static root file system as one layer: /bin/busybox and the /bin/sh link.
pub fn busybox_layer(busybox: &Path) -> Vec<u8> {
    let binary = std::fs::read(busybox).unwrap();
    Layer::new()
        .dir("bin/", 0o755)
        .file("bin/busybox", 0o755, &binary)
        .symlink("bin/sh", "busybox")
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .tar()
}

/// Pushes the layout at `dir` (tag `tag`) to `registry` as `name` with skopeo.
pub fn push(skopeo: &Path, dir: &Path, tag: &str, registry: &str, name: &str) {
    let out = Command::new(skopeo)
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", dir.display()))
        .arg(format!("docker://{registry}/{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `boot --root ROOT ARGS…`.
pub fn boot(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boot"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A TCP proxy to `upstream` that forwards at most `bytes_per_sec` downstream; counts requests
/// for blobs. Stops on drop.
pub struct SlowProxy {
    pub port: u16,
    pub blob_requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    pub fn start(upstream: u16, bytes_per_sec: u64) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let blob_requests = Arc::new(AtomicU64::new(0));
        let (stop2, count) = (stop.clone(), blob_requests.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        relay(client, server, bytes_per_sec, count.clone(), stop2.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SlowProxy {
            port,
            blob_requests,
            stop,
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    rate: u64,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            count.fetch_add(
                text.matches("GET /v2/")
                    .filter(|_| text.contains("/blobs/"))
                    .count() as u64,
                Ordering::Relaxed,
            );
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let chunk = (rate / 20).max(1) as usize;
        let mut buf = vec![0u8; chunk];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = s_read.read(&mut buf) else { break };
            if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                break;
            }
            // The throttle itself: a rate limit is made of waiting.
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
}
