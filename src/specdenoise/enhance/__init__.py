"""Denoise anything: waveforms, files and folders. Three rooms:

- :mod:`.denoiser`: the :class:`Denoiser` API (any length, rate, channels, sample type) and the
  shipped models (:data:`PRETRAINED`, :func:`pretrained_path`, :func:`model_path` for "a name or a path");
- :mod:`.chunking`: the streaming machinery behind it (resampling, chunks with context, the
  causal frame engine, the ``strength`` mix), which knows nothing about files;
- :mod:`.files` (with :mod:`.batch`): :func:`denoise_file` from disk to disk, and the batch
  policy of ``specdenoise denoise`` (:func:`plan_batch`, :func:`run_batch`, :func:`denoise_paths`)
  so the Python API denoises a folder as the CLI does.

Everything public is re-exported here: ``from specdenoise.enhance import Denoiser, denoise_file``.
"""
from .chunking import ChannelStream
from .denoiser import MAX_RATE, MIN_RATE, PRETRAINED, Denoiser, model_path, pretrained_path
from .files import FileResult, Outcome, denoise_file, denoise_paths, plan_batch, run_batch

__all__ = ["ChannelStream", "Denoiser", "FileResult", "MAX_RATE", "MIN_RATE", "Outcome", "PRETRAINED",
           "denoise_file", "denoise_paths", "model_path", "plan_batch", "pretrained_path", "run_batch"]
