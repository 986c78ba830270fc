#!/usr/bin/env bash
# Installs the system packages the sandbox needs: bubblewrap (isolation) and git (workspaces).
# Idempotent: does nothing when both are already present. Fails loudly when it cannot install.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v git >/dev/null 2>&1 || missing+=(git)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-system-deps: bubblewrap and git already installed, nothing to do"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: ERROR: missing ${missing[*]} and apt-get is not available;" \
        "install them with your system's package manager" >&2
    exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        echo "install-system-deps: ERROR: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
fi

echo "install-system-deps: installing ${missing[*]} with apt-get"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"

for tool in bwrap git; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-system-deps: ERROR: $tool still not found after installing" >&2
        exit 1
    fi
done
echo "install-system-deps: installed ${missing[*]}"
