#!/usr/bin/env bash
# Builds the stacking image without a Docker engine: a statically linked
# binary, then `buildah bud` (chroot isolation, vfs storage) on Containerfile.
# Then checks it: mounts the image's root filesystem, starts its entrypoint
# there as the image's user, and waits for a SERVING gRPC health check.
# Usage: deploy/image/build.sh [TAG]   (needs buildah: apt-get install buildah)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-localhost/stacking:latest}
TARGET=x86_64-unknown-linux-gnu

# .cargo/config.toml gives every linux-gnu target static glibc (crt-static) and
# v0 symbol names (the start-up link order, crates/cli/build.rs, is written in
# them); a RUSTFLAGS variable would replace both, so none is set here.
env -u RUSTFLAGS cargo build --profile dist --target "$TARGET" -p stacking
BIN="${CARGO_TARGET_DIR:-target}/$TARGET/dist/stacking"
if ldd "$BIN" 2>&1 | grep -q "=>"; then
  echo "error: $BIN is dynamically linked" >&2
  exit 1
fi

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
cp "$BIN" "$CTX/stacking"
cp /etc/ssl/certs/ca-certificates.crt "$CTX/"
buildah --storage-driver vfs bud --isolation chroot -f deploy/image/Containerfile -t "$TAG" "$CTX"
echo "built $TAG ($(du -h "$BIN" | cut -f1) binary)"

# Check: run the entrypoint from the image's own root filesystem.
CTR=$(buildah --storage-driver vfs from "$TAG")
ROOTFS=$(buildah --storage-driver vfs mount "$CTR")
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  buildah --storage-driver vfs umount "$CTR" >/dev/null 2>&1 || true
  buildah --storage-driver vfs rm "$CTR" >/dev/null 2>&1 || true
  rm -rf "$CTX"
}
trap cleanup EXIT
USERSPEC=$(buildah --storage-driver vfs inspect --format '{{.OCIv1.Config.User}}' "$TAG")
ENTRY=$(buildah --storage-driver vfs inspect --format '{{index .OCIv1.Config.Entrypoint 0}}' "$TAG")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
chroot --userspec="$USERSPEC" "$ROOTFS" "$ENTRY" trainer -host 127.0.0.1 -sp "$PORT" &
PID=$!
for _ in $(seq 1 100); do
  if chroot --userspec="$USERSPEC" "$ROOTFS" "$ENTRY" health --addr "127.0.0.1:$PORT" 2>/dev/null; then
    echo "image entrypoint (user $USERSPEC) serves a healthy trainer on 127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "error: the image's entrypoint never became healthy" >&2
exit 1
