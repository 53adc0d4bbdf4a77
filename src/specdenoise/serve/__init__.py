"""``specdenoise serve``: a web page and an HTTP API around the denoiser, entirely offline.

``create_app(ServeConfig(...))`` builds the ASGI app (FastAPI); ``specdenoise serve`` runs it with
uvicorn on loopback unless told otherwise. Modules: ``formats`` (recognise, decode, re-encode),
``upload`` (streamed multipart to disk), ``jobs`` (admission, queue, worker threads, clean-up),
``spectrogram`` (bounded-memory pictures), ``app`` (routes and errors), ``static/`` (the page).
"""
from .app import create_app
from .config import ServeConfig

__all__ = ["create_app", "ServeConfig"]
