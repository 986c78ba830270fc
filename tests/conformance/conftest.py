"""A real server process (uvicorn on a free port) for the kit to test, optionally with faults."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.faults import FAULTS
from tests.conformance.faulty_app import FAULTS_ENV

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOUP_")}
    return {**env, "RECOUP_DATA_DIR": str(data_dir), "RECOUP_LOG_LEVEL": "warning"}


@dataclass(frozen=True)
class Keys:
    """The two accounts the kit acts as."""

    primary: str
    other: str


@dataclass(frozen=True)
class Seed:
    """A migrated database with two accounts, copied into each served data directory."""

    database: Path
    keys: Keys


@pytest.fixture(scope="session")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    data_dir = tmp_path_factory.mktemp("conformance-seed")

    def account(name: str) -> str:
        done = subprocess.run(
            [str(BIN / "recoup-api"), "accounts", "create", "--name", name],
            env=_environment(data_dir),
            capture_output=True,
            check=True,
        )
        return str(json.loads(done.stdout)["apiKey"])

    keys = Keys(account("conformance"), account("intruder"))
    return Seed(data_dir / "recoup.db", keys)


class Target:
    """``uvicorn`` serving ``tests.conformance.faulty_app:create`` with ``faults``."""

    def __init__(self, seed: Seed, data_dir: Path, faults: list[str]) -> None:
        data_dir.mkdir(parents=True)
        shutil.copy(seed.database, data_dir / "recoup.db")
        self.keys = seed.keys
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        env = {**_environment(data_dir), FAULTS_ENV: ",".join(faults)}
        command = [
            str(BIN / "python"),
            *("-m", "uvicorn", "--factory", "tests.conformance.faulty_app:create"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"the server did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def kit_args(self, *extra: str) -> list[str]:
        return [
            *("--base-url", self.base_url, "--api-key", self.keys.primary),
            *("--other-api-key", self.keys.other, *extra),
        ]


CLEAN = "clean"
# Servers started ahead of their test: start-up (~5 s of imports and migrations) dominates.
PREFETCH = 2


class Targets:
    """A clean server and one per fault, each started when first used; the next ones in
    ``order`` are started meanwhile, so that their start-up overlaps the current test."""

    def __init__(self, seed: Seed, root: Path, order: list[str]) -> None:
        self.seed, self.root, self.order = seed, root, order
        self.started: dict[str, Target] = {}

    def _start(self, name: str) -> None:
        if name not in self.started:
            faults = [] if name == CLEAN else [name]
            self.started[name] = Target(self.seed, self.root / name, faults)

    def ready(self, name: str) -> Target:
        self._start(name)
        for following in self.order[self.order.index(name) + 1 :][:PREFETCH]:
            self._start(following)
        self.started[name].wait_ready()
        return self.started[name]

    def release(self, name: str) -> None:
        if name in self.started:
            self.started[name].stop()

    def stop_all(self) -> None:
        for target in self.started.values():
            target.stop()


@pytest.fixture(scope="session")
def targets(seed: Seed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    started = Targets(seed, tmp_path_factory.mktemp("targets"), [CLEAN, *sorted(FAULTS)])
    yield started
    started.stop_all()
