"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file under the final name.

Everything stembridge saves (project JSON, stems, caches, videos) goes through here: write to a
temporary name in the same folder (same filesystem, so the rename is atomic), fsync, rename over
the destination. An existing destination is untouched until the new file is complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_path(folder: Path) -> None:
    """fsync a file or a folder (for a folder: makes a rename inside it durable). Errors ignored."""
    # The rename is only durable once the directory entry is flushed (POSIX); Windows can't open dirs.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask


class PendingFile:
    """A file being written under a temporary name next to its destination.

    ``commit()`` fsyncs it and renames it over ``dest`` (atomic on one filesystem); ``abort()``
    removes it, leaving any existing ``dest`` untouched. For writers whose lifetime does not fit a
    ``with`` block (an encoder opened in one call and finished in another); else use
    :func:`atomic_output`. The temporary name keeps ``dest``'s suffix (writers such as PyAV and
    soundfile pick the format from it) and starts with a dot, so it is not mistaken for a result.
    """

    def __init__(self, dest: str | os.PathLike[str], *, suffix: str | None = None) -> None:
        self.dest = Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.dest.name}.",
            suffix=f".partial{suffix if suffix is not None else self.dest.suffix}",
            dir=self.dest.parent,
        )
        os.close(fd)
        self.tmp = Path(tmp_name)

    def commit(self) -> Path:
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        os.chmod(self.tmp, 0o666 & ~_umask())
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.dest)
        fsync_path(self.dest.parent)
        return self.dest

    def abort(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` keeps
    its old content.
    """
    pending = PendingFile(path, suffix=suffix)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.abort()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
