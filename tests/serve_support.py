"""Helpers for the ``specdenoise serve`` tests: a server in a thread (for API tests) or in a
subprocess (the real command, for browser and load tests). Real noisy speech and ``wait_until``
come from tests/conftest.py, shared with the other test files."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from conftest import cli_env, wait_until


def files_under(folder: Path) -> list[Path]:
    """Files below ``folder`` now. The server deletes job folders while this walks them, so
    ``os.walk`` (which skips a folder that vanished between listing and entering) is used
    rather than ``Path.rglob`` (which raises FileNotFoundError on Python 3.11)."""
    found = (Path(root) / name for root, _, names in os.walk(folder) for name in names)
    return sorted(p for p in found if p.is_file())


class ServerThread:
    """The app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, config, denoiser):
        import uvicorn

        from specdenoise.serve import create_app

        self.app = create_app(config, denoiser=denoiser)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        if not wait_until(lambda: self.server.started, 30):
            raise RuntimeError("server did not start")
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


class CliServer:
    """``python -m specdenoise serve --port 0 ARGS`` in a subprocess; its URL from the first line."""

    def __init__(self, *args: str, workdir: Path):
        env = cli_env(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.workdir = Path(workdir)
        self.proc = subprocess.Popen([sys.executable, "-m", "specdenoise", "serve", "--port", "0",
                                      "--workdir", str(workdir), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"serve did not start: {line}{self.proc.stderr.read()[-2000:]}")
        self.url = line.split()[2].rstrip("/")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
