"""HTTP API of ``specdenoise serve`` with httpx against the real app under uvicorn on loopback:
every route, every error status, real speech in the formats phones and browsers make, limits
(size, queue, time), cancellation, retention and shutdown clean-up, no temp file left behind."""
from __future__ import annotations

import io
import re
import socket
import time

import av
import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import clean_and_noisy, wait_until
from serve_support import ServerThread, files_under
from specdenoise.enhance import Denoiser
from specdenoise.metrics import si_sdr
from specdenoise.serve import ServeConfig
from specdenoise.serve.formats import sniff
from specdenoise.serve.spectrogram import MAX_COLUMNS, SpectrogramAccumulator, reference_db

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def denoiser():
    return Denoiser.from_pretrained()


@pytest.fixture(scope="module")
def server(denoiser, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve")
    config = ServeConfig(max_upload_mb=1, jobs=1, queue=1, workdir=work, upload_idle_s=5)
    with ServerThread(config, denoiser) as s:
        s.work = work
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def wav_bytes(x: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def av_bytes(x: np.ndarray, rate: int, muxer: str, codec: str) -> bytes:
    """Encode (channels, n) float32 with FFmpeg (PyAV), as a phone or browser would."""
    x = np.atleast_2d(x)
    buf = io.BytesIO()
    with av.open(buf, "w", format=muxer) as c:
        s = c.add_stream(codec, rate=rate, layout="mono" if len(x) == 1 else "stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, np.float32), format="fltp", layout=s.layout.name)
        frame.sample_rate, frame.pts = rate, 0
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def av_decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray() for f in c.decode(audio=0)]
        rate = c.streams.audio[0].rate
    return np.concatenate(frames, axis=1), rate


def assert_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and isinstance(body["error"], str)
    assert "\n" not in body["error"] and body["error"].endswith(".") and len(body["error"]) < 200
    return body["error"]


def wait_job(client, job_id: str, timeout: float = 120) -> tuple[dict, list[float]]:
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["state"] in ("done", "failed", "cancelled"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


# --- pages, docs, health ---------------------------------------------------------------------


def test_page_docs_and_health_load_nothing_from_outside(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["workers"] == 1 and health["capacity"] == 2
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and 'id="record"' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    for html in (page.text, docs.text):
        refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html) + re.findall(r'url\s*:\s*["\']([^"\']+)', html)
        assert refs
        assert not [u for u in refs if re.match(r"^(https?:)?//", u)], refs  # no CDN, no web fonts
        for ref in refs:
            if ref.startswith("/") and "{" not in ref:
                assert client.get(ref).status_code == 200, ref
    for asset in ("/static/app.js", "/static/app.css"):
        text = client.get(asset).text
        assert not re.search(r"https?://", text), asset
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/denoise", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/audio",
            "/v1/jobs/{job_id}/spectrogram.png", "/healthz"} <= set(paths)
    assert "delete" in paths["/v1/jobs/{job_id}"]
    assert "multipart/form-data" in paths["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"413", "415", "422", "503"} <= set(paths["/v1/denoise"]["post"]["responses"])


# --- denoising -------------------------------------------------------------------------------


def test_denoise_improves_real_speech_and_keeps_the_format(client, denoiser, shared_data, rng):
    clean, noisy = clean_and_noisy(shared_data, rng, 4.0, snr_db=0.0)
    data = wav_bytes(noisy, 16000)
    r = client.post("/v1/denoise", files={"file": ("noisy.wav", data, "audio/wav")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert 'filename="noisy-denoised.wav"' in r.headers["content-disposition"]
    out, rate = sf.read(io.BytesIO(r.content), dtype="float32")
    assert rate == 16000 and out.shape == noisy.shape
    assert sf.info(io.BytesIO(r.content)).subtype == "PCM_16"
    sent, _ = sf.read(io.BytesIO(data), dtype="float32")
    expected = denoiser(sent, 16000)  # the library's own answer, same model
    assert np.abs(out - np.clip(expected, -1, 1)).max() < 2.0 / 32768
    before, after = si_sdr(clean, sent), si_sdr(clean, out)
    assert after > before, (before, after)
    # strength 0 gives the input back (to 16-bit rounding): the field reaches the denoiser
    r0 = client.post("/v1/denoise", files={"file": ("noisy.wav", data)}, data={"strength": "0"})
    same, _ = sf.read(io.BytesIO(r0.content), dtype="float32")
    assert np.abs(same - sent).max() < 2e-4


def test_job_lifecycle_every_route(client, server, shared_data, rng):
    _, left = clean_and_noisy(shared_data, rng, 3.0)
    _, right = clean_and_noisy(shared_data, rng, 3.0)
    import soxr

    stereo = soxr.resample(np.stack([left, right], 1), 16000, 44100).T.astype(np.float32) * 0.9
    data = wav_bytes(stereo, 44100, "PCM_24", "FLAC")
    r = client.post("/v1/jobs", files={"file": ("take 1.flac", data)}, data={"strength": "0.9"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id) and r.headers["location"] == f"/v1/jobs/{job_id}"
    job, progress = wait_job(client, job_id)
    assert job["state"] == "done" and job["error"] is None and job["strength"] == 0.9
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert (job["sample_rate"], job["channels"], job["format"]) == (44100, 2, "flac")
    audio = client.get(job["audio_url"])
    assert audio.headers["content-type"] == "audio/flac"
    info = sf.info(io.BytesIO(audio.content))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, stereo.shape[1], "PCM_24")
    assert "attachment; filename*=utf-8''take%201-denoised.flac" in client.get(job["audio_url"] + "?download=true").headers["content-disposition"]
    noisy_png, clean_png = client.get(job["noisy_spectrogram_url"]), client.get(job["spectrogram_url"])
    assert noisy_png.content.startswith(PNG) and clean_png.content.startswith(PNG)
    assert noisy_png.content != clean_png.content
    assert client.get(f"/v1/jobs/{job_id}/spectrogram.png").content == clean_png.content
    assert_error(client.get(f"/v1/jobs/{job_id}/spectrogram.png?which=clean"), 422)
    folder = next(p for p in server.work.rglob(job_id))
    assert not (folder / "upload").exists()  # the upload goes once the job is done
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not folder.exists()
    for route in ("", "/audio", "/spectrogram.png"):
        assert_error(client.get(f"/v1/jobs/{job_id}{route}"), 404)
    assert_error(client.delete(f"/v1/jobs/{job_id}"), 404)
    assert_error(client.get("/v1/jobs/not-a-job"), 404)


@pytest.mark.parametrize("kind,rate,channels,muxer,codec", [
    ("mp3", 44100, 2, "mp3", "libmp3lame"),
    ("mp4", 48000, 1, "ipod", "aac"),
    ("webm", 48000, 1, "webm", "libopus"),
    ("ogg", 22050, 1, None, "VORBIS"),
    ("wav", 8000, 1, None, "FLOAT"),
])
def test_formats_from_phones_and_browsers_round_trip(client, shared_data, rng, kind, rate, channels, muxer, codec):
    import soxr

    chans = [soxr.resample(clean_and_noisy(shared_data, rng, 2.5)[1], 16000, rate) for _ in range(channels)]
    x = np.stack(chans).astype(np.float32)
    data = av_bytes(x, rate, muxer, codec) if muxer else wav_bytes(x, rate, codec, kind.upper())
    sent, sent_rate = av_decode(data)
    r = client.post("/v1/denoise", files={"file": (f"clip.{kind}", data)})
    assert r.status_code == 200, r.text
    assert sniff(r.content[:64]) == kind
    out, out_rate = av_decode(r.content)
    assert out_rate == sent_rate == rate and out.shape[0] == channels
    slack = 1024 if kind == "mp4" else 0  # AAC pads its last frame; the others keep the length
    assert 0 <= out.shape[1] - sent.shape[1] <= slack, (out.shape, sent.shape)
    assert np.isfinite(out).all() and 0 < np.abs(out).max() <= 1.0001


# --- errors ----------------------------------------------------------------------------------


def test_not_audio_corrupt_empty_and_bad_fields(client, server):
    good = wav_bytes(np.zeros(8000, np.float32) + 0.01, 16000)
    cases = [
        (415, ("notes.wav", b"this is text, not sound, whatever the name says")),
        (415, ("photo.mp3", PNG + bytes(200))),
        (422, ("empty.wav", b"")),
        (422, ("cut.wav", good[:44])),  # header promises samples that are not there
        (422, ("cut.wav", good[: len(good) // 2])),
        (422, ("bad.flac", b"fLaC" + np.random.default_rng(0).bytes(3000))),
        (422, ("bad.mp3", b"ID3" + bytes(3000))),
        (422, ("bad.webm", b"\x1aE\xdf\xa3" + bytes(500))),
    ]
    for status, upload in cases:
        for route in ("/v1/jobs", "/v1/denoise"):
            message = assert_error(client.post(route, files={"file": upload}), status)
            assert upload[0] not in message or status != 415
    assert "empty" in assert_error(client.post("/v1/jobs", files={"file": ("e.wav", b"")}), 422)
    for bad in ("2", "-0.1", "nan", "loud"):
        assert "Strength" in assert_error(client.post("/v1/jobs", files={"file": ("a.wav", good)},
                                                      data={"strength": bad}), 422)
    assert_error(client.post("/v1/jobs", data={"strength": "1"}, files={"other": ("a.wav", good)}), 400)
    assert_error(client.post("/v1/jobs", content=good, headers={"content-type": "audio/wav"}), 415)
    assert_error(client.get("/nothing-here"), 404)
    assert_error(client.put("/v1/jobs"), 405)
    assert files_under(server.work) == []  # refused uploads leave nothing


def test_too_large_by_header_and_by_bytes(client, server):
    big = wav_bytes(np.zeros(600_000, np.float32), 16000)  # 1.2 MB > 1 MB
    assert "1 MB" in assert_error(client.post("/v1/jobs", files={"file": ("big.wav", big)}), 413)

    def chunks():  # no Content-Length: the server counts what arrives
        yield b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n"
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]
        yield b"\r\n--xx--\r\n"

    r = client.post("/v1/denoise", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xx"})
    assert_error(r, 413)
    assert wait_until(lambda: files_under(server.work) == [], 10)


def test_path_traversal_name_is_never_a_path(client, server, tmp_path):
    target = server.work.parent / "evil.wav"
    data = wav_bytes(np.full(4000, 0.01, np.float32), 16000)
    r = client.post("/v1/denoise", files={"file": ("../../" * 8 + str(target).lstrip("/"), data)})
    assert r.status_code == 200
    assert 'filename="evil-denoised.wav"' in r.headers["content-disposition"]
    r = client.post("/v1/denoise", files={"file": ("..\\..\\x\\..\\", data)})
    assert 'filename="audio-denoised.wav"' in r.headers["content-disposition"]
    assert not target.exists()
    assert wait_until(lambda: files_under(server.work) == [], 10)


def _partial_upload(url: str, total: int = 500_000) -> socket.socket:
    """A client that starts an upload and then stalls (as a slow phone would)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\n"
            + wav_bytes(np.zeros(4000, np.float32), 16000))
    s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              + f"Content-Length: {total}\r\n\r\n".encode() + body)
    return s


def test_queue_full_gives_503_with_retry_after_and_disconnects_leave_nothing(client, server):
    socks = [_partial_upload(server.url) for _ in range(2)]  # capacity is jobs 1 + queue 1
    try:
        assert wait_until(lambda: client.get("/healthz").json()["in_flight"] == 2, 10)
        assert any(p.name == "upload" for p in files_under(server.work))  # streamed to disk as it came
        for route in ("/v1/jobs", "/v1/denoise"):
            r = client.post(route, files={"file": ("a.wav", wav_bytes(np.zeros(800, np.float32), 16000))})
            assert "busy" in assert_error(r, 503)
            assert int(r.headers["retry-after"]) >= 1
    finally:
        for s in socks:
            s.close()  # disconnect mid-upload
    assert wait_until(lambda: client.get("/healthz").json()["in_flight"] == 0, 10)
    assert wait_until(lambda: files_under(server.work) == [], 10), files_under(server.work)


def test_stalled_upload_is_dropped(denoiser, tmp_path):
    config = ServeConfig(workdir=tmp_path, jobs=1, queue=0, upload_idle_s=0.5)
    with ServerThread(config, denoiser) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        s = _partial_upload(srv.url)
        try:
            assert wait_until(lambda: c.get("/healthz").json()["in_flight"] == 1, 10)
            assert wait_until(lambda: c.get("/healthz").json()["in_flight"] == 0, 10)
            assert files_under(tmp_path) == []
        finally:
            s.close()


# --- time limit, cancel, retention, shutdown --------------------------------------------------


def test_time_limit_cancel_retention_and_shutdown(denoiser, tmp_path, shared_data, rng):
    _, noisy = clean_and_noisy(shared_data, rng, 5.0)
    long = wav_bytes(np.tile(noisy, 12), 16000)  # one minute
    short = wav_bytes(noisy[:16000], 16000)
    config = ServeConfig(workdir=tmp_path, jobs=1, queue=2, job_timeout_s=0.3, retention_s=0.5)
    with ServerThread(config, denoiser) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        job, _ = wait_job(c, c.post("/v1/jobs", files={"file": ("long.wav", long)}).json()["id"])
        assert job["state"] == "failed" and "limit of 0.3 seconds" in job["error"]
        assert_error(c.get(f"/v1/jobs/{job['id']}/audio"), 409)
        assert "0.3 seconds" in assert_error(c.post("/v1/denoise", files={"file": ("long.wav", long)}), 504)
        done, _ = wait_job(c, c.post("/v1/jobs", files={"file": ("short.wav", short)}).json()["id"])
        assert done["state"] == "done"
        # retention: finished jobs and their folders go by themselves
        assert wait_until(lambda: c.get(f"/v1/jobs/{done['id']}").status_code == 404, 10)
        assert wait_until(lambda: files_under(tmp_path) == [], 10), files_under(tmp_path)
        slow = _partial_upload(srv.url)  # an upload slower than the retention time is not swept
        try:
            assert wait_until(lambda: any(p.name == "upload" for p in files_under(tmp_path)), 10)
            time.sleep(1.5)
            assert any(p.name == "upload" for p in files_under(tmp_path))
        finally:
            slow.close()
        assert wait_until(lambda: files_under(tmp_path) == [], 10), files_under(tmp_path)
    with ServerThread(ServeConfig(workdir=tmp_path, jobs=1, queue=2), denoiser) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        running = c.post("/v1/jobs", files={"file": ("long.wav", long)}).json()["id"]
        queued = c.post("/v1/jobs", files={"file": ("long.wav", long)}).json()["id"]
        assert wait_until(lambda: c.get(f"/v1/jobs/{running}").json()["state"] == "running", 20)
        assert c.delete(f"/v1/jobs/{queued}").status_code == 204  # cancel before it starts
        assert c.delete(f"/v1/jobs/{running}").status_code == 204  # cancel while it runs
        assert wait_until(lambda: c.get("/healthz").json()["in_flight"] == 0, 20)
        assert wait_until(lambda: files_under(tmp_path) == [], 10)
        c.post("/v1/jobs", files={"file": ("long.wav", long)})  # left running at shutdown
        c.post("/v1/jobs", files={"file": ("short.wav", short)})
        assert files_under(tmp_path)
    assert list(tmp_path.iterdir()) == []  # shutdown removes the server's private folder


# --- pieces ----------------------------------------------------------------------------------


def test_streamed_spectrogram_matches_whole_signal_and_stays_bounded(rng):
    x = rng.standard_normal(16000 * 3).astype(np.float32) * np.linspace(0, 1, 16000 * 3, dtype=np.float32)
    acc = SpectrogramAccumulator(16000, None)
    for i in range(0, len(x), 7000):
        acc.push(x[None, i : i + 7000])
    acc.push(np.zeros((1, 0), np.float32), last=True)
    ref = reference_db(x)
    got = acc.db()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got[:, 4:-4], ref[:, 4:-4], atol=0.05)
    long = SpectrogramAccumulator(48000, None)  # length unknown in advance (a live recording)
    block = rng.standard_normal((2, 48000 * 20)).astype(np.float32)
    for _ in range(30):  # ten minutes
        long.push(block)
    long.push(np.zeros((2, 0), np.float32), last=True)
    assert MAX_COLUMNS // 2 <= len(long.columns) <= 2 * MAX_COLUMNS, len(long.columns)
    assert abs(long.samples - 16000 * 600) < 100 and long.db().shape[0] == 257


def test_serve_command_rejects_bad_settings_in_one_line(tmp_path, capsys):
    from specdenoise.cli import main

    for args, words in ((["--port", "70000"], "--port"), (["--jobs", "0"], "jobs"),
                        (["--max-upload-mb", "-1"], "max_upload_mb"),
                        (["--model", str(tmp_path / "none.pt")], "none.pt")):
        assert main(["serve", *args, "--workdir", str(tmp_path)]) == 1
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("specdenoise serve: error"), lines
        assert "http://" not in captured.out  # refused before listening
    assert list(tmp_path.iterdir()) == []


def test_compressed_reading_reports_its_position(tmp_path, rng):
    """A MediaRecorder file announces no duration: progress follows the bytes decoded."""
    from specdenoise.serve.formats import probe, read_blocks

    path = tmp_path / "upload"
    path.write_bytes(av_bytes(rng.standard_normal((1, 48000 * 6)).astype(np.float32) * 0.1, 48000, "webm", "libopus"))
    info = probe(path)
    position, seen, total = [0.0], [], 0
    for block in read_blocks(path, info, position):
        seen.append(position[0])
        total += block.shape[1]
    assert total == 48000 * 6 and seen == sorted(seen) and seen[0] < 0.5 < seen[-1] <= 1.0, seen
