"""Helpers for the ``specdenoise serve`` tests: real noisy speech with its clean reference, a server
in a thread (for API tests) or in a subprocess (the real command, for browser and load tests)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from conftest import noise_at_snr, real_speech, speech_and_noise_files


def clean_and_noisy(data: Path, rng: np.random.Generator, seconds: float, snr_db: float = 5.0):
    """(clean, noisy) float32 at 16 kHz: real LibriSpeech speech plus a real noise recording."""
    speech_files, noise_files = speech_and_noise_files(data)
    clean = real_speech(speech_files, rng, int(round(seconds * 16000)))
    noisy = clean + noise_at_snr(noise_files, rng, clean, snr_db)
    scale = 0.5 / np.abs(noisy).max()
    return (clean * scale).astype(np.float32), (noisy * scale).astype(np.float32)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


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
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
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
