//! A static pod's identity, as the kubelet computes it (reference §7 "Identity"): the hex of an
//! FNV-128a hash over the pod object, then `host:<nodeName>` and `file:<path>`. Any edit of the
//! content, a rename of the file or another node name gives a new identity, which the agent treats
//! as "stop the old pod, start the new one".
//!
//! The kubelet hashes Go's `DeepHashObject` dump of the pod; `boot` hashes the pod's canonical JSON,
//! so the values differ from the kubelet's but change exactly when the object changes (comments and
//! formatting in the file do not count, as for the kubelet).

/// FNV-128a offset basis and prime (FNV spec; Go's `hash/fnv.New128a`).
const FNV128_OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const FNV128_PRIME: u128 = 0x0000000001000000000000000000013B;

/// FNV-128a, the hash the kubelet's static pod source uses for pod UIDs.
#[derive(Debug, Clone, Copy)]
pub struct Fnv128a(u128);

impl Default for Fnv128a {
    fn default() -> Self {
        Fnv128a(FNV128_OFFSET)
    }
}

impl Fnv128a {
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u128::from(*byte);
            self.0 = self.0.wrapping_mul(FNV128_PRIME);
        }
    }

    /// The 32 hex digits of the hash, big-endian, as Go's `hex.EncodeToString(h.Sum(nil))`.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

/// The pod UID of a static pod: hash of its canonical JSON, the node name and the file path.
pub fn static_pod_uid(canonical_json: &[u8], node_name: &str, path: &str) -> String {
    let mut hash = Fnv128a::default();
    hash.write(canonical_json);
    hash.write(format!("host:{node_name}").as_bytes());
    hash.write(format!("file:{path}").as_bytes());
    hash.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv128a_matches_known_vectors() {
        // Reference values from Go's hash/fnv (fnv.New128a).
        assert_eq!(Fnv128a::default().hex(), "6c62272e07bb014262b821756295c58d");
        let mut h = Fnv128a::default();
        h.write(b"a");
        assert_eq!(h.hex(), "d228cb696f1a8caf78912b704e4a8964");
    }

    #[test]
    fn uid_changes_with_content_node_and_path() {
        let base = static_pod_uid(b"{}", "node1", "/m/a.yaml");
        assert_eq!(base.len(), 32);
        assert_eq!(base, static_pod_uid(b"{}", "node1", "/m/a.yaml"));
        assert_ne!(base, static_pod_uid(b"{\"a\":1}", "node1", "/m/a.yaml"));
        assert_ne!(base, static_pod_uid(b"{}", "node2", "/m/a.yaml"));
        assert_ne!(base, static_pod_uid(b"{}", "node1", "/m/b.yaml"));
    }
}
