#!/usr/bin/env bash
# Make sure a Docker engine answers and the host tools peergym needs are present.
# As root on Debian: installs docker.io, debootstrap, iproute2 and util-linux when missing and starts dockerd
# in the background. Otherwise: says exactly what to do. Idempotent and quick when all is there.
set -euo pipefail
log() { echo "[engine] $*" >&2; }

need_pkgs=()
command -v docker >/dev/null || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: missing ${need_pkgs[*]}; install them (Debian: sudo apt-get install -y ${need_pkgs[*]}) and retry" >&2
    exit 2
  fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if timeout 10 docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: no Docker engine answers. Start it (sudo systemctl start docker, or sudo dockerd &) and make" \
       "sure your user may use it, then retry." >&2
  exit 2
fi
log "starting dockerd (log: /var/log/peergym-dockerd.log)"
# setsid: the daemon must outlive this script and the make that called it.
setsid nohup dockerd >/var/log/peergym-dockerd.log 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then log "dockerd is up"; exit 0; fi
  sleep 0.5
done
tail -n 20 /var/log/peergym-dockerd.log >&2
echo "error: dockerd did not come up within 30 s (log above)" >&2
exit 1
