"""Receive a multipart upload straight onto disk, never whole in memory, within a size limit.

Starlette's form parser spools files to the system temp folder on its own terms; here the body is
parsed as it arrives (python-multipart's streaming parser) and the ``file`` part is written into
the job's private folder under a fixed name. The size limit is checked against Content-Length
before anything is read and against the bytes actually received while reading; a client that
stalls longer than ``idle_s`` or disconnects raises, and the caller removes the folder.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

FIELD_LIMIT = 1024  # bytes of one text field
TEXT_FIELDS = ("strength",)
OVERHEAD = 64 * 1024  # multipart boundaries, headers and text fields beyond the file itself


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


class ClientGone(Exception):
    """The client disconnected or stalled mid-upload."""


@dataclass
class Upload:
    path: Path
    size: int = 0
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def too_large(limit: int) -> UploadError:
    return UploadError(413, f"The file is larger than this server's limit of {limit / 2**20:g} MB.")


def check_declared_size(headers, limit: int) -> None:
    """413 from the Content-Length header alone, before reading a byte of the body."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + OVERHEAD:
        raise too_large(limit)


class _Parts:
    """The multipart parser's callbacks: the part named ``file`` streams into ``out`` (at most
    ``limit`` bytes), the known text fields (at most FIELD_LIMIT bytes each) into ``upload.fields``,
    anything else is skipped."""

    def __init__(self, upload: Upload, out, limit: int):
        self.upload, self.out, self.limit = upload, out, limit
        self.name, self.is_file, self.headers, self.text = None, False, {}, bytearray()
        self.field = self.value = b""
        self.done_file = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self):
        self.name, self.is_file, self.headers, self.text = None, False, {}, bytearray()

    def on_header_field(self, data, start, end):
        self.field += data[start:end]

    def on_header_value(self, data, start, end):
        self.value += data[start:end]

    def on_header_end(self):
        self.headers[self.field.decode("latin-1").lower()] = self.value
        self.field, self.value = b"", b""

    def on_headers_finished(self):
        _, disp = parse_options_header(self.headers.get("content-disposition", b""))
        self.name = disp.get(b"name", b"").decode("utf-8", "replace")
        self.is_file = self.name == "file" and not self.upload.size
        if self.is_file:
            self.upload.filename = disp.get(b"filename", b"").decode("utf-8", "replace")

    def on_part_data(self, data, start, end):
        chunk = data[start:end]
        if self.is_file:
            self.upload.size += len(chunk)
            if self.upload.size > self.limit:
                raise too_large(self.limit)
            self.out.write(chunk)
        elif self.name not in TEXT_FIELDS:
            return  # unknown parts are skipped (the body's size limit still counts them)
        elif len(self.text) + len(chunk) <= FIELD_LIMIT:
            self.text += chunk
        else:
            raise UploadError(413, f"The form field '{self.name}' is too long.")

    def on_part_end(self):
        if not self.is_file and self.name in TEXT_FIELDS:
            self.upload.fields[self.name] = self.text.decode("utf-8", "replace")
        self.done_file = self.done_file or self.is_file


async def receive(request, target: Path, limit: int, idle_s: float) -> Upload:
    """Stream a multipart upload's ``file`` part to ``target`` and collect its text fields,
    refusing (UploadError) what is too large, malformed or idle for ``idle_s`` seconds."""
    content_type = request.headers.get("content-type", "")
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "Send the audio as multipart/form-data with a field named 'file'.")
    check_declared_size(request.headers, limit)
    upload = Upload(path=target)
    out = open(target, "wb")
    parts = _Parts(upload, out, limit)
    parser = MultipartParser(params[b"boundary"], parts.callbacks(), max_size=limit + OVERHEAD)
    received = 0
    try:
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), timeout=idle_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise ClientGone(f"no data for {idle_s:g} s") from None
            except Exception as exc:  # starlette's ClientDisconnect
                if type(exc).__name__ == "ClientDisconnect":
                    raise ClientGone("client disconnected") from None
                raise
            received += len(chunk)
            if received > limit + OVERHEAD:
                raise too_large(limit)
            try:
                parser.write(chunk)
            except UploadError:
                raise
            except Exception:
                raise UploadError(400, "The upload is not well-formed multipart/form-data.") from None
        parser.finalize()
    finally:
        out.close()
    if not parts.done_file:
        raise UploadError(400, "The upload has no part named 'file'.")
    return upload


def safe_stem(filename: str) -> str:
    """A harmless download name from whatever the client called its file (never a path)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", stem).strip(" ._-")[:80]
    return stem or "audio"
