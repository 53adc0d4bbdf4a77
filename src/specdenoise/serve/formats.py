"""What people upload, and writing the result back in the same format, rate and channels.

Phones and browsers make MP3, M4A/AAC and WebM/Opus (MediaRecorder) besides WAV/FLAC/OGG. The
container is recognised from the file's first bytes (never from its name or the client's
Content-Type, which are whatever the client says): unknown bytes are "not audio" (415); known
bytes that do not decode are "corrupt" (422). libsndfile (soundfile) reads and writes
WAV/FLAC/OGG/AIFF; PyAV (FFmpeg inside its wheels) reads and writes the rest. Both readers yield
float32 blocks shaped ``(channels, samples)``, so a long file never sits in memory whole.
"""
from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from ..audio import _check_wav_complete
from ..errors import AudioError, SpecdenoiseError

BLOCK_SECONDS = 2.0
MAX_CHANNELS = 8
SOUNDFILE_KINDS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF"}
# kind -> (PyAV muxer, preferred encoder, encoders kept as they are, file extension, media type)
AV_KINDS = {
    "mp3": ("mp3", "libmp3lame", (), "mp3", "audio/mpeg"),
    "aac": ("adts", "aac", (), "aac", "audio/aac"),
    "mp4": ("ipod", "aac", ("alac",), "m4a", "audio/mp4"),
    "webm": ("webm", "libopus", (), "webm", "audio/webm"),
}
EXTENSIONS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "aiff": "aiff",
              **{k: v[3] for k, v in AV_KINDS.items()}}
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff",
               **{k: v[4] for k, v in AV_KINDS.items()}}
SUPPORTED = "WAV, FLAC, OGG, MP3, M4A/AAC or WebM"


class NotAudioError(SpecdenoiseError):
    """The bytes are no audio container we know (HTTP 415)."""


class TooLongError(SpecdenoiseError):
    """The audio is longer than the server accepts (HTTP 413)."""


def sniff(head: bytes) -> str | None:
    """The container kind from a file's first 16+ bytes, or None when it is no audio we read."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 3
        return "aac" if layer == 0 else "mp3"  # ADTS marks layer 0; MPEG audio layers 1-3
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1aE\xdf\xa3":  # EBML: WebM / Matroska
        return "webm"
    return None


@dataclass
class AudioInfo:
    kind: str
    rate: int
    channels: int
    frames: int | None  # exact for soundfile kinds, an estimate (or None) for compressed ones
    subtype: str = ""  # soundfile subtype (PCM_16, VORBIS, OPUS, ...)
    codec: str = ""  # PyAV decoder name
    layout: str = ""
    bit_rate: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate


def _av():
    import av
    import av.logging

    av.logging.set_level(av.logging.PANIC)  # decoder chatter is not for the server's log
    return av


def probe(path: Path, max_seconds: float | None = None) -> AudioInfo:
    """Recognise and check an uploaded file without decoding it all.

    Raises NotAudioError (not audio), AudioError (corrupt, empty, no audio track) or
    TooLongError (header says it is too long).
    """
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        raise AudioError(path, "the file is empty")
    kind = sniff(head)
    if kind is None:
        raise NotAudioError(f"this file is not audio in a format the server reads ({SUPPORTED})")
    info = _probe_soundfile(path, kind) if kind in SOUNDFILE_KINDS else _probe_av(path, kind)
    if info.channels > MAX_CHANNELS:
        raise AudioError(path, f"{info.channels} channels; at most {MAX_CHANNELS} are accepted")
    if max_seconds is not None and info.seconds is not None and info.seconds > max_seconds:
        raise TooLongError(f"the recording is {info.seconds / 60:.1f} minutes long; the limit is "
                           f"{max_seconds / 60:g} minutes")
    return info


def _probe_soundfile(path: Path, kind: str) -> AudioInfo:
    try:
        meta = sf.info(str(path))
    except Exception:
        raise AudioError(path, f"the {kind.upper()} file is damaged or unreadable") from None
    if meta.frames == 0 or meta.samplerate <= 0:
        raise AudioError(path, "the file holds no samples")
    _check_wav_complete(path)  # AudioError for a cut-off WAV
    return AudioInfo(kind, int(meta.samplerate), int(meta.channels), int(meta.frames), subtype=meta.subtype)


def _probe_av(path: Path, kind: str) -> AudioInfo:
    av = _av()
    try:
        with av.open(str(path), "r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(path, "the file has no audio track")
            ctx = stream.codec_context
            seconds = None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1e6
            first = None
            for frame in container.decode(stream):  # one decoded frame proves the codec works
                first = frame
                break
            if first is None:
                raise AudioError(path, "the file holds no audio samples")
            rate = int(first.sample_rate or ctx.sample_rate)
            layout = first.layout.name
            channels = len(first.layout.channels)
            frames = int(round(seconds * rate)) if seconds else None
            return AudioInfo(kind, rate, channels, frames, codec=ctx.name, layout=layout,
                             bit_rate=int(ctx.bit_rate or container.bit_rate or 0))
    except AudioError:
        raise
    except Exception:
        raise AudioError(path, f"the {EXTENSIONS[kind].upper()} file is damaged or unreadable") from None


def read_blocks(path: Path, info: AudioInfo, position: list | None = None) -> Iterator[np.ndarray]:
    """float32 ``(channels, n)`` blocks of the whole file; AudioError when decoding fails.

    For compressed files, ``position[0]`` follows the fraction of the file's bytes read: the
    progress of a recording whose header announces no duration (a browser's MediaRecorder)."""
    block = max(1024, int(info.rate * BLOCK_SECONDS))
    if info.kind in SOUNDFILE_KINDS:
        try:
            with sf.SoundFile(str(path)) as f:
                while True:
                    data = f.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield _finite(np.ascontiguousarray(data.T), path)
        except (RuntimeError, sf.LibsndfileError):
            raise AudioError(path, "the file is damaged part-way through") from None
        return
    av = _av()
    try:
        with av.open(str(path), "r") as container:
            stream = next(s for s in container.streams if s.type == "audio")
            resampler = av.AudioResampler(format="fltp", layout=info.layout, rate=info.rate)
            size = max(1, path.stat().st_size)
            for packet in container.demux(stream):
                if position is not None and packet.pos is not None and packet.pos >= 0:
                    position[0] = min(1.0, packet.pos / size)
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        yield _finite(out.to_ndarray().astype(np.float32, copy=False), path)
            for out in resampler.resample(None):
                yield _finite(out.to_ndarray().astype(np.float32, copy=False), path)
    except (av.error.FFmpegError, ValueError):
        raise AudioError(path, "the file is damaged part-way through") from None


def _finite(x: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(x).all():
        raise AudioError(path, "the file contains invalid (NaN or infinite) samples")
    return x


class Writer:
    """Writes ``(channels, n)`` float32 blocks in the upload's format, rate and channels."""

    def __init__(self, path: Path, info: AudioInfo):
        self.info, self.path = info, path
        if info.kind in SOUNDFILE_KINDS:
            self._open_soundfile(path, info)
        else:
            self._open_av(path, info)

    def _open_soundfile(self, path: Path, info: AudioInfo) -> None:
        fmt = SOUNDFILE_KINDS[info.kind]
        subtype = info.subtype if sf.check_format(fmt, info.subtype) else None
        candidates = [s for s in (subtype, {"OGG": "VORBIS", "FLAC": "PCM_16"}.get(fmt, "PCM_16")) if s]
        last = None
        for st in candidates:  # e.g. Ogg/Opus at 44.1 kHz cannot be written: Vorbis instead
            try:
                self.sf = sf.SoundFile(str(path), "w", info.rate, info.channels, subtype=st, format=fmt)
                self.clip = st not in ("FLOAT", "DOUBLE", "VORBIS", "OPUS")
                self.av = None
                return
            except Exception as exc:
                last = exc
        raise AudioError(path, f"cannot write {fmt} at {info.rate} Hz ({last})")

    def _open_av(self, path: Path, info: AudioInfo) -> None:
        av = _av()
        muxer, encoder, keep, _, _ = AV_KINDS[info.kind]
        codec = info.codec if info.codec in keep else encoder
        self.sf, self.clip = None, True
        self.av = av.open(str(path), "w", format=muxer)
        try:
            self.stream = self.av.add_stream(codec, rate=info.rate, layout=info.layout or None)
            if info.bit_rate and codec != "alac":
                self.stream.bit_rate = max(32_000, min(info.bit_rate, 320_000))
            self.stream.codec_context.open()  # fails now (unsupported rate...) rather than mid-file
        except Exception as exc:
            self.av.close()
            raise AudioError(path, f"cannot encode {codec} at {info.rate} Hz with {info.channels} "
                                   f"channel(s) ({exc})") from None
        self.pts = 0
        self.time_base = fractions.Fraction(1, info.rate)

    def write(self, y: np.ndarray) -> None:
        if not y.shape[1]:
            return
        if self.clip:
            y = np.clip(y, -1.0, 1.0)
        if self.sf is not None:
            self.sf.write(np.ascontiguousarray(y.T))
            return
        av = _av()
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, np.float32), format="fltp",
                                           layout=self.stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = self.info.rate, self.pts, self.time_base
        self.pts += y.shape[1]
        for packet in self.stream.encode(frame):
            self.av.mux(packet)

    def close(self) -> None:
        if self.sf is not None:
            self.sf.close()
            return
        try:
            for packet in self.stream.encode(None):
                self.av.mux(packet)
        finally:
            self.av.close()

    def abort(self) -> None:
        try:
            (self.sf or self.av).close()
        except Exception:
            pass
