"""Jobs: admission, a bounded queue, a fixed pool of inference threads, time limits, clean-up.

Why threads and not processes: the model's weights are shared read-only and torch releases the
GIL during inference, so N threads with one torch thread each keep N cores busy with one copy
of the model. A job is checked between blocks (about two seconds of audio each) for
cancellation and for its time limit, which bounds how late either takes effect.

Admission is counted from the first byte of an upload to the end of its job: at most
``jobs + queue`` uploads, queued and running jobs exist at once; any more get 503 before their
body is read. Every file of a job lives in one folder named by a random id under the server's
private work folder; nothing a client sends is ever used as a path.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import queue
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AudioError, SpecdenoiseError, first_line
from . import formats
from .config import ServeConfig
from .spectrogram import SpectrogramAccumulator, save_pair

log = logging.getLogger("specdenoise.serve")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
FINISHED = ("done", "failed", "cancelled")


class JobTimeout(SpecdenoiseError):
    pass


class Cancelled(SpecdenoiseError):
    pass


@dataclass
class Job:
    id: str
    dir: Path
    info: formats.AudioInfo
    strength: float
    name: str  # sanitised stem of the client's file name, for the download's name only
    state: str = "queued"
    progress: float = 0.0
    error: str | None = None
    error_status: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    processing_s: float | None = None
    frames_out: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def upload(self) -> Path:
        return self.dir / "upload"

    @property
    def output(self) -> Path:
        return self.dir / f"denoised.{formats.EXTENSIONS[self.info.kind]}"

    @property
    def spectrograms(self) -> Path:
        return self.dir / "spectrograms.npz"

    def spectrogram(self, which: str) -> Path:
        return self.dir / f"{which}.png"

    def download_name(self) -> str:
        return f"{self.name}-denoised.{formats.EXTENSIONS[self.info.kind]}"

    def public(self) -> dict:
        out = {"id": self.id, "state": self.state, "progress": round(self.progress, 4),
               "error": self.error, "strength": self.strength, "format": formats.EXTENSIONS[self.info.kind],
               "sample_rate": self.info.rate, "channels": self.info.channels,
               "duration_s": (self.frames_out / self.info.rate if self.state == "done"
                              else self.info.seconds),
               "processing_s": self.processing_s}
        if self.state == "done":
            base = f"/v1/jobs/{self.id}"
            out.update(audio_url=f"{base}/audio", noisy_spectrogram_url=f"{base}/spectrogram.png?which=noisy",
                       spectrogram_url=f"{base}/spectrogram.png?which=denoised")
        return out


class JobManager:
    def __init__(self, config: ServeConfig, denoiser):
        self.config, self.denoiser = config, denoiser
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(
            __import__("tempfile").mkdtemp(prefix="specdenoise-serve-", dir=config.workdir)))
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.in_flight = 0  # uploads being received + queued + running jobs
        self.receiving: set[str] = set()  # ids of uploads in progress (their folders are in use)
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.mean_job_s: float | None = None
        self.stopping = False

    # -- admission -------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.config.jobs + self.config.queue

    def admit(self) -> tuple[str, Path] | None:
        """Reserve a place and a private folder for one upload, or None when the server is full."""
        with self.lock:
            if self.stopping or self.in_flight >= self.capacity:
                return None
            self.in_flight += 1
            job_id = secrets.token_hex(16)
            self.receiving.add(job_id)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        return job_id, folder

    def abandon(self, folder: Path) -> None:
        """An upload that never became a job: free its place and remove its folder."""
        shutil.rmtree(folder, ignore_errors=True)
        with self.lock:
            self.receiving.discard(folder.name)
        self._release()

    def _release(self) -> None:
        with self.lock:
            self.in_flight = max(0, self.in_flight - 1)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue's length times the mean job time."""
        with self.lock:
            waiting = self.in_flight
        mean = self.mean_job_s if self.mean_job_s is not None else 5.0
        return int(min(300, max(1, math.ceil(mean * max(1, waiting) / self.config.jobs))))

    def submit(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            self.receiving.discard(job.id)
        self.queue.put(job)

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        with self.lock:
            return self.jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        job = self.get(job_id)
        if job is None:
            return False
        with self.lock:
            self.jobs.pop(job.id, None)
        job.cancel.set()
        if job.done.is_set():  # queued or running jobs are removed by their worker
            shutil.rmtree(job.dir, ignore_errors=True)
        return True

    def counts(self) -> dict:
        with self.lock:
            states = [j.state for j in self.jobs.values()]
            return {"queued": states.count("queued"), "running": states.count("running"),
                    "finished": sum(s in FINISHED for s in states), "in_flight": self.in_flight,
                    "capacity": self.capacity}

    # -- workers ----------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.config.jobs):
            t = threading.Thread(target=self._worker, name=f"specdenoise-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def _worker(self) -> None:
        import torch

        torch.set_num_threads(1)  # per thread (OpenMP): N workers use N cores
        while True:
            job = self.queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception:  # never lose a worker
                log.exception("job %s crashed", job.id)
            finally:
                self._release()

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return
        job.state, job.started = "running", time.time()
        tmp = job.dir / f".partial.{formats.EXTENSIONS[job.info.kind]}"
        try:
            job.frames_out = denoise_job(self.denoiser, job, tmp, self.config)
            os.replace(tmp, job.output)
            job.processing_s = time.time() - job.started
            self.mean_job_s = (job.processing_s if self.mean_job_s is None
                               else 0.8 * self.mean_job_s + 0.2 * job.processing_s)
            self._finish(job, "done")
        except Cancelled:
            self._finish(job, "cancelled")
        except JobTimeout as exc:
            self._finish(job, "failed", str(exc), 504)
        except formats.TooLongError as exc:
            self._finish(job, "failed", _sentence(str(exc)), 413)
        except AudioError as exc:
            self._finish(job, "failed", _sentence(exc.reason), 422)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self._finish(job, "failed", f"Denoising failed unexpectedly ({type(exc).__name__}).", 500)
        finally:
            tmp.unlink(missing_ok=True)

    def _finish(self, job: Job, state: str, error: str | None = None, status: int | None = None) -> None:
        job.state, job.error, job.error_status, job.finished = state, error, status, time.time()
        if state == "done":
            job.progress = 1.0
        job.upload.unlink(missing_ok=True)  # the upload is not needed any more
        with self.lock:
            gone = job.id not in self.jobs
            finished = sorted((j for j in self.jobs.values() if j.done.is_set()), key=lambda j: j.finished)
        if gone or state == "cancelled":
            shutil.rmtree(job.dir, ignore_errors=True)
        job.done.set()
        # Disk bound: past max_finished finished jobs, the oldest go first.
        for old in finished[: max(0, len(finished) + 1 - self.config.max_finished)]:
            self.delete(old.id)

    # -- retention and shutdown --------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Remove finished jobs older than the retention time, and stray folders. Returns count."""
        now = time.time() if now is None else now
        keep = self.config.retention_s
        with self.lock:
            expired = [j.id for j in self.jobs.values() if j.done.is_set() and now - j.finished > keep]
            known = set(self.jobs) | self.receiving
        for job_id in expired:
            self.delete(job_id)
        removed = len(expired)
        for entry in self.root.iterdir():  # folders of jobs deleted while running, crashed uploads
            try:
                if entry.name not in known and now - entry.stat().st_mtime > keep:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                    removed += 1
            except OSError:  # removed meanwhile by its own job
                continue
        return removed

    def shutdown(self, timeout: float = 10.0) -> None:
        with self.lock:
            self.stopping = True
            jobs = list(self.jobs.values())
        for job in jobs:
            job.cancel.set()
        for _ in self.threads:
            self.queue.put(None)
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.time()))
        shutil.rmtree(self.root, ignore_errors=True)


def _sentence(text: str) -> str:
    text = first_line(text) or "the file could not be processed"
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def denoise_job(template, job: Job, target: Path, config: ServeConfig) -> int:
    """Decode -> denoise -> encode, block by block, with progress. Returns frames written."""
    info = job.info
    deadline = job.started + config.job_timeout_s
    max_frames = int(config.max_seconds * info.rate)
    expected = info.frames
    denoiser = copy.copy(template)  # same weights and settings; streams keep their own state
    denoiser.strength = job.strength
    streams = [denoiser.stream(info.rate) for _ in range(info.channels)]
    noisy = SpectrogramAccumulator(info.rate, expected)
    clean = SpectrogramAccumulator(info.rate, expected)
    writer = formats.Writer(target, info)
    read = written = 0
    try:
        position = [0.0]
        blocks = formats.read_blocks(job.upload, info, position)
        while True:
            block = next(blocks, None)
            last = block is None
            if last:
                block = np.zeros((info.channels, 0), np.float32)
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            if time.time() > deadline:
                raise JobTimeout(f"Denoising took longer than the server's limit of "
                                 f"{config.job_timeout_s:g} seconds; try a shorter recording.")
            read += block.shape[1]
            if read > max_frames:
                raise formats.TooLongError(f"the recording is longer than the limit of "
                                           f"{config.max_seconds / 60:g} minutes")
            outs = [s.push(block[c], last) for c, s in enumerate(streams)]
            y = np.stack(outs) if outs else block
            writer.write(y)
            written += y.shape[1]
            noisy.push(block, last)
            clean.push(y, last)
            if expected:
                job.progress = min(0.95, 0.95 * read / expected)
            else:  # no duration in the header: how far into the file the decoder is
                job.progress = max(job.progress, min(0.95, 0.95 * position[0]))
            if last:
                break
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if written == 0:
        raise AudioError(job.upload, "the file holds no audio samples")
    save_pair(noisy, clean, job.spectrograms)
    return written
