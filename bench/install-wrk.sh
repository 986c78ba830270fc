#!/usr/bin/env bash
# Installs wrk (Debian package), the load generator of `make bench`. Idempotent.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-wrk: ERROR: wrk is missing and apt-get is not available; install wrk" >&2
    exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-wrk: ERROR: wrk is missing; run this script as root" >&2
        exit 1
    fi
    sudo_cmd=(sudo)
fi
echo "install-wrk: installing wrk with apt-get"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends wrk
command -v wrk >/dev/null 2>&1 || { echo "install-wrk: ERROR: wrk still not found" >&2; exit 1; }
