"""The separation cache: stems keyed by mix content + model + options, written all-or-nothing.

Layout under the root (``platformdirs.user_cache_dir("stembridge")/separation`` by default)::

    <key>/meta.json          what produced it (model, options, demucs version, rate, length)
    <key>/<source>.wav       float32 WAV (RF64 past 4 GiB), one per source, model rate and channels
    .<key>.<random>.partial/ an entry being written; renamed to <key>/ only when complete
    model-digests.json       content hashes of local model files, memoised by (path, size, mtime)

An entry exists only once complete (folder rename), so a crash, Ctrl-C or cancel never leaves a
half-written stem that a later run would take for a result. Deleting the folder is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.fsutil import atomic_write_text, fsync_path

_META = "meta.json"
#: Temporary entries older than this are leftovers of a killed process and are removed.
_STALE_PARTIAL_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("stembridge")) / "separation"


def file_digest_memo(path: str | os.PathLike[str], *, memo_path: Path | None) -> str:
    """Content hash (blake2b) of ``path``, memoised in ``memo_path`` by (path, size, mtime_ns).

    Model files are hundreds of MB; hashing them on every run would cost a second before a cache
    hit could even be looked up.
    """
    from bridge.stems.load import file_digest

    path = Path(path).resolve()
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    memo: dict[str, Any] = {}
    if memo_path is not None and memo_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            memo = json.loads(memo_path.read_text())
    hit = memo.get(str(path))
    if isinstance(hit, dict) and hit.get("size") == stamp["size"] and hit.get("mtime_ns") == stamp["mtime_ns"]:
        return str(hit["digest"])
    digest = file_digest(path)
    if memo_path is not None:
        memo[str(path)] = {**stamp, "digest": digest}
        with contextlib.suppress(OSError):
            atomic_write_text(memo_path, json.dumps(memo, indent=1, sort_keys=True))
    return digest


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    stems: dict[str, Path]
    sample_rate: int
    num_samples: int
    num_channels: int
    meta: dict[str, Any]


class _StemWriter:
    """Appends (sources, channels, n) blocks to one float32 WAV per source."""

    def __init__(self, folder: Path, sources: Sequence[str], *, sample_rate: int, channels: int,
                 num_samples: int) -> None:
        import soundfile as sf

        fmt = "RF64" if num_samples * channels * 4 > 0xFFFFFFFF - 1024 else "WAV"
        self.paths = {s: folder / f"{s}.wav" for s in sources}
        self.files = [sf.SoundFile(str(p), "w", samplerate=sample_rate, channels=channels, subtype="FLOAT",
                                   format=fmt) for p in self.paths.values()]
        self.written = 0

    def write(self, stems: np.ndarray) -> None:
        if stems.shape[0] != len(self.files):
            raise ValueError(f"expected {len(self.files)} sources, got {stems.shape[0]}")
        for f, stem in zip(self.files, stems, strict=True):
            f.write(np.ascontiguousarray(stem.T, dtype=np.float32))
        self.written += stems.shape[-1]

    def close(self) -> None:
        for f in self.files:
            if not f.closed:
                f.close()


class SeparationCache:
    """Finished separations on disk; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def memo_path(self) -> Path:
        return self.root / "model-digests.json"

    @staticmethod
    def make_key(parts: Mapping[str, Any]) -> str:
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def lookup(self, key: str) -> CacheEntry | None:
        folder = self.root / key
        try:
            meta = json.loads((folder / _META).read_text())
            # "sources" keeps the model's order (drums, bass, other, vocals…); the JSON dict is sorted.
            stems = {name: folder / meta["stems"][name] for name in meta["sources"]}
            if not all(p.is_file() for p in stems.values()):
                return None
            return CacheEntry(folder, stems, int(meta["sample_rate"]), int(meta["num_samples"]),
                              int(meta["num_channels"]), meta)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remove_stale_partials(self) -> None:
        now = time.time()
        for p in self.root.glob(".*.partial"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > _STALE_PARTIAL_SECONDS:
                    shutil.rmtree(p, ignore_errors=True)

    @contextlib.contextmanager
    def writer(self, key: str, *, sources: Sequence[str], sample_rate: int, channels: int, num_samples: int,
               meta: Mapping[str, Any]) -> Iterator[_StemWriter]:
        """Yield a writer for a new entry; it becomes visible only if the block exits normally
        with all ``num_samples`` written. Any exception (Ctrl-C included) removes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=self.root))
        writer: _StemWriter | None = None
        try:
            writer = _StemWriter(tmp, sources, sample_rate=sample_rate, channels=channels, num_samples=num_samples)
            yield writer
            writer.close()
            if writer.written != num_samples:
                raise RuntimeError(f"separation wrote {writer.written} samples, expected {num_samples}")
            full_meta = {**meta, "sources": list(writer.paths), "stems": {s: p.name for s, p in writer.paths.items()},
                         "sample_rate": sample_rate,
                         "num_samples": num_samples, "num_channels": channels, "created": time.time()}
            (tmp / _META).write_text(json.dumps(full_meta, indent=1, sort_keys=True, default=str))
            for p in [*writer.paths.values(), tmp / _META]:
                fsync_path(p)
            final = self.root / key
            if final.exists():
                if self.lookup(key) is not None:  # another run finished the same work first
                    shutil.rmtree(tmp, ignore_errors=True)
                    return
                shutil.rmtree(final, ignore_errors=True)  # a damaged entry
            os.rename(tmp, final)
            fsync_path(self.root)
        except BaseException:
            if writer is not None:
                writer.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
