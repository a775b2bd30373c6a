"""Errors that reach the user as one line and exit code 2 (bad usage or bad input)."""

from __future__ import annotations

import re

# Library messages name an option as the API spells it, followed by "=" (``max_size=1024``); the
# command line shows its flag instead (``--max-size 1024``): one message serves both audiences.
OPTION_FLAGS = {"max_size": "--max-size", "tile": "--tile"}
_OPTION = re.compile(r"\b(" + "|".join(OPTION_FLAGS) + r")=(\d*)")


def as_flags(message: str) -> str:
    """``message`` with the API's option names as the command line's flags."""
    return _OPTION.sub(lambda m: OPTION_FLAGS[m.group(1)] + (f" {m.group(2)}" if m.group(2) else ""), message)


class UserError(ValueError):
    """A problem with the user's input or set-up, not a bug: printed as one line, exit 2.

    A ``ValueError``, so Python callers of the API can catch it as the bad value it is.
    """


class InputTypeError(UserError, TypeError):
    """An input of a kind the API does not take (a numpy array, a 2-D tensor, ...)."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM stopped the work cleanly (what was saved is in the message).

    The command line prints ``fastpercept: interrupted: MESSAGE`` and exits ``128 + signum``
    (130 for Ctrl-C, 143 for SIGTERM), the shell's convention. A ``BaseException``, as
    ``KeyboardInterrupt`` is: raised by a signal at any point, it must not be taken for a bad
    input by an ``except Exception`` (a batch would go on to the next file).
    """

    def __init__(self, message: str = "", signum: int = 2) -> None:
        super().__init__(message)
        self.signum = int(signum)
