//! A pod's sandbox for the OCI runtime: what its containers share apart from the network (the
//! network namespace comes from the sandbox's `netns`). containerd keeps these in a pause
//! container; boot keeps them as files that outlive the agent, as `ip netns` does: the pod's IPC
//! and UTS namespaces bind-mounted on files (the UTS one carries the pod's hostname), its
//! `/dev/shm` (a 64 MiB tmpfs), and the rendered `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf` and termination-log files.
//!
//! Touches: `<root>/run/boot/oci/pods/<uid>/` (mounts and files, 0700 directory).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::runtime::linux::mounts::is_mount_point;

use crate::host::RenderedFile;

/// containerd's per-sandbox `/dev/shm` size (`defaultShmSize`, 64 MiB).
const SHM_SIZE: &str = "size=65536k";

/// The files of one pod's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxDirs {
    pub dir: PathBuf,
}

/// What the sandbox needs besides its directory.
#[derive(Debug, Clone)]
pub struct SandboxFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
    /// New IPC and `/dev/shm` unless `hostIPC`.
    pub own_ipc: bool,
    /// A new UTS namespace with the pod's hostname unless `hostNetwork`.
    pub own_uts: bool,
}

impl SandboxDirs {
    pub fn new(dir: PathBuf) -> SandboxDirs {
        SandboxDirs { dir }
    }
    pub fn ipc(&self) -> PathBuf {
        self.dir.join("ipc")
    }
    pub fn uts(&self) -> PathBuf {
        self.dir.join("uts")
    }
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
    /// The termination log of one run of a container (`<name>-<restart>`).
    pub fn termination_log(&self, container: &str, restart: u32) -> PathBuf {
        self.dir
            .join("termination")
            .join(format!("{container}-{restart}"))
    }

    /// Creates what is missing (idempotent: a restarted agent finds its mounts again); the files
    /// are rewritten each time.
    pub fn create(&self, files: &SandboxFiles) -> Result<(), String> {
        let err = |what: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", what.display());
        for dir in [self.dir.clone(), self.dir.join("termination")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| err(&dir, &e))?;
        }
        // Containers running as other users must reach the bind-mounted files.
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o711))
            .map_err(|e| err(&self.dir, &e))?;
        let file = |path: PathBuf, text: String| RenderedFile {
            path,
            mode: 0o644,
            bytes: text.into_bytes(),
        };
        crate::host::write_all(&[
            file(self.hosts(), files.hosts.clone()),
            file(self.hostname(), format!("{}\n", files.hostname)),
            file(self.resolv_conf(), files.resolv_conf.clone()),
        ])
        .map_err(|e| e.to_string())?;
        if files.own_ipc {
            namespace_file(&self.ipc(), CloneFlags::CLONE_NEWIPC, None)
                .map_err(|e| err(&self.ipc(), &e))?;
            let shm = self.shm();
            if !is_mount_point(&shm) {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .recursive(true)
                    .create(&shm)
                    .map_err(|e| err(&shm, &e))?;
                let options = format!("mode=1777,{SHM_SIZE}");
                mount(
                    Some("shm"),
                    &shm,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    Some(options.as_str()),
                )
                .map_err(|e| err(&shm, &e))?;
            }
        }
        if files.own_uts {
            namespace_file(
                &self.uts(),
                CloneFlags::CLONE_NEWUTS,
                Some(files.hostname.clone()),
            )
            .map_err(|e| err(&self.uts(), &e))?;
        }
        Ok(())
    }

    /// An empty 0666 termination-log file for one run of a container.
    pub fn create_termination_log(&self, container: &str, restart: u32) -> io::Result<PathBuf> {
        let path = self.termination_log(container, restart);
        fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o666)
            .open(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
        Ok(path)
    }

    /// Unmounts the namespaces and `/dev/shm` and removes the directory; leaves everything in
    /// place if a mount cannot be removed.
    pub fn remove(&self) -> io::Result<()> {
        for mounted in [self.ipc(), self.uts(), self.shm()] {
            if is_mount_point(&mounted) {
                let _ = umount2(&mounted, MntFlags::MNT_DETACH);
                if is_mount_point(&mounted) {
                    return Err(io::Error::other(format!(
                        "{} is still mounted",
                        mounted.display()
                    )));
                }
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// A new namespace of `kind` bind-mounted on `path` (kept when already mounted). `unshare`
/// changes only the calling thread, so a short-lived thread does it.
fn namespace_file(path: &Path, kind: CloneFlags, hostname: Option<String>) -> io::Result<()> {
    if nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
    {
        return Ok(());
    }
    fs::File::create(path)?;
    let target = path.to_path_buf();
    let proc_name = if kind == CloneFlags::CLONE_NEWUTS {
        "uts"
    } else {
        "ipc"
    };
    std::thread::spawn(move || -> io::Result<()> {
        nix::sched::unshare(kind)?;
        if let Some(name) = hostname {
            nix::unistd::sethostname(name)?;
        }
        mount(
            Some(format!("/proc/thread-self/ns/{proc_name}").as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}
