#!/usr/bin/env bash
# Benchmarks the static pod agent (issue 3). Not a test: prints numbers for docs/src/performance.md.
#
#   tests/bench/agent.sh            # uses target/release/boot if built, else target/debug/boot
#   BOOT=path/to/boot tests/bench/agent.sh
#
# Runs `boot agent` over a temporary root with stand-in pods (tcp probes, kubelet default
# periods) and measures: the agent's resident memory and CPU while supervising 4 and 100 pods
# (plus the per-container log relays' memory, reported separately), the time from a manifest
# change to the new process running, and the time from a crash (SIGKILL) to the restarted
# process running, with the CrashLoopBackOff set to 0 (--backoff-initial-ms 0; the kubelet's
# first restart is immediate anyway, later ones wait 10 s, 20 s, ...).
# Needs root for cgroups and network namespaces (works without, with fewer features).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${BOOT:-}" ]]; then
    BOOT=target/release/boot
    [[ -x $BOOT ]] || BOOT=target/debug/boot
fi
BIN_DIR=$(dirname "$BOOT")
[[ -x $BIN_DIR/boot-standin ]] || { echo "build first: cargo build [--release] --bins" >&2; exit 2; }
exec python3 - "$BOOT" "$BIN_DIR" <<'PY'
import glob, json, os, signal, socket, subprocess, sys, tempfile, time

boot, bin_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
root = tempfile.mkdtemp(prefix="boot-bench-")
manifests = os.path.join(root, "etc/kubernetes/manifests")
os.makedirs(manifests)
ticks = os.sysconf("SC_CLK_TCK")

def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports

def write(name, text):
    tmp = os.path.join(manifests, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(manifests, name))

def standin(name, port, tag=""):
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: kube-system}}
spec:
  hostNetwork: true
  containers:
  - name: main
    image: boot-standin
    args: ['--listen=127.0.0.1:{port}'{tag}]
    readinessProbe: {{tcpSocket: {{host: 127.0.0.1, port: {port}}}, periodSeconds: 10}}
    livenessProbe: {{tcpSocket: {{host: 127.0.0.1, port: {port}}}, periodSeconds: 10}}
"""

def status():
    out = subprocess.run([boot, "status", "--root", root, "-o", "json"], capture_output=True, text=True)
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None)

def wait_healthy(n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        code, s = status()
        if code == 0 and s and len(s["pods"]) == n:
            return
        time.sleep(0.2)
    code, s = status()
    unhealthy = [(p["name"], p.get("reason")) for p in (s or {}).get("pods", []) if p.get("reason")]
    problems = (s or {}).get("manifestProblems")
    sys.exit(f"timed out waiting for {n} healthy pods: {len((s or {}).get('pods', []))} pods, unhealthy {unhealthy[:5]}, problems {problems}")

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

def relays_rss():
    total = count = 0
    for d in glob.glob("/proc/[0-9]*"):
        try:
            cmd = open(d + "/cmdline", "rb").read().split(b"\0")
            if len(cmd) > 1 and cmd[1] == b"log-relay" and root.encode() in b" ".join(cmd):
                total += rss_kib(d[6:]); count += 1
        except OSError:
            pass
    return total, count

def find(needle):
    for d in glob.glob("/proc/[0-9]*"):
        try:
            if needle in open(d + "/cmdline", "rb").read():
                st = open(d + "/stat").read().rsplit(")", 1)[1].split()
                if st[0] != "Z":
                    return int(d[6:])
        except OSError:
            pass
    return None

def wait_process(needle, other_than=None, timeout=30):
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        pid = find(needle)
        if pid and pid != other_than:
            return pid, time.perf_counter() - start
        time.sleep(0.0005)
    sys.exit(f"timed out waiting for a process with {needle!r}")

def measure(label, pods, window=20):
    wait_healthy(pods)
    time.sleep(2)
    c0, t0 = cpu_seconds(agent.pid), time.time()
    time.sleep(window)
    cpu = (cpu_seconds(agent.pid) - c0) / (time.time() - t0) * 100
    relay_kib, relays = relays_rss()
    print(f"{label}: agent RSS {rss_kib(agent.pid) / 1024:.1f} MiB, CPU {cpu:.2f}% of one core over {window}s; "
          f"{relays} log relays, {relay_kib / 1024:.1f} MiB RSS together")

log = open(os.path.join(root, "agent.log"), "w")
agent = subprocess.Popen([boot, "agent", "--runtime", "process", "--root", root, "--node-name", "bench", "--status-address", "none",
                          "--bin-dir", bin_dir, "--stop-pods-on-exit", "--backoff-initial-ms", "0"],
                         stdout=log, stderr=log)
try:
    print(f"boot: {boot}")
    ports = free_ports(101)
    for i in range(4):
        write(f"cp-{i}.yaml", standin(f"cp-{i}", ports[i]))
    measure("4 pods", 4)
    for i in range(4, 100):
        write(f"pod-{i:03}.yaml", standin(f"pod-{i:03}", ports[i]))
    measure("100 pods", 100)

    # Manifest change → new process running.
    samples = []
    for round in range(5):
        old = find(b"--listen=127.0.0.1:%d" % ports[0])
        tag = f", '--tag=r{round}'"
        t = time.perf_counter()
        write("cp-0.yaml", standin("cp-0", ports[100 if round % 2 == 0 else 0], tag))
        pid, _ = wait_process(f"--tag=r{round}".encode())
        samples.append((time.perf_counter() - t) * 1000)
        wait_healthy(100)
    print(f"manifest change -> new process running: {', '.join(f'{s:.0f}' for s in samples)} ms")

    # Crash → restart, back-off 0.
    write("crash.yaml", standin("crash", free_ports(1)[0], ", '--tag=crashy'"))
    samples = []
    for _ in range(5):
        pid, _ = wait_process(b"--tag=crashy")
        t = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        new, _ = wait_process(b"--tag=crashy", other_than=pid)
        samples.append((time.perf_counter() - t) * 1000)
    print(f"crash (SIGKILL) -> restarted process running, back-off 0: {', '.join(f'{s:.1f}' for s in samples)} ms")
finally:
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(60)
    except subprocess.TimeoutExpired:
        agent.kill()
    subprocess.run(["rm", "-rf", root])
PY
