#!/usr/bin/env bash
# Make sure a Docker engine answers and the host tools peergym needs are present.
# As root on Debian: installs docker.io, debootstrap, iproute2 and util-linux when missing and starts dockerd
# in the background. Otherwise: says exactly what to do. Idempotent and quick when all is there.
#
# The engine is judged by the daemon (dockerd), not by the client: a machine can carry a `docker` CLI with
# no engine behind it, and installing nothing there would leave us trying to start a dockerd that is absent.
# Every decision goes through commands looked up on PATH (docker, dockerd, id, apt-get, setsid), so the tests
# drive each case with stubs on a PATH of their own.
set -euo pipefail
log() { echo "[engine] $*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }
# How long to wait for a started daemon (tests shorten it).
wait_tries=${PEERGYM_ENGINE_WAIT_TRIES:-60}
dockerd_log=${PEERGYM_DOCKERD_LOG:-/var/log/peergym-dockerd.log}

# An engine that already answers is enough, whoever installed it (rootless, Docker Desktop, a remote socket
# the user set up): only the host tools may still be missing.
engine_up=false
if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then engine_up=true; fi

need_pkgs=()
if ! $engine_up; then
  # docker.io brings both dockerd and its client; a client alone is not an engine.
  command -v dockerd >/dev/null || need_pkgs+=(docker.io)
fi
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! is_root || ! command -v apt-get >/dev/null; then
    echo "error: missing ${need_pkgs[*]}; install them (Debian: sudo apt-get install -y ${need_pkgs[*]}) and retry" >&2
    exit 2
  fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  hash -r
fi

if $engine_up; then exit 0; fi
if ! is_root; then
  echo "error: no Docker engine answers. Start it (sudo systemctl start docker, or sudo dockerd &) and make" \
       "sure your user may use it, then retry." >&2
  exit 2
fi
if ! command -v dockerd >/dev/null; then
  echo "error: dockerd is still missing after installing docker.io; install a Docker engine and retry" >&2
  exit 1
fi
log "starting dockerd (log: $dockerd_log)"
# setsid: the daemon must outlive this script and the make that called it.
setsid nohup dockerd >"$dockerd_log" 2>&1 </dev/null &
for _ in $(seq 1 "$wait_tries"); do
  if docker info >/dev/null 2>&1; then log "dockerd is up"; exit 0; fi
  sleep 0.5
done
tail -n 20 "$dockerd_log" >&2
echo "error: dockerd did not come up within $((wait_tries / 2)) s (log above)" >&2
exit 1
