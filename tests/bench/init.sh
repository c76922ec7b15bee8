#!/usr/bin/env bash
# Benchmarks `boot init` (issue 4). Not a test: prints numbers for docs/src/performance.md.
#
#   tests/bench/init.sh [ROUNDS]     # uses target/release/boot if built, else target/debug/boot
#
# Each round runs, on fresh temporary roots with their own ports:
#   1. `boot init` until it reports a healthy control plane (post-boot included), then reset;
#   2. the floor: the same binaries with exactly the same command lines (taken from the manifests
#      `boot manifests --pki` renders for the same configuration) started by this script, which
#      then polls the same health endpoints until all answer 200.
# The difference is boot's overhead (PKI, rendering, agent start, its polling). Rounds alternate so
# a noisy machine affects both alike. Needs Debian's etcd (/usr/bin/etcd).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${BOOT:-}" ]]; then
    BOOT=target/release/boot
    [[ -x $BOOT ]] || BOOT=target/debug/boot
fi
BIN_DIR=$(dirname "$BOOT")
[[ -x $BIN_DIR/boot-standin ]] || { echo "build first: cargo build [--release] --bins" >&2; exit 2; }
exec python3 - "$(realpath "$BOOT")" "$(realpath "$BIN_DIR")" "${1:-5}" <<'PY'
import os, shutil, socket, ssl, subprocess, sys, tempfile, time, urllib.request, yaml

boot, bin_dir, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
IGNORE = "--ignore-preflight-errors=FileContent--proc-sys-net-ipv4-ip_forward,NumCPU,Mem"

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def setup():
    d = tempfile.mkdtemp(prefix="boot-init-bench-")
    bins = os.path.join(d, "bin"); os.makedirs(bins)
    for name in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]:
        os.symlink(os.path.join(bin_dir, "boot-standin"), os.path.join(bins, name))
    os.symlink("/usr/bin/etcd", os.path.join(bins, "etcd"))
    api, client, peer, metrics, kcm, sched, status = (free_port() for _ in range(7))
    cfg = f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: {api}}}
nodeRegistration: {{name: bench}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    extraArgs:
    - {{name: listen-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: advertise-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: listen-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-advertise-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-cluster, value: "bench=https://127.0.0.1:{peer}"}}
    - {{name: listen-metrics-urls, value: "http://127.0.0.1:{metrics}"}}
controllerManager: {{extraArgs: [{{name: secure-port, value: "{kcm}"}}]}}
scheduler: {{extraArgs: [{{name: secure-port, value: "{sched}"}}]}}
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
runtime: process
binDirs: [{bins}]
agent: {{statusAddress: "127.0.0.1:{status}"}}
"""
    path = os.path.join(d, "config.yaml")
    open(path, "w").write(cfg)
    return d, path

def run_boot_init():
    d, cfg = setup()
    root = os.path.join(d, "root")
    t = time.monotonic()
    out = subprocess.run([boot, "init", "--config", cfg, "--root", root, IGNORE], capture_output=True, text=True)
    took = time.monotonic() - t
    if out.returncode != 0:
        sys.exit("boot init failed:\n" + out.stdout + out.stderr)
    subprocess.run([boot, "reset", "--force", "--root", root], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
    return took

def endpoint(pod):
    c = pod["spec"]["containers"][0]
    probe = c.get("readinessProbe") or c.get("startupProbe") or c["livenessProbe"]
    h = probe["httpGet"]
    port = h["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in c["ports"] if p["name"] == port)
    return f'{h["scheme"].lower()}://{h.get("host") or "127.0.0.1"}:{port}{h["path"]}'

def healthy(url, ctx):
    try:
        with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
            return 200 <= r.status < 400
    except Exception:
        return False

def run_floor():
    d, cfg = setup()
    root = os.path.join(d, "root")
    subprocess.run([boot, "manifests", "--pki", "--config", cfg, "--root", root], check=True, capture_output=True)
    pods = [yaml.safe_load(open(os.path.join(root, "etc/kubernetes/manifests", f"{n}.yaml")))
            for n in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]]
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    bins = os.path.join(d, "bin")
    t = time.monotonic()
    procs = []
    for pod in pods:
        cmd = pod["spec"]["containers"][0]["command"]
        procs.append(subprocess.Popen([os.path.join(bins, cmd[0])] + cmd[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    urls = [endpoint(p) for p in pods]
    while not all(healthy(u, ctx) for u in urls):
        time.sleep(0.05)
    took = time.monotonic() - t
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    shutil.rmtree(d, ignore_errors=True)
    return took

inits, floors = [], []
for _ in range(rounds):
    inits.append(run_boot_init())
    floors.append(run_floor())
med = lambda xs: sorted(xs)[len(xs) // 2]
print(f"boot init (PKI, kubeconfigs, manifests, agent, wait, post-boot): median {med(inits)*1000:.0f} ms over {rounds} rounds "
      f"(min {min(inits)*1000:.0f}, max {max(inits)*1000:.0f})")
print(f"floor (same binaries and flags started by a script, same health endpoints): median {med(floors)*1000:.0f} ms "
      f"(min {min(floors)*1000:.0f}, max {max(floors)*1000:.0f})")
print(f"boot's overhead: {(med(inits) - med(floors))*1000:.0f} ms (ratio {med(inits)/med(floors):.2f})")
PY
