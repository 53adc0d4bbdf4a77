"""The ASGI app: the page at ``/``, the JSON API under ``/v1``, OpenAPI docs at ``/docs``.

Every error is JSON ``{"error": "<one sentence>", "status": <code>}`` with the right status:
413 too large, 415 not audio, 422 corrupt or unreadable (or a bad parameter), 503 with
``Retry-After`` when the queue is full. The docs page and the web page load nothing from outside
the package (fastapi-offline ships Swagger UI; the page's CSS and JS are in ``static/``).
"""
from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
from pathlib import Path

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import AudioError, first_line
from . import formats, upload
from .config import ServeConfig
from .jobs import Job, JobManager
from .spectrogram import render_saved

log = logging.getLogger("specdenoise.serve")
STATIC = Path(__file__).parent / "static"
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

MULTIPART_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": f"the recording: {formats.SUPPORTED}"},
        "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 1,
                     "description": "1 removes all the noise it can; lower keeps some background"}}}}}}}
ERROR = {"content": {"application/json": {"example": {"error": "One sentence.", "status": 422}}}}
UPLOAD_ERRORS = {413: {"description": "file (or recording) too large", **ERROR},
                 415: {"description": "not audio in a supported format", **ERROR},
                 422: {"description": "corrupt, empty or unreadable audio, or a bad parameter", **ERROR},
                 503: {"description": "queue full: retry after `Retry-After` seconds", **ERROR}}
NOT_FOUND = {404: {"description": "no such job (finished jobs are kept for a while only)", **ERROR}}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def create_app(config: ServeConfig | None = None, denoiser=None) -> FastAPIOffline:
    """Build the app. The model loads here, so a bad ``--model`` fails before the server binds.

    ``denoiser`` (a loaded :class:`~specdenoise.enhance.Denoiser`) skips loading; jobs run copies
    of it that differ only in strength and share its weights."""
    config = config or ServeConfig()
    if denoiser is None:
        from ..enhance import Denoiser

        denoiser = Denoiser.load(config.model)
    state: dict = {}  # the JobManager, once the lifespan has started it

    app = FastAPIOffline(title="specdenoise", version=__version__, lifespan=_lifespan(config, denoiser, state),
                         description="Remove background noise from speech. Upload a recording, get it "
                                     "back denoised in the same format, rate and channels.")
    app.state.config = config
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def jobs() -> JobManager:
        return state["jobs"]

    _add_error_handlers(app)
    _add_page_routes(app, config, jobs)
    _add_job_routes(app, config, jobs)
    return app


def _lifespan(config: ServeConfig, denoiser, state: dict):
    """Start the job workers and a janitor that sweeps expired jobs; stop both on shutdown."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        manager = JobManager(config, denoiser)
        manager.start()
        state["jobs"] = manager

        async def janitor():
            while True:
                await asyncio.sleep(min(60.0, max(0.2, config.retention_s / 4)))
                try:
                    await asyncio.to_thread(manager.sweep)
                except Exception:  # the janitor must outlive any one bad folder
                    log.exception("clean-up sweep failed")

        task = asyncio.create_task(janitor())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(manager.shutdown)
    return lifespan


def _add_error_handlers(app: FastAPIOffline) -> None:
    """Every error as JSON ``{"error": one sentence, "status": code}``."""
    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        message = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error_response(422, f"Invalid {where}: {first.get('msg', 'bad value')}.")


def _add_page_routes(app: FastAPIOffline, config: ServeConfig, jobs) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        text = (STATIC / "index.html").read_text(encoding="utf-8")
        text = text.replace("{{MAX_UPLOAD_BYTES}}", str(config.max_upload_bytes))
        text = text.replace("{{VERSION}}", html.escape(__version__))
        return HTMLResponse(text, headers={"Content-Security-Policy": PAGE_CSP,
                                           "X-Content-Type-Options": "nosniff"})

    @app.get("/healthz", summary="Liveness and load")
    async def healthz():
        return {"status": "ok", "version": __version__, "model": config.model, "workers": config.jobs,
                "max_upload_bytes": config.max_upload_bytes, **jobs().counts()}


async def _accept(request: Request, config: ServeConfig, manager: JobManager) -> Job:
    """Admission, streamed upload, probe: a queued job, or an ApiError."""
    try:
        upload.check_declared_size(request.headers, config.max_upload_bytes)
    except upload.UploadError as exc:
        raise ApiError(exc.status, exc.message) from None
    slot = manager.admit()
    if slot is None:
        raise ApiError(503, "The server is busy; please try again in a moment.",
                       {"Retry-After": str(manager.retry_after())})
    job_id, folder = slot
    try:
        up = await upload.receive(request, folder / "upload", config.max_upload_bytes, config.upload_idle_s)
        strength = _strength(up.fields.get("strength", request.query_params.get("strength")))
        info = await asyncio.to_thread(formats.probe, up.path, config.max_seconds)
    except BaseException as exc:
        manager.abandon(folder)
        if isinstance(exc, upload.UploadError):
            raise ApiError(exc.status, exc.message) from None
        if isinstance(exc, formats.NotAudioError):
            raise ApiError(415, _sentence(str(exc))) from None
        if isinstance(exc, formats.TooLongError):
            raise ApiError(413, _sentence(str(exc))) from None
        if isinstance(exc, AudioError):
            raise ApiError(422, _sentence(exc.reason)) from None
        if isinstance(exc, upload.ClientGone):
            log.info("upload dropped: %s", exc)
            raise ApiError(400, "The upload did not complete.") from None
        raise
    job = Job(id=job_id, dir=folder, info=info, strength=strength, name=upload.safe_stem(up.filename))
    manager.submit(job)
    return job


def _find(manager: JobManager, job_id: str) -> Job:
    job = manager.get(job_id)
    if job is None:
        raise ApiError(404, "There is no such job; finished jobs are removed after a while.")
    return job


def _finished(job: Job) -> Job:
    if job.state == "done":
        return job
    if job.state == "failed":
        raise ApiError(409, job.error or "The job failed.")
    raise ApiError(409, f"The job is {job.state}; its result is not ready yet.")


def _add_job_routes(app: FastAPIOffline, config: ServeConfig, jobs) -> None:
    """The ``/v1`` API. Why one function of several short routes: FastAPI registers routes by
    decorating closures over the app's job manager (``jobs()``, known once the lifespan runs)."""
    @app.post("/v1/jobs", status_code=202, summary="Start a denoising job (any length)",
              openapi_extra=MULTIPART_BODY, responses=UPLOAD_ERRORS)
    async def create_job(request: Request):
        """Upload a recording; poll `GET /v1/jobs/{id}` for state and progress."""
        job = await _accept(request, config, jobs())
        return JSONResponse(job.public(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.post("/v1/denoise", summary="Denoise a short recording in one request",
              openapi_extra=MULTIPART_BODY,
              responses={200: {"description": "the denoised audio, same format/rate/channels",
                               "content": {"audio/*": {}}}, **UPLOAD_ERRORS,
                         504: {"description": "processing took longer than the time limit", **ERROR}})
    async def denoise_now(request: Request):
        job = await _accept(request, config, jobs())
        waited = 0.0
        while not job.done.is_set():
            await asyncio.sleep(0.05)
            waited += 0.05
            if waited > config.sync_wait_s or (round(waited * 20) % 10 == 0 and await request.is_disconnected()):
                jobs().delete(job.id)
                raise ApiError(504, "Denoising takes too long for one request; use POST /v1/jobs instead.")
        if job.state != "done":
            jobs().delete(job.id)
            raise ApiError(job.error_status or 500, job.error or "Denoising failed.")
        return FileResponse(job.output, media_type=formats.MEDIA_TYPES[job.info.kind],
                            filename=job.download_name(),
                            background=BackgroundTask(jobs().delete, job.id))

    @app.get("/v1/jobs/{job_id}", summary="State, progress and error of a job", responses=NOT_FOUND)
    async def get_job(job_id: str):
        return _find(jobs(), job_id).public()

    @app.get("/v1/jobs/{job_id}/audio", summary="The denoised audio (same format, rate, channels)",
             responses={**NOT_FOUND, 409: {"description": "not finished (or failed)", **ERROR}})
    async def get_audio(job_id: str, download: bool = False):
        job = _finished(_find(jobs(), job_id))
        return FileResponse(job.output, media_type=formats.MEDIA_TYPES[job.info.kind],
                            filename=job.download_name(),
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/v1/jobs/{job_id}/spectrogram.png", summary="Spectrogram of the denoised (or noisy) audio",
             responses={**NOT_FOUND, 409: {"description": "not finished (or failed)", **ERROR},
                        200: {"content": {"image/png": {}}}})
    async def get_spectrogram(job_id: str, which: str = "denoised"):
        if which not in ("denoised", "noisy"):
            raise ApiError(422, "Invalid which: choose 'denoised' or 'noisy'.")
        job = _finished(_find(jobs(), job_id))
        png = job.spectrogram(which)
        if not png.exists():  # drawn on first request, then kept with the job
            try:
                await asyncio.to_thread(render_saved, job.spectrograms, which, png)
            except FileNotFoundError:  # the job was deleted meanwhile
                raise ApiError(404, "There is no such job; finished jobs are removed after a while.") from None
        return FileResponse(png, media_type="image/png")

    @app.delete("/v1/jobs/{job_id}", status_code=204, summary="Cancel a job and delete its files",
                responses=NOT_FOUND)
    async def delete_job(job_id: str):
        if not jobs().delete(job_id):
            raise ApiError(404, "There is no such job; finished jobs are removed after a while.")
        return Response(status_code=204)


def _strength(raw) -> float:
    if raw is None or raw == "":
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise upload.UploadError(422, "Strength must be a number from 0 to 1.")
    return value


def _sentence(text: str) -> str:
    text = first_line(text) or "The file could not be read"
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
