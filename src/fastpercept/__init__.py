"""fastpercept: real-time style transfer and super-resolution with perceptual losses."""

__version__ = "0.1.0"

from .api import load_model, stylize, upscale  # noqa: E402  (the public API)

__all__ = ["stylize", "upscale", "load_model", "__version__"]
