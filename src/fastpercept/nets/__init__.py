"""Image transformation networks, one architecture per module."""
