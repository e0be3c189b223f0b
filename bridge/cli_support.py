"""What every ``stembridge`` command line shares: a tqdm progress callback and the exit-code policy.

Kept apart from :mod:`bridge.cli` so that sub-command modules (``bridge.separation.cli`` …) use
them without importing the command line that imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import contextmanager

from bridge.errors import BridgeError, Cancelled


@contextmanager
def tqdm_progress(desc: str, unit: str, *, quiet: bool = False):
    """A ``progress(done, total, label)`` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None
    last_label = ""

    def update(done: int, total: int, label: str = "") -> None:
        nonlocal bar, last_label
        if quiet:
            return
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True, file=sys.stderr)
        if bar.total != total:
            bar.total = total
        if label and label != last_label:
            last_label = label
            bar.set_postfix_str(label, refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)  # update() honours tqdm's mininterval: no redraw per frame

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a parsed sub-command: user errors (BridgeError) print one clear message and exit 2;
    a cancel or Ctrl-C exits 130 and leaves no half-written file."""
    try:
        return int(func(args) or 0)
    except Cancelled as e:
        print(f"stembridge: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("stembridge: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130
    except BridgeError as e:
        print(f"stembridge: error: {e}", file=sys.stderr)
        return 2
