//! Identifiers from pod manifests that become host paths or names: a pod's UID (the netns file,
//! the emptyDir and cgroup directories, the log directory), its namespace and full name (the log
//! directory), container and volume names (log and cgroup directories, emptyDir directories).
//! Each type's constructor refuses what the API server's validation refuses (DNS-1123 labels and
//! subdomains, `apimachinery/pkg/util/validation`), so once a value has one of these types it can
//! be joined to a path without reaching outside the directory it is joined to. Pure.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a value was refused, for the caller to name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: {rule}")]
pub struct InvalidName {
    pub value: String,
    pub what: &'static str,
    pub rule: &'static str,
}

const DNS_LABEL_RULE: &str =
    "at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (RFC 1123)";
const DNS_SUBDOMAIN_RULE: &str =
    "at most 253 characters of dot-separated DNS labels (RFC 1123 subdomain)";
const UID_RULE: &str =
    "1 to 128 letters, digits, '-', '_' or '.', not starting with '.' (a UUID or a hash)";

/// A DNS-1123 label (`IsDNS1123Label`).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (`IsDNS1123Subdomain`).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<$name, InvalidName> {
                let value = value.into();
                if $check(&value) {
                    Ok($name(value))
                } else {
                    Err(InvalidName { value, what: $what, rule: $rule })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        /// Values read back from records are checked again: state files are untrusted too.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                $name::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// `metadata.uid`, or the kubelet-style hash of a static pod without one.
    PodUid, "pod UID", is_uid, UID_RULE
);
validated_name!(
    /// `metadata.namespace` (`ValidateNamespaceName`: a DNS label).
    Namespace, "namespace", is_dns_label, DNS_LABEL_RULE
);
validated_name!(
    /// `metadata.name`, and the static pod's full name `<name>-<node>` (DNS subdomains).
    PodName, "pod name", is_dns_subdomain, DNS_SUBDOMAIN_RULE
);
validated_name!(
    /// A container's `name` (a DNS label).
    ContainerName, "container name", is_dns_label, DNS_LABEL_RULE
);
validated_name!(
    /// A volume's `name` (a DNS label).
    VolumeName, "volume name", is_dns_label, DNS_LABEL_RULE
);

/// Whether `path` has a `..` component (the API server's `validatePathNoBacksteps`).
pub fn has_backsteps(path: &str) -> bool {
    path.split('/').any(|part| part == "..")
}

/// A `volumeMounts[].subPath`: relative and without `..` (`validateLocalDescendingPath`).
pub fn check_sub_path(sub_path: &str) -> Result<(), &'static str> {
    if sub_path.starts_with('/') {
        return Err("must be a relative path");
    }
    if has_backsteps(sub_path) {
        return Err("must not contain '..'");
    }
    if sub_path.contains('\0') {
        return Err("must not contain NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_refuse_what_would_escape_a_directory() {
        for bad in [
            "/etc/passwd",
            "..",
            ".",
            "a/b",
            "",
            "x\0y",
            &"u".repeat(129),
        ] {
            assert!(PodUid::new(bad).is_err(), "{bad:?}");
        }
        for good in [
            "0b1e0c6c-1c9f-4a4e-9d8e-5f1b7c3a2d10",
            "6c62272e07bb014262b821756295c58d",
        ] {
            assert_eq!(PodUid::new(good).unwrap().as_str(), good);
        }
        assert!(Namespace::new("kube-system").is_ok());
        for bad in ["../x", "Kube", "a.b", "-a", ""] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
        assert!(PodName::new("etcd-node1.example").is_ok());
        assert!(PodName::new("a/../b").is_err());
        assert!(VolumeName::new("k8s-certs").is_ok());
        assert!(VolumeName::new("../../etc").is_err());
        assert!(ContainerName::new("c_1").is_err());
        let err = PodUid::new("/etc/shadow").unwrap_err().to_string();
        assert!(
            err.contains("\"/etc/shadow\" is not a valid pod UID"),
            "{err}"
        );
    }

    #[test]
    fn records_are_validated_when_read_back() {
        assert!(serde_json::from_str::<PodUid>("\"../../x\"").is_err());
        let uid: PodUid = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(serde_json::to_string(&uid).unwrap(), "\"abc\"");
    }

    #[test]
    fn sub_paths_stay_below_their_volume() {
        assert!(check_sub_path("conf/a.yaml").is_ok());
        assert!(check_sub_path("/etc").is_err());
        assert!(check_sub_path("a/../../b").is_err());
        assert!(check_sub_path("..").is_err());
        assert!(check_sub_path("a..b").is_ok());
    }
}
