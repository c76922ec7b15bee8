#!/usr/bin/env bash
# Benchmarks the OCI runtime (issue 8). Not a test: prints numbers for docs/src/performance.md.
#
#   tests/bench/containers.sh            # release build of the benchmark
#   PROFILE=dev tests/bench/containers.sh
#
# Measures, for a busybox container built from busybox-static (`sleep 1000`, RuntimeDefault
# seccomp, hostNetwork), the time from its spec to its process running: boot's OCI runtime (image
# config + Pod → config.json, overlay mount, libcontainer through `boot oci-shim`) against
# `runc run -d` and `crun run -d` of the same config.json on an overlay of the same layers,
# median of 15 runs each, in one run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=(--release)
[[ "${PROFILE:-release}" == dev ]] && profile=()
exec cargo test "${profile[@]}" --test oci_bench -- --ignored --nocapture --test-threads=1
