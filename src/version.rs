//! Component versions (`v1.34.2`, `3.5.15-0`) and the version-dependent facts `boot` renders by.

use std::fmt;
use std::str::FromStr;

/// A semantic version as Kubernetes and etcd print them; `v` prefix and build suffixes accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Whatever followed the patch number (`-0`, `-rc.1`, `+k3s1`), kept for display only.
    pub suffix: String,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
            suffix: String::new(),
        }
    }

    /// True when `self` is at least `major.minor.patch`, ignoring any suffix.
    pub fn at_least(&self, major: u64, minor: u64, patch: u64) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    /// Finds the first version-looking token in a `--version` output line such as
    /// `Kubernetes v1.34.2` or `etcd Version: 3.4.23`.
    pub fn find_in(text: &str) -> Option<Version> {
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|word| {
                word.trim_start_matches('v')
                    .starts_with(|c: char| c.is_ascii_digit())
            })
            .find_map(|word| word.parse().ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a version (expected MAJOR.MINOR.PATCH, e.g. v1.34.2)")]
pub struct VersionError(pub String);

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(s.to_string());
        let body = s.strip_prefix('v').unwrap_or(s);
        let end = body.find(['-', '+']).unwrap_or(body.len());
        let (numbers, suffix) = body.split_at(end);
        let mut parts = numbers.split('.');
        let mut next = |required: bool| -> Result<u64, VersionError> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map_err(|_| err())
                }
                None if !required => Ok(0),
                _ => Err(err()),
            }
        };
        let (major, minor, patch) = (next(true)?, next(true)?, next(false)?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Version {
            major,
            minor,
            patch,
            suffix: suffix.to_string(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}{}",
            self.major, self.minor, self.patch, self.suffix
        )
    }
}

/// The Kubernetes version `boot` renders for when neither the configuration nor a binary on the
/// host says otherwise (kubeadm resolves `stable-1` online; `boot` works offline).
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.36.2";

/// The etcd image tag kubeadm pairs with each Kubernetes minor (`SupportedEtcdVersion` in
/// kubeadm's `constants.go`); the nearest entry is used for minors outside the table.
const SUPPORTED_ETCD: &[(u64, &str)] = &[
    (31, "3.5.15-0"),
    (32, "3.5.16-0"),
    (33, "3.5.21-0"),
    (34, "3.6.5-0"),
    (35, "3.6.5-0"),
    (36, "3.6.6-0"),
];

/// The etcd image tag kubeadm uses for a Kubernetes version.
pub fn etcd_tag_for(kubernetes: &Version) -> &'static str {
    SUPPORTED_ETCD
        .iter()
        .min_by_key(|(minor, _)| minor.abs_diff(kubernetes.minor))
        .map(|(_, tag)| *tag)
        .expect("table is not empty")
}

/// The image tag kubeadm derives from a version: every character outside `[-a-zA-Z0-9_.]`
/// becomes `_` (`KubernetesVersionToImageTag`).
pub fn image_tag(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_and_etcd_versions() {
        assert_eq!(
            "v1.34.2".parse::<Version>().unwrap(),
            Version::new(1, 34, 2)
        );
        let etcd: Version = "3.5.15-0".parse().unwrap();
        assert_eq!(
            (etcd.major, etcd.minor, etcd.patch, etcd.suffix.as_str()),
            (3, 5, 15, "-0")
        );
        assert_eq!("1.31".parse::<Version>().unwrap(), Version::new(1, 31, 0));
        for bad in ["", "v", "1", "1.x.0", "1.2.3.4", "stable-1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn finds_versions_in_version_output() {
        assert_eq!(
            Version::find_in("Kubernetes v1.31.4").unwrap(),
            Version::new(1, 31, 4)
        );
        assert_eq!(
            Version::find_in("etcd Version: 3.4.23\nGit SHA: x").unwrap(),
            Version::new(3, 4, 23)
        );
    }

    #[test]
    fn etcd_tag_follows_kubeadm_table() {
        assert_eq!(etcd_tag_for(&Version::new(1, 31, 0)), "3.5.15-0");
        assert_eq!(etcd_tag_for(&Version::new(1, 34, 1)), "3.6.5-0");
        assert_eq!(etcd_tag_for(&Version::new(1, 40, 0)), "3.6.6-0");
        assert!(Version::new(3, 5, 11) > "3.5.10-0".parse().unwrap());
        assert!("3.5.11-0".parse::<Version>().unwrap().at_least(3, 5, 11));
    }

    #[test]
    fn the_default_is_the_newest_minor_boot_knows() {
        let default: Version = DEFAULT_KUBERNETES_VERSION.parse().unwrap();
        let newest = SUPPORTED_ETCD.iter().map(|(minor, _)| *minor).max();
        assert_eq!((default.major, Some(default.minor)), (1, newest));
    }

    #[test]
    fn image_tags_replace_invalid_characters() {
        assert_eq!(image_tag("v1.34.0+k3s1"), "v1.34.0_k3s1");
    }
}
