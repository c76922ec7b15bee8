//! Benchmark, not a test (ignored by default): boot's RSA key generation (aws-lc through rcgen,
//! on every core) against `openssl genrsa` generating the same keys with the same parallelism,
//! alternating in one run so the ratio is meaningful on a noisy machine. Issue 12 asks for at most
//! 1.2×. Run: `cargo test --release --test bench_rsa_keys -- --ignored --nocapture`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boot::pki::{generate_keys, KeyAlgorithm};

const ROUNDS: usize = 9;
/// The keys of a full kubeadm PKI with its kubeconfigs (`bench_manifests` counts them).
const KEYS: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `openssl genrsa BITS` for `n` keys, as many at once as there are cores.
fn openssl_genrsa(bits: u32, n: usize, parallel: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(parallel);
        let children: Vec<_> = (0..batch)
            .map(|_| {
                Command::new("openssl")
                    .args(["genrsa", &bits.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("openssl runs")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        left -= batch;
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn rsa_key_generation_against_openssl() {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (algorithm, bits) in [(KeyAlgorithm::Rsa2048, 2048), (KeyAlgorithm::Rsa4096, 4096)] {
        let (rounds, keys) = if bits == 2048 { (ROUNDS, KEYS) } else { (3, 4) };
        let mut ours = Vec::new();
        let mut openssl = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            assert_eq!(generate_keys(algorithm, keys).unwrap().len(), keys);
            ours.push(start.elapsed());
            let start = Instant::now();
            openssl_genrsa(bits, keys, parallel);
            openssl.push(start.elapsed());
        }
        let (ours, openssl) = (median(ours), median(openssl));
        println!(
            "{algorithm}: {keys} keys on {parallel} cores: boot {:.0} ms, openssl genrsa {:.0} ms, ratio {:.2} (median of {rounds})",
            ours.as_secs_f64() * 1e3,
            openssl.as_secs_f64() * 1e3,
            ours.as_secs_f64() / openssl.as_secs_f64()
        );
    }
}
