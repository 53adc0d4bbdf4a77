"""Denoiser models. Importing this package registers every model family."""
from . import cnn, crn, unet  # noqa: F401  (registration side effect)
from .base import SpectralMaskModel
from .registry import available, build_model, from_serialized, load_checkpoint, model_from_checkpoint, save_checkpoint, serialize

__all__ = ["SpectralMaskModel", "available", "build_model", "from_serialized", "load_checkpoint",
           "model_from_checkpoint", "save_checkpoint", "serialize"]
