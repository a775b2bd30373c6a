"""Errors that reach the user as one line and exit code 2 (bad usage or bad input)."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or set-up, not a bug: printed as one line, exit 2."""
