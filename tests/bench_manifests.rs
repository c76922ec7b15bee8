//! Benchmark, not a test (ignored by default): how long `boot manifests --pki` takes, against the
//! time to generate the same number of keys alone, in one run so the ratio is meaningful on a noisy
//! machine. Run: `cargo test --release --test bench_manifests -- --ignored --nocapture`.

use std::process::Command;
use std::time::{Duration, Instant};

use boot::pki::{generate_keys, KeyAlgorithm};

const ROUNDS: usize = 9;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn manifests_with_pki_against_key_generation_alone() {
    for (name, algorithm) in [
        ("RSA-2048", KeyAlgorithm::Rsa2048),
        ("ECDSA-P256", KeyAlgorithm::EcdsaP256),
    ] {
        let mut whole = Vec::new();
        let mut keys_alone = Vec::new();
        let mut key_count = 0;
        for _ in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("config.yaml");
            std::fs::write(&config, format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: {name}\n")).unwrap();
            let out = dir.path().join("out");
            let start = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_boot"))
                .args([
                    "manifests",
                    "--pki",
                    "--node-name",
                    "bench",
                    "--apiserver-advertise-address",
                    "127.0.0.1",
                    "--config",
                ])
                .arg(&config)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            whole.push(start.elapsed());
            assert!(
                status.status.success(),
                "{}",
                String::from_utf8_lossy(&status.stderr)
            );
            // Every .key plus the four kubeconfig client keys.
            key_count = walk(&out)
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "key"))
                .count()
                + 4;
            let start = Instant::now();
            generate_keys(algorithm, key_count).unwrap();
            keys_alone.push(start.elapsed());
        }
        let (whole, keys) = (median(whole), median(keys_alone));
        println!(
            "{name}: boot manifests --pki {:.1} ms; {key_count} keys alone {:.1} ms; the rest {:.1} ms ({:.0}% of the total)",
            whole.as_secs_f64() * 1e3,
            keys.as_secs_f64() * 1e3,
            whole.saturating_sub(keys).as_secs_f64() * 1e3,
            100.0 * whole.saturating_sub(keys).as_secs_f64() / whole.as_secs_f64()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
