"""fastpercept: real-time style transfer and super-resolution with perceptual losses."""

__version__ = "0.1.0"

__all__ = ["stylize", "upscale", "load_model", "__version__"]


def __getattr__(name: str):
    # The public API, imported on first use: `import fastpercept` (and the command line, which
    # lives in this package) does not pay for torch until something needs it.
    if name in ("stylize", "upscale", "load_model"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'fastpercept' has no attribute {name!r}")
