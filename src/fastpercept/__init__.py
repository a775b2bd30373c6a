"""fastpercept: real-time style transfer and super-resolution with perceptual losses."""

__version__ = "0.1.0"
