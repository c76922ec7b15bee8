#!/usr/bin/env bash
# Benchmarks image pulls (issue 7). Not a test: prints numbers for docs/src/performance.md.
#
#   tests/bench/images.sh [ROUNDS]   # uses target/release/boot if built, else target/debug/boot
#   K8S_BIN=/work/k8s-bin tests/bench/images.sh
#
# Builds four images laid out like the upstream control-plane images (a small base layer from
# Debian's busybox-static, then one gzip layer with the component binaries: kube-apiserver,
# kube-controller-manager and kube-scheduler from $K8S_BIN, etcd and etcdctl from Debian's
# etcd), pushes them to a local `docker-registry` on a free loopback port, then per round, in one
# run, on fresh directories:
#   1. `boot images pull` of the four (layers fetched in parallel, digests checked while
#      streaming, unpacked once);
#   2. the same four with `skopeo copy docker://… oci:…` then `umoci unpack`, the four
#      pipelines run in parallel;
#   3. `boot images pull` again with everything present (target: well under 100 ms).
# Needs root (umoci unpack and boot's device nodes), docker-registry, skopeo, umoci, busybox.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
if [[ -z "${BOOT:-}" ]]; then
    BOOT=target/release/boot
    [[ -x $BOOT ]] || BOOT=target/debug/boot
fi
BOOT=$(realpath "$BOOT")
K8S_BIN=${K8S_BIN:-/work/k8s-bin}
for tool in docker-registry skopeo umoci busybox python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
[[ -x $K8S_BIN/kube-apiserver ]] || { echo "set K8S_BIN to the unpacked Kubernetes binaries" >&2; exit 2; }

WORK=$(mktemp -d /tmp/boot-bench-images.XXXXXX)
REGISTRY_PID=
cleanup() {
    [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM # so that the EXIT trap stops the registry

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/registry } }
http: { addr: 127.0.0.1:$PORT }
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break
    sleep 0.05
done

echo "building and pushing the four images..." >&2
python3 - "$WORK" "$K8S_BIN" "$(command -v busybox)" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
work, k8s, busybox = sys.argv[1:4]
def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, path, mode in files:
            if path is None:
                info = tarfile.TarInfo(name); info.type = tarfile.DIRTYPE; info.mode = mode
                t.addfile(info)
            else:
                info = t.gettarinfo(path, name); info.mode = mode; info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as f: t.addfile(info, f)
    data = raw.getvalue()
    return data, gzip.compress(data, 6, mtime=0)
base = layer([("bin", None, 0o755), ("bin/busybox", busybox, 0o755), ("etc", None, 0o755)])
images = {
    "kube-apiserver": [("usr/local/bin/kube-apiserver", f"{k8s}/kube-apiserver")],
    "kube-controller-manager": [("usr/local/bin/kube-controller-manager", f"{k8s}/kube-controller-manager")],
    "kube-scheduler": [("usr/local/bin/kube-scheduler", f"{k8s}/kube-scheduler")],
    "etcd": [("usr/local/bin/etcd", "/usr/bin/etcd"), ("usr/local/bin/etcdctl", "/usr/bin/etcdctl")],
}
for name, files in images.items():
    top = layer([("usr", None, 0o755), ("usr/local", None, 0o755), ("usr/local/bin", None, 0o755)]
                + [(n, p, 0o755) for n, p in files])
    out = os.path.join(work, "layouts", name)
    os.makedirs(os.path.join(out, "blobs/sha256"))
    def put(b):
        h = hashlib.sha256(b).hexdigest()
        open(os.path.join(out, "blobs/sha256", h), "wb").write(b)
        return {"digest": "sha256:" + h, "size": len(b)}
    layers = [dict(put(gz), mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for _, gz in (base, top)]
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": ["/usr/local/bin/" + name]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest() for raw, _ in (base, top)]}}
    cfg = dict(put(json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": layers}
    m = dict(put(json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
             annotations={"org.opencontainers.image.ref.name": "v1"})
    open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    open(os.path.join(out, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [m]}))
PY
NAMES=(etcd kube-apiserver kube-controller-manager kube-scheduler)
IMAGES=()
for name in "${NAMES[@]}"; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/layouts/$name:v1" "docker://127.0.0.1:$PORT/bench/$name:v1"
    IMAGES+=("127.0.0.1:$PORT/bench/$name:v1")
done
TOTAL=$(du -cb "$WORK"/layouts/*/blobs/sha256 | tail -1 | cut -f1)
echo "four images, $((TOTAL / 1000000)) MB compressed" >&2

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
for round in $(seq "$ROUNDS"); do
    sync
    root=$WORK/boot-$round
    t0=$(now)
    "$BOOT" --root "$root" images pull "${IMAGES[@]}" >/dev/null
    t1=$(now)
    peers=$WORK/peers-$round
    mkdir -p "$peers"
    pids=()
    for name in "${NAMES[@]}"; do
        (skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/$name:v1" "oci:$peers/$name:v1" \
            && umoci unpack --image "$peers/$name:v1" "$peers/$name-bundle" >/dev/null) &
        pids+=($!)
    done
    wait "${pids[@]}" # not the registry, which runs in the background too
    t2=$(now)
    best=999
    for _ in 1 2 3 4 5; do
        a=$(now)
        "$BOOT" --root "$root" images pull "${IMAGES[@]}" >/dev/null
        b=$(now)
        best=$(python3 -c "print(min($best, ($b - $a) * 1000))")
    done
    boot_s=$(elapsed "$t0" "$t1")
    peers_s=$(elapsed "$t1" "$t2")
    ratio=$(python3 -c "print(f'{$boot_s / $peers_s:.2f}')")
    printf 'round %d: boot images pull %ss, skopeo copy + umoci unpack %ss (ratio %sx); present: %.0f ms\n' \
        "$round" "$boot_s" "$peers_s" "$ratio" "$best"
    rm -rf "$root" "$peers"
done
