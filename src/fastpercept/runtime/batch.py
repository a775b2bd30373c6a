"""The batch promise, in one place: a bad input is reported and skipped, the batch goes on.

Every command and API that works through many inputs (stylize and upscale of folders,
evaluation, training data) runs its items through :func:`each_item`: a :class:`UserError` for
one item (unreadable, too small, mismatched...) is printed as one line and recorded, and the
caller exits with 2 at the end when anything failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from ..errors import UserError, as_flags

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_item(items: Iterable[Item], work: Callable[[Item], Result], failed: list[tuple[Item, str]], *,
              desc: str, unit: str = "img", progress: bool | None = None, total: int | None = None
              ) -> Iterator[tuple[Item, Result]]:
    """Yield ``(item, work(item))`` for every item whose work succeeds.

    An item whose work raises :class:`UserError` is appended to ``failed`` as ``(item, message)``
    and its message printed (``fastpercept: error: ...``) on stderr; the others go on.
    ``progress``: a progress bar on stderr (default: when stderr is a terminal).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    for item in tqdm(items, desc=desc, unit=unit, file=sys.stderr, disable=not progress, total=total):
        try:
            result = work(item)
        except UserError as e:
            failed.append((item, str(e)))
            tqdm.write(f"fastpercept: error: {as_flags(str(e))}", file=sys.stderr)
            continue
        yield item, result
