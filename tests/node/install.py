"""Installs the pinned AI SDK clients (one folder per version) with npm; `make node-clients`.

Each `tests/node/ai-<version>/package.json` pins one version of the official `ai` package.
Installing is skipped when the installed version already matches; `node_modules` is git-ignored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
# 5.0.0 and 6.0.0, and the latest 5.x and 6.x when this was written (`npm view ai versions`).
VERSIONS = ("5.0.0", "5.0.277", "6.0.0", "6.0.326")


def folder(version: str) -> Path:
    return HERE / f"ai-{version}"


def _installed(version: str) -> bool:
    manifest = folder(version) / "node_modules" / "ai" / "package.json"
    return manifest.exists() and json.loads(manifest.read_text())["version"] == version


def ensure_installed(version: str) -> Path:
    """The folder of an installed client, running `npm install` there first when needed."""
    if not _installed(version):
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed (Node 20 and npm are needed for tests/node)")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder(version),
            check=True,
            capture_output=True,
            timeout=600,
        )
    if not _installed(version):
        raise RuntimeError(f"npm did not install ai@{version} in {folder(version)}")
    return folder(version)


def ensure_all() -> list[Path]:
    with ThreadPoolExecutor(len(VERSIONS)) as pool:
        return list(pool.map(ensure_installed, VERSIONS))


if __name__ == "__main__":
    for path in ensure_all():
        print(path.relative_to(HERE.parent.parent), file=sys.stderr)
