"""`recoup-api serve` as a child process on a free loopback port, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.postgres import free_port

BIN = Path(sys.executable).parent
KEY_LINE = re.compile(r"API key: (recoup_sk_[A-Za-z0-9_-]{43})")


class Served:
    """One server process over ``database_url``; its output goes to ``<name>.log``."""

    def __init__(self, data_dir: Path, database_url: str, name: str = "server") -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RECOUP_DATA_DIR": str(data_dir),
            "RECOUP_DATABASE_URL": database_url,
            "RECOUP_PORT": str(self.port),
            "RECOUP_HOST": "127.0.0.1",
        }
        self.output = data_dir.parent / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it to answer."""
        self.output.write_text("")
        with self.output.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "recoup-api"), "serve"], env=self.env, stdout=log, stderr=log
            )

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.read_text()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not become ready:\n{self.output.read_text()}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # A client still connected can hold a graceful shutdown open: do not leak it.
                self.kill()
                raise

    def first_start_key(self) -> str:
        """The developer key this server printed on its first start on an empty database."""
        match = KEY_LINE.search(self.output.read_text())
        assert match, self.output.read_text()
        return match.group(1)

    def cli(self, *args: str) -> dict[str, object]:
        done = subprocess.run(
            [str(BIN / "recoup-api"), *args], env=self.env, capture_output=True, check=True
        )
        return json.loads(done.stdout)
