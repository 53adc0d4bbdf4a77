"""Load on ``specdenoise serve``: throughput, latency and the server's peak memory under concurrency.

    nice -n 10 .venv/bin/python bench/serve_load.py --clients 40 --seconds 2 --jobs 2 --queue 8
    nice -n 10 .venv/bin/python bench/serve_load.py --clients 40 --seconds 2 --jobs 2 --queue 8 --retry
    nice -n 10 .venv/bin/python bench/serve_load.py --clients 1 --seconds 1200 --jobs 1 --via-jobs

Starts the real command (``python -m specdenoise serve --port 0``) in a subprocess, then
``--clients`` threads each POST one clip of ``--seconds`` of real noisy speech (LibriSpeech +
a noise recording from ``../shared/data``; white noise if that folder is missing) to
``/v1/denoise`` at once. Without ``--retry`` a 503 ends the request (what the server refuses
under a burst); with it, the client waits ``Retry-After`` and tries again until served (sustained
throughput). Reports: requests served/refused, wall time, throughput in audio-seconds per second of
wall time (served audio only), latency percentiles, the server's peak RSS (sampled every 20 ms with
psutil, children included) and whether any file was left in its work folder. ``--via-jobs`` uses
``POST /v1/jobs`` + polling + ``GET .../audio`` + ``DELETE`` instead (for long files: memory must
not grow with the length, since uploads, decoding, denoising and encoding all stream).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def clips(n: int, seconds: float, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    speech = sorted((SHARED / "speech" / "librispeech_train-clean-100").rglob("*.flac"))
    noise = sorted((SHARED / "noise").rglob("*.flac"))
    need = int(seconds * 16000)
    out = []
    for i in range(n):
        if speech and noise:
            s, _ = sf.read(speech[i % len(speech)], dtype="float32")
            s = np.tile(s, need // len(s) + 1)[:need]
            z, _ = sf.read(noise[int(rng.integers(len(noise)))], dtype="float32")
            z = np.tile(z if z.ndim == 1 else z.mean(1), need // len(z) + 1)[:need]
            x = s + z * np.sqrt(np.mean(s**2) / (np.mean(z**2) + 1e-12))
        else:
            x = rng.standard_normal(need).astype(np.float32)
        x = 0.5 * x / np.abs(x).max()
        buf = io.BytesIO()
        sf.write(buf, x, 16000, subtype="PCM_16", format="WAV")
        out.append(buf.getvalue())
    return out


class PeakRss(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.02)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=2.0, help="audio per clip")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--retry", action="store_true", help="honour Retry-After until every clip is served")
    ap.add_argument("--via-jobs", action="store_true", help="POST /v1/jobs, poll, GET audio, DELETE")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    data = clips(args.clients, args.seconds)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    upload_mb = max(len(d) for d in data) / 2**20 + 1
    proc = subprocess.Popen([sys.executable, "-m", "specdenoise", "serve", "--port", "0", "--jobs", str(args.jobs),
                             "--queue", str(args.queue), "--workdir", str(work), "--max-upload-mb", f"{upload_mb:.0f}",
                             "--max-minutes", str(max(60, args.seconds / 60 + 1))],
                            stdout=subprocess.PIPE, text=True, env=env)
    url = proc.stdout.readline().split()[2].rstrip("/")
    idle_rss = psutil.Process(proc.pid).memory_info().rss
    monitor = PeakRss(proc.pid)
    monitor.start()

    def one(clip: bytes):
        start, tries = time.perf_counter(), 0
        with httpx.Client(timeout=300) as c:
            while True:
                tries += 1
                r = c.post(f"{url}/v1/{'jobs' if args.via_jobs else 'denoise'}", files={"file": ("clip.wav", clip)})
                if r.status_code == 202:
                    job = r.json()
                    while job["state"] in ("queued", "running"):
                        time.sleep(0.2)
                        job = c.get(f"{url}/v1/jobs/{job['id']}").json()
                    r = c.get(f"{url}/v1/jobs/{job['id']}/audio")
                    c.delete(f"{url}/v1/jobs/{job['id']}")
                if r.status_code == 503 and args.retry:
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                return r.status_code, time.perf_counter() - start, tries

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = list(pool.map(one, data))
    wall = time.perf_counter() - t0
    monitor.stop.set()
    monitor.join()
    left = [str(p) for p in work.rglob("*") if p.is_file()]
    proc.terminate()
    proc.wait(30)
    served = [lat for status, lat, _ in results if status == 200]
    report = {
        "clients": args.clients, "clip_seconds": args.seconds, "jobs": args.jobs, "queue": args.queue,
        "retry": args.retry, "served": len(served),
        "refused_503": sum(s == 503 for s, _, _ in results),
        "other": sorted({s for s, _, _ in results} - {200, 503}),
        "attempts": sum(t for _, _, t in results), "wall_s": round(wall, 2),
        "throughput_audio_s_per_s": round(len(served) * args.seconds / wall, 2),
        "latency_p50_s": round(float(np.percentile(served, 50)), 2) if served else None,
        "latency_max_s": round(max(served), 2) if served else None,
        "server_rss_idle_mb": round(idle_rss / 2**20), "server_rss_peak_mb": round(monitor.peak / 2**20),
        "files_left": len(left), "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if not report["other"] and not left else 1


if __name__ == "__main__":
    sys.exit(main())
