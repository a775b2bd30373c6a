"""Errors that reach the user as one line and exit code 2 (bad usage or bad input)."""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input or set-up, not a bug: printed as one line, exit 2.

    A ``ValueError``, so Python callers of the API can catch it as the bad value it is.
    """


class InputTypeError(UserError, TypeError):
    """An input of a kind the API does not take (a numpy array, a 2-D tensor, ...)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the work cleanly (what was saved is in the message).

    The command line prints ``fastpercept: interrupted: MESSAGE`` and exits ``128 + signum``
    (130 for Ctrl-C, 143 for SIGTERM), the shell's convention.
    """

    def __init__(self, message: str = "", signum: int = 2) -> None:
        super().__init__(message)
        self.signum = int(signum)
