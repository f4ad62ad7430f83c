#!/usr/bin/env bash
# Build the peergym server image with no container registry.
#
#   1. debootstrap a minimal Debian rootfs on the host (packages from packages.txt, taken from the
#      Debian mirror this machine's apt already uses, or $PEERGYM_DEBIAN_MIRROR),
#   2. `docker import` it as the base image,
#   3. `docker build` server/Dockerfile on top (users, sshd, keys, init).
#
# Both tags carry a content hash of their inputs, so the image is rebuilt only when an input changes and an
# existing image is reused at once. Prints the final image tag on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${PEERGYM_DEBIAN_SUITE:-bookworm}
log() { echo "[build] $*" >&2; }

hash_of() { cat "$@" | sha256sum | cut -c1-12; }
packages=$(grep -Ev '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
base_hash=$(printf '%s\n%s\n' "$suite" "$packages" | cat - "$here/build.sh" | sha256sum | cut -c1-12)
base_tag="peergym-base:$base_hash"
server_hash=$( (echo "$base_tag"; find "$here/server" -type f -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)
server_tag="peergym-server:$server_hash"

if docker image inspect "$server_tag" >/dev/null 2>&1; then
  log "image $server_tag is up to date"
  docker tag "$server_tag" peergym-server:latest  # another checkout's build may have moved it
  echo "$server_tag"
  exit 0
fi

# The mirror: an explicit variable wins, else the first Debian URI apt is configured with here.
mirror_from_apt() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f"
  done | head -n1
  if [ -f /etc/apt/sources.list ]; then
    awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list
  fi
  return 0
}

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  mirror=${PEERGYM_DEBIAN_MIRROR:-$(mirror_from_apt | head -n1 || true)}
  if [ -z "$mirror" ]; then
    echo "error: no Debian mirror found in /etc/apt/sources.list*; set PEERGYM_DEBIAN_MIRROR=<url>" >&2
    exit 2
  fi
  command -v debootstrap >/dev/null || { echo "error: debootstrap is missing: apt-get install -y debootstrap" >&2; exit 2; }
  work=$(mktemp -d /var/tmp/peergym-rootfs.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  log "debootstrap $suite ($(echo "$packages" | tr , ' ' | wc -w) packages) into $work ..."
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; echo "error: debootstrap failed (log above)" >&2; exit 1; }
  # Keep the image small: apt lists and caches are not needed (no apt inside the container).
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  log "docker import -> $base_tag"
  tar -C "$work/rootfs" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' - "$base_tag" >/dev/null
fi

log "docker build -> $server_tag (a failed step leaves no container: --force-rm)"
installed=$(date -u -d "$(cat "$here/server/installed-at")" +%s)
DOCKER_BUILDKIT=0 docker build -q --force-rm --network none --build-arg "BASE=$base_tag" --build-arg "INSTALLED=$installed" \
  --label "peergym.image=server" -t "$server_tag" "$here/server" >/dev/null
docker tag "$server_tag" peergym-server:latest
echo "$server_tag"
