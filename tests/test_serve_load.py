"""A bounded load test of ``specdenoise serve`` on loopback: 40 clients upload at once to a server
that admits 2 running + 4 queued jobs. Every request must end (no hang) with the denoised audio or
503 + Retry-After, nothing else; afterwards no upload, job or temp file is left, and stopping the
server removes its folder. Speed and memory are measured by ``bench/serve_load.py``, not here."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import soundfile as sf

from conftest import clean_and_noisy, wait_until
from serve_support import CliServer, files_under

CLIENTS = 40


def test_forty_concurrent_uploads_end_with_result_or_503(shared_data, rng, tmp_path):
    clips = []
    for i in range(CLIENTS):
        _, noisy = clean_and_noisy(shared_data, rng, float(rng.uniform(1.0, 3.0)))
        buf = io.BytesIO()
        sf.write(buf, noisy, 16000, subtype="PCM_16", format="WAV")
        clips.append((f"clip{i}.wav", buf.getvalue(), len(noisy)))
    work = tmp_path / "work"
    with CliServer("--jobs", "2", "--queue", "4", "--max-upload-mb", "2", workdir=work) as server:

        start = threading.Barrier(CLIENTS)

        def one(clip):
            name, data, frames = clip
            with httpx.Client(timeout=httpx.Timeout(120.0)) as c:
                start.wait(60)  # all at once: a burst, not a trickle
                r = c.post(f"{server.url}/v1/denoise", files={"file": (name, data)})
            if r.status_code == 200:
                out, rate = sf.read(io.BytesIO(r.content), dtype="float32")
                return 200, (rate, len(out)) == (16000, frames)
            return r.status_code, r.headers.get("retry-after", "").isdigit() and r.json()["status"] == 503

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(one, clips))  # httpx's timeout turns a hang into a failure
        statuses = [s for s, _ in results]
        assert set(statuses) <= {200, 503}, statuses
        assert all(ok for _, ok in results), results
        assert statuses.count(200) >= 6, statuses  # at least what fits at once is served
        assert statuses.count(503) >= 1, statuses  # and the rest is refused, not queued unbounded
        health = httpx.get(f"{server.url}/healthz").json()
        assert health["in_flight"] == 0 and health["running"] == 0 and health["queued"] == 0
        assert wait_until(lambda: files_under(work) == [], 10), files_under(work)
        assert server.proc.poll() is None
    assert list(work.iterdir()) == []
