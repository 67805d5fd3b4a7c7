#!/bin/sh
# Regenerates the captured trivy SPDX documents in this directory from the inputs beside it.
# Needs trivy (0.76.0 was used), umoci and python3; works offline (no vulnerability DB).
# The outputs carry a creation time and a random documentNamespace, and umoci stamps layer
# times, so a rerun gives different IDs, digests and dates, but the same packages.
set -eu
cd "$(dirname "$0")"
flags="--format spdx-json --offline-scan --skip-db-update --skip-java-db-update"

trivy rootfs $flags -o alpine-rootfs.spdx.json rootfs-alpine
trivy rootfs $flags -o debian-rootfs.spdx.json rootfs-debian

# A two-layer image, so that trivy writes which layer introduced each package:
# layer 1 is the Alpine base with musl, busybox and zlib in the apk database;
# layer 2 replaces the apk database with the full one (adding libcrypto3 and libssl3 from
# openssl) and adds an npm package and a .NET application.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/L"
umoci new --image "$work/L:fixture"
umoci unpack --rootless --image "$work/L:fixture" "$work/B"
mkdir -p "$work/B/rootfs/etc" "$work/B/rootfs/lib/apk/db"
cp rootfs-alpine/etc/alpine-release rootfs-alpine/etc/os-release "$work/B/rootfs/etc/"
python3 - rootfs-alpine/lib/apk/db/installed "$work/B/rootfs/lib/apk/db/installed" <<'PY'
import sys
blocks = [b for b in open(sys.argv[1]).read().split("\n\n") if b.strip()]
base = [b for b in blocks if {"P:musl", "P:busybox", "P:zlib"} & set(b.splitlines())]
open(sys.argv[2], "w").write("\n\n".join(base) + "\n\n")
PY
umoci repack --image "$work/L:fixture" "$work/B"
umoci config --image "$work/L:fixture" --config.cmd /bin/sh \
  --config.label org.opencontainers.image.title=scanplane-fixture
rm -rf "$work/B"
umoci unpack --rootless --image "$work/L:fixture" "$work/B"
cp rootfs-alpine/lib/apk/db/installed "$work/B/rootfs/lib/apk/db/installed"
mkdir -p "$work/B/rootfs/usr/lib/node_modules/left-pad"
cp rootfs-alpine/usr/lib/node_modules/left-pad/package.json "$work/B/rootfs/usr/lib/node_modules/left-pad/"
cp -r image-alpine-extra/app "$work/B/rootfs/"
umoci repack --image "$work/L:fixture" "$work/B"
umoci gc --layout "$work/L"
rm -rf image-alpine-oci
cp -r "$work/L" image-alpine-oci
trivy image $flags -o alpine-image.spdx.json --input image-alpine-oci
