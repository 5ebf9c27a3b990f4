#!/usr/bin/env bash
# Builds the stacking image without a Docker engine: a statically linked
# binary (the image's own cargo configuration, deploy/image/cargo-config.toml),
# then `buildah bud` (chroot isolation, vfs storage) on Containerfile.
#
# Then checks it as a cluster would run it: mounts the image's root
# filesystem, gives it the /etc/hosts a container runtime provides (the four
# functions' names on loopback), starts the four functions from the image's
# entrypoint as the image's user, peers addressed by host name, and makes one
# SayHello through them.
#
# Usage: deploy/image/build.sh [TAG]   (needs buildah: apt-get install buildah)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-localhost/stacking:latest}
TARGET=x86_64-unknown-linux-gnu

# A RUSTFLAGS variable would replace the configuration's flags.
env -u RUSTFLAGS cargo --config deploy/image/cargo-config.toml build \
  --locked --profile dist --target "$TARGET" -p stacking
BIN="${CARGO_TARGET_DIR:-target}/$TARGET/dist/stacking"
if ldd "$BIN" 2>&1 | grep -q "=>"; then
  echo "error: $BIN is dynamically linked" >&2
  exit 1
fi

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
cp "$BIN" "$CTX/stacking"
cp /etc/ssl/certs/ca-certificates.crt deploy/image/nsswitch.conf "$CTX/"
buildah --storage-driver vfs bud --isolation chroot -f deploy/image/Containerfile -t "$TAG" "$CTX"
echo "built $TAG ($(du -h "$BIN" | cut -f1) binary)"

# Check: run the entrypoint from the image's own root filesystem.
CTR=$(buildah --storage-driver vfs from "$TAG")
ROOTFS=$(buildah --storage-driver vfs mount "$CTR")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  buildah --storage-driver vfs umount "$CTR" >/dev/null 2>&1 || true
  buildah --storage-driver vfs rm "$CTR" >/dev/null 2>&1 || true
  rm -rf "$CTX"
}
trap cleanup EXIT
USERSPEC=$(buildah --storage-driver vfs inspect --format '{{.OCIv1.Config.User}}' "$TAG")
ENTRY=$(buildah --storage-driver vfs inspect --format '{{index .OCIv1.Config.Entrypoint 0}}' "$TAG")
# What a container runtime mounts (Kubernetes writes the pod's names here).
cat > "$ROOTFS/etc/hosts" <<'HOSTS'
127.0.0.1 localhost
127.0.0.1 driver.stacking.test trainer.stacking.test reducer.stacking.test metatrainer.stacking.test
HOSTS
in_image() { chroot --userspec="$USERSPEC" "$ROOTFS" "$ENTRY" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

declare -A PORT
for role in trainer reducer metatrainer driver; do PORT[$role]=$(free_port); done
for role in trainer reducer metatrainer; do
  in_image "$role" -host 127.0.0.1 -sp "${PORT[$role]}" &
  PIDS+=($!)
done
in_image driver -host 127.0.0.1 -sp "${PORT[driver]}" \
  -tAddr "trainer.stacking.test:${PORT[trainer]}" \
  -rAddr "reducer.stacking.test:${PORT[reducer]}" \
  -mAddr "metatrainer.stacking.test:${PORT[metatrainer]}" &
PIDS+=($!)

for role in trainer reducer metatrainer driver; do
  healthy=
  for _ in $(seq 1 100); do
    if in_image health --addr "$role.stacking.test:${PORT[$role]}" >/dev/null 2>&1; then
      healthy=1
      break
    fi
    sleep 0.1
  done
  if [ -z "$healthy" ]; then
    echo "error: the image's $role never became healthy at $role.stacking.test:${PORT[$role]}" >&2
    exit 1
  fi
done
in_image client -addr "driver.stacking.test:${PORT[driver]}" -timeout 60
echo "image entrypoint (user $USERSPEC): four functions found each other by host name and answered a SayHello"
