//! The user a container runs as (containerd's `WithUser`, `WithUserID`, `WithAdditionalGIDs`):
//! `runAsUser`/`runAsGroup` when set, else the image's `User` (`user`, `uid`, `user:group`,
//! `uid:gid`, …) resolved in the image's `/etc/passwd` and `/etc/group`; additional groups are the
//! user's groups in the image plus the pod's `supplementalGroups` and `fsGroup`.
//!
//! The files are read from the image's layers (top layer first), opened with `RESOLVE_IN_ROOT`
//! so that a symlink in an image cannot point outside its layer, and read up to 1 MiB.
//!
//! Touches: `<layer>/etc/passwd`, `<layer>/etc/group` (read only).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// At most this much of `/etc/passwd` or `/etc/group` is read.
const MAX_FILE: u64 = 1 << 20;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// What decides the user.
#[derive(Debug, Clone, Default)]
pub struct UserRequest<'a> {
    pub image_user: Option<&'a str>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    /// `supplementalGroups` and `fsGroup` of the pod.
    pub extra_groups: Vec<i64>,
}

/// Resolves the user from the request and the image's `/etc/passwd` and `/etc/group` (absent
/// files are empty). Pure.
pub fn resolve(
    request: &UserRequest<'_>,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, String> {
    let id =
        |v: i64, what: &str| u32::try_from(v).map_err(|_| format!("{what} {v} is not a valid id"));
    let (image_user, image_group) = match request.image_user.filter(|u| !u.is_empty()) {
        None => ("0", None),
        Some(spec) => match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        },
    };
    let entry_by_uid = |uid: u32| passwd_entries(passwd).find(|e| e.uid == uid);
    let (uid, name, primary_gid) = match request.run_as_user {
        Some(v) => {
            let uid = id(v, "runAsUser")?;
            let entry = entry_by_uid(uid);
            (
                uid,
                entry.as_ref().map(|e| e.name.to_string()),
                entry.map_or(0, |e| e.gid),
            )
        }
        None => match image_user.parse::<u32>() {
            Ok(uid) => {
                let entry = entry_by_uid(uid);
                (
                    uid,
                    entry.as_ref().map(|e| e.name.to_string()),
                    entry.map_or(0, |e| e.gid),
                )
            }
            Err(_) => {
                let entry = passwd_entries(passwd)
                    .find(|e| e.name == image_user)
                    .ok_or_else(|| {
                        format!("the image's user {image_user:?} is not in its /etc/passwd")
                    })?;
                (entry.uid, Some(entry.name.to_string()), entry.gid)
            }
        },
    };
    let gid = match (request.run_as_group, request.run_as_user, image_group) {
        (Some(v), _, _) => id(v, "runAsGroup")?,
        // runAsUser without runAsGroup: the user's primary group, not the image's group.
        (None, Some(_), _) => primary_gid,
        (None, None, Some(g)) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("the image's group {g:?} is not in its /etc/group"))?,
        },
        (None, None, None) => primary_gid,
    };
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for entry in group_entries(group) {
            if entry.members.split(',').any(|m| m == name) && !additional_gids.contains(&entry.gid)
            {
                additional_gids.push(entry.gid);
            }
        }
    }
    for &extra in &request.extra_groups {
        let extra = id(extra, "supplementalGroups/fsGroup")?;
        if !additional_gids.contains(&extra) {
            additional_gids.push(extra);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        Some(PasswdEntry {
            name,
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        Some(GroupEntry {
            name,
            gid: f.next()?.parse().ok()?,
            members: f.next().unwrap_or_default(),
        })
    })
}

/// `relative` (such as `etc/passwd`) from the topmost layer that has it, resolved inside that
/// layer; empty when no layer has it or a layer deleted it (a `.wh.` whiteout).
pub fn read_from_layers(layers: &[PathBuf], relative: &str) -> String {
    let whiteout = {
        let path = Path::new(relative);
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        name.map(|n| path.with_file_name(format!(".wh.{n}")))
    };
    for layer in layers.iter().rev() {
        if let Some(text) = read_in_root(layer, Path::new(relative)) {
            return text;
        }
        if whiteout
            .as_ref()
            .is_some_and(|w| read_in_root(layer, w).is_some())
        {
            return String::new();
        }
    }
    String::new()
}

fn read_in_root(root: &Path, relative: &Path) -> Option<String> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let dir = std::fs::File::open(root).ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(dir.as_fd(), relative, how).ok()?;
    let file = std::fs::File::from(fd);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:34:\nwheel:x:10:www,root\nnogroup:x:65534:\n";

    fn user(request: UserRequest<'_>) -> Result<ResolvedUser, String> {
        resolve(&request, PASSWD, GROUP)
    }

    #[test]
    fn no_user_anywhere_is_root() {
        let u = user(UserRequest::default()).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, vec![10], "root is a member of wheel");
    }

    #[test]
    fn image_user_by_name_takes_its_primary_group_and_memberships() {
        let u = user(UserRequest {
            image_user: Some("www"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 33,
                gid: 34,
                additional_gids: vec![10]
            }
        );
    }

    #[test]
    fn image_user_and_group_forms() {
        let ids = |spec: &str| {
            let u = user(UserRequest {
                image_user: Some(spec),
                ..Default::default()
            })
            .unwrap();
            (u.uid, u.gid)
        };
        assert_eq!(ids("1000"), (1000, 0), "an unknown uid gets group 0");
        assert_eq!(ids("65534"), (65534, 65534));
        assert_eq!(ids("www:nogroup"), (33, 65534));
        assert_eq!(ids("1000:5"), (1000, 5));
        assert_eq!(ids("33:wheel"), (33, 10));
        assert!(user(UserRequest {
            image_user: Some("ghost"),
            ..Default::default()
        })
        .unwrap_err()
        .contains("\"ghost\""));
    }

    #[test]
    fn run_as_user_and_group_override_the_image() {
        let u = user(UserRequest {
            image_user: Some("www:wheel"),
            run_as_user: Some(65534),
            run_as_group: None,
            extra_groups: vec![2000],
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        assert_eq!(u.additional_gids, vec![2000]);
        let u = user(UserRequest {
            image_user: Some("www"),
            run_as_group: Some(7),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (33, 7));
        assert!(user(UserRequest {
            run_as_user: Some(-1),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn reads_from_the_topmost_layer_and_honours_whiteouts_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir_all(p.join("etc")).unwrap();
            p
        };
        let (bottom, middle, top) = (layer("0"), layer("1"), layer("2"));
        std::fs::write(bottom.join("etc/passwd"), "bottom").unwrap();
        std::fs::write(middle.join("etc/passwd"), "middle").unwrap();
        let layers = vec![bottom.clone(), middle.clone(), top.clone()];
        assert_eq!(read_from_layers(&layers, "etc/passwd"), "middle");
        std::fs::write(top.join("etc/.wh.passwd"), "").unwrap();
        assert_eq!(read_from_layers(&layers, "etc/passwd"), "");
        // A symlink to an absolute host path resolves inside the layer, not on the host.
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "host secret").unwrap();
        std::os::unix::fs::symlink(&outside, top.join("etc/group")).unwrap();
        assert_eq!(read_from_layers(&layers, "etc/group"), "");
    }
}
