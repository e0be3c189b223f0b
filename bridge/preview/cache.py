"""Content-addressed preview frame cache: a memory LRU with a byte budget over an on-disk store.

A frame's key is a hash of everything the frame depends on (:func:`frame_key`): the engine and its
code version, the model and the settings that change pixels, mode, resolution, frame rate, frame
index, that frame's parameter row, its section conditioning and its *anchor* (what the engine
starts the frame from: the warm-up rows for a feedback engine, "t2i" for an independent diffusion
keyframe). Equal keys mean equal pixels, so an edit that is undone, or a mapping moved back to
where it was, finds its frames again without rendering anything.

Memory holds read-only uint8 arrays (shared with callers without copies). The disk store keeps
``.npy`` files (``allow_pickle=False``) under the project's cache folder: raw arrays load in
≈0.1 ms and write without the ≈15 ms PNG encode that would compete with rendering for the CPU;
a preview frame is ≈250 kB either way. Disk writes happen on one background thread and are
atomic (:func:`bridge.fsutil.atomic_output`); a damaged file is a miss, never an error.

The disk store is bounded too (``disk_budget_bytes``, 2 GiB by default ≈ 8000 preview frames):
before a write that would take it over the cap, the least recently used files are deleted. Use is
tracked in memory (an ordered index, built once from the files' modification times) and on disk
(a disk read touches the file's mtime, so the order survives a restart). A frame being written is
never a victim, and a frame deleted under a reader is a miss.

Thread model: one short lock around the dictionaries only, never held during rendering, file I/O
or hashing, so :meth:`FrameCache.peek` (used by ``frame_at`` at playback rate) never waits on the
model worker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bridge.fsutil import atomic_output

log = logging.getLogger(__name__)

#: Default memory budget: ≈1000 preview frames at 384×216 (a 4-minute song at one keyframe per
#: beat is ≈500).
DEFAULT_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024

#: Default disk budget: ≈8000 preview frames (≈250 kB each).
DEFAULT_DISK_BUDGET_BYTES = 2 * 1024 ** 3

#: Room asked for a frame before it is written: its pixels plus the ``.npy`` header (≤ 128 bytes
#: for these arrays); the exact size is booked once the file exists.
_NPY_HEADER_BYTES = 128


def frame_key(*parts: bytes | str | int | float | None) -> str:
    """blake2b-128 hex digest of the parts, each length-prefixed so that ("ab", "c") ≠ ("a", "bc")."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, bytes):
            data = part
        elif isinstance(part, float):
            data = repr(part).encode()
        else:
            data = str(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class FrameCache:
    """Memory LRU (byte budget) over an optional on-disk store.

    Parameters
    ----------
    folder : path or None
        Where frames are stored on disk (``<folder>/<key[:2]>/<key>.npy``); None = memory only.
    memory_budget_bytes : int
        Least-recently-used frames are dropped from memory above this (they stay on disk).
    disk_budget_bytes : int or None
        Least-recently-used files are deleted so that the disk store stays at or under this
        (None = unbounded). Change it with :meth:`set_disk_budget`.
    write_behind : bool
        Write to disk on a background thread (default). False writes in :meth:`put` (tests).
    """

    def __init__(self, folder: str | os.PathLike[str] | None, *,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
                 disk_budget_bytes: int | None = DEFAULT_DISK_BUDGET_BYTES, write_behind: bool = True) -> None:
        if memory_budget_bytes < 0:
            raise ValueError(f"memory_budget_bytes {memory_budget_bytes} must be >= 0")
        _check_disk_budget(disk_budget_bytes)
        self.folder = Path(folder) if folder is not None else None
        self.memory_budget_bytes = int(memory_budget_bytes)
        self.disk_budget_bytes = None if disk_budget_bytes is None else int(disk_budget_bytes)
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stembridge-frame-writer") \
            if (write_behind and self.folder is not None) else None
        self._pending_writes: set[str] = set()
        #: Keys on disk → file size, least recently used first; listed once (by the writer thread,
        #: or here when writing in the caller's thread) then kept up to date by writes, reads and
        #: evictions; None until listed (until then a lookup costs a ``stat``). Lets a miss skip the
        #: ``stat``: the keyframe at the playhead after an edit is always a miss, and its lookup is
        #: on the edit → frame path. Frames another process writes meanwhile are rendered again.
        self._disk_index: OrderedDict[str, int] | None = None
        self._disk_bytes = 0
        if self._writer is not None:
            self._writer.submit(self._list_disk)
        elif self.folder is not None:
            self._list_disk()
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0
        self.evicted = 0

    # -- paths -------------------------------------------------------------------------------
    def path_for(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / key[:2] / f"{key}.npy"

    def _list_disk(self) -> None:
        """Index the files on disk, oldest modification (= least recently used) first."""
        found: list[tuple[int, str, int]] = []
        try:
            for sub in os.scandir(self.folder):
                if not (sub.is_dir() and len(sub.name) == 2):
                    continue
                for e in os.scandir(sub.path):
                    # ".<key>.npy.<random>.partial.npy" is a write in progress (or a killed one)
                    if e.name.endswith(".npy") and not e.name.startswith("."):
                        try:
                            st = e.stat()
                        except OSError:
                            continue  # deleted meanwhile
                        found.append((st.st_mtime_ns, e.name[:-4], st.st_size))
        except OSError:
            pass  # no folder yet: nothing on disk
        found.sort()
        with self._lock:
            if self._disk_index is None:  # else listed already (by another thread): keep that one
                self._disk_index = OrderedDict((key, size) for _, key, size in found)
                self._disk_bytes = sum(size for _, _, size in found)

    def _ensure_listed(self) -> None:
        if self.folder is not None and self._disk_index is None:
            self._list_disk()

    def _maybe_on_disk(self, key: str) -> bool:
        with self._lock:
            return self._disk_index is None or key in self._disk_index

    # -- reading -----------------------------------------------------------------------------
    def peek(self, key: str) -> np.ndarray | None:
        """The frame if it is in memory (never touches the disk); marks it recently used."""
        with self._lock:
            frame = self._mem.get(key)
            if frame is not None:
                self._mem.move_to_end(key)
                if self._disk_index is not None and key in self._disk_index:
                    self._disk_index.move_to_end(key)  # a use of the disk copy too
            return frame

    def in_memory(self, key: str) -> bool:
        with self._lock:
            return key in self._mem

    def contains(self, key: str) -> bool:
        """In memory, being written, or on disk (one ``stat``)."""
        with self._lock:
            if key in self._mem or key in self._pending_writes:
                return True
        path = self.path_for(key)
        return path is not None and self._maybe_on_disk(key) and path.is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The frame from memory, else from disk (then kept in memory); None on a miss."""
        frame = self.peek(key)
        if frame is not None:
            self.hits_memory += 1
            return frame
        frame = self._load(key)
        if frame is None:
            self.misses += 1
            return None
        self.hits_disk += 1
        self._remember(key, frame)
        return frame

    def _load(self, key: str) -> np.ndarray | None:
        if self.folder is None or not self._maybe_on_disk(key):
            return None
        path = self.path_for(key)
        try:
            with open(path, "rb") as fh:  # open once: an eviction meanwhile cannot break the read
                frame = np.load(fh, allow_pickle=False)
        except FileNotFoundError:  # never written, evicted, or deleted behind the cache's back
            self._drop_from_index(key)
            return None
        except Exception as e:  # noqa: BLE001 - a damaged cache file is a miss, not a failure
            log.warning("ignoring unreadable preview frame %s: %s", path, e)
            return None
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            log.warning("ignoring preview frame %s with shape %s %s", path, frame.shape, frame.dtype)
            return None
        frame.flags.writeable = False
        try:
            os.utime(path)  # recently used, also for the next run's listing
        except OSError:
            pass
        with self._lock:
            if self._disk_index is not None and key in self._disk_index:
                self._disk_index.move_to_end(key)
        return frame

    def _drop_from_index(self, key: str) -> None:
        with self._lock:
            if self._disk_index is not None:
                size = self._disk_index.pop(key, None)
                if size is not None:
                    self._disk_bytes -= size

    # -- writing -----------------------------------------------------------------------------
    def put(self, key: str, frame: np.ndarray, *, persist: bool = True) -> np.ndarray:
        """Store a uint8 (h, w, 3) frame; returns the read-only array kept in memory.

        ``persist=False`` keeps it in memory only, until :meth:`persist` is called: the preview
        worker reports a new keyframe first and queues its disk copy after (a ``stat`` and a
        hand-off to the writer thread that the edit → frame latency need not wait for).
        """
        # A private copy: an engine may reuse its output buffer, and the cached array is shared.
        frame = np.array(frame, dtype=np.uint8, order="C", copy=True)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"preview frames are RGB uint8 (h, w, 3); got shape {frame.shape}")
        frame.flags.writeable = False
        self._remember(key, frame)
        if persist:
            self._persist(key, frame)
        return frame

    def persist(self, key: str) -> None:
        """Write the in-memory frame ``key`` to disk (behind, by default) unless it is there."""
        frame = self.peek(key)
        if frame is not None:
            self._persist(key, frame)

    def _persist(self, key: str, frame: np.ndarray) -> None:
        path = self.path_for(key)
        if path is not None and not path.exists():
            if self._writer is None:
                self._write(key, path, frame)
            else:
                with self._lock:
                    if key in self._pending_writes:
                        return
                    self._pending_writes.add(key)
                self._writer.submit(self._write, key, path, frame)

    def _write(self, key: str, path: Path, frame: np.ndarray) -> None:
        try:
            self._ensure_listed()
            need = frame.nbytes + _NPY_HEADER_BYTES
            budget = self.disk_budget_bytes
            if budget is not None and need > budget:
                return  # larger than the whole store: kept in memory only
            self._evict(need, keep=key)  # make room first: the folder never goes over the cap
            try:
                with atomic_output(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, frame, allow_pickle=False)
                size = path.stat().st_size
            except OSError as e:  # a full disk loses the disk copy only; memory still has the frame
                log.warning("could not write preview frame %s: %s", path, e)
                return
            with self._lock:
                if self._disk_index is not None:
                    self._disk_bytes += size - self._disk_index.pop(key, 0)
                    self._disk_index[key] = size
            self._evict(0, keep=key)  # in case the header was larger than reckoned
        finally:
            with self._lock:
                self._pending_writes.discard(key)

    def _evict(self, need: int, *, keep: str | None = None) -> None:
        """Delete least-recently-used files until ``need`` more bytes fit under the budget.

        Never ``keep`` (the frame being written) nor a frame queued for writing.
        """
        victims: list[str] = []
        with self._lock:
            budget = self.disk_budget_bytes
            if budget is None or self._disk_index is None:
                return
            excess = self._disk_bytes + need - budget
            if excess <= 0:
                return
            for key, size in self._disk_index.items():
                if excess <= 0:
                    break
                if key == keep or key in self._pending_writes:
                    continue
                victims.append(key)
                excess -= size
            for key in victims:  # out of the index first: a reader from now on sees a miss
                self._disk_bytes -= self._disk_index.pop(key)
            self.evicted += len(victims)
        for key in victims:
            try:
                os.unlink(self.path_for(key))
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not delete preview frame %s: %s", self.path_for(key), e)

    def _remember(self, key: str, frame: np.ndarray) -> None:
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._mem[key] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.memory_budget_bytes and self._mem:
                _, dropped = self._mem.popitem(last=False)
                self._bytes -= dropped.nbytes

    # -- housekeeping ------------------------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def disk_usage(self) -> int:
        """Bytes the disk store holds now (finished frame files; 0 without a folder)."""
        self._ensure_listed()
        with self._lock:
            return self._disk_bytes if self._disk_index is not None else 0

    def disk_frames(self) -> int:
        """Frame files the disk store holds now."""
        self._ensure_listed()
        with self._lock:
            return len(self._disk_index) if self._disk_index is not None else 0

    def set_disk_budget(self, disk_budget_bytes: int | None) -> None:
        """Change the disk cap (None = unbounded); a smaller one evicts at once."""
        _check_disk_budget(disk_budget_bytes)
        with self._lock:
            self.disk_budget_bytes = None if disk_budget_bytes is None else int(disk_budget_bytes)
        self._ensure_listed()
        self._evict(0)

    def clear_disk(self) -> None:
        """Delete every file of the disk store (after the pending writes); memory keeps its frames."""
        if self.folder is None:
            return
        self.flush()
        with self._lock:
            self._disk_index = OrderedDict()
            self._disk_bytes = 0
        try:
            subs = list(os.scandir(self.folder))
        except OSError:
            return  # no folder: nothing to clear
        for sub in subs:
            if not (sub.is_dir() and len(sub.name) == 2):
                continue  # not ours
            for e in os.scandir(sub.path):
                if e.name.endswith(".npy"):  # frames and the partial files of killed writes
                    try:
                        os.unlink(e.path)
                    except OSError as err:
                        log.warning("could not delete preview frame %s: %s", e.path, err)
            try:
                os.rmdir(sub.path)
            except OSError:
                pass  # something else in it: leave the folder

    def __len__(self) -> int:
        return len(self._mem)

    def forget_memory(self, keys: Iterable[str] | None = None) -> None:
        """Drop frames from memory (all when ``keys`` is None); the disk copies stay."""
        with self._lock:
            if keys is None:
                self._mem.clear()
                self._bytes = 0
                return
            for k in keys:
                old = self._mem.pop(k, None)
                if old is not None:
                    self._bytes -= old.nbytes

    def flush(self) -> None:
        """Wait for pending disk writes."""
        if self._writer is not None:
            self._writer.submit(lambda: None).result()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


def _check_disk_budget(disk_budget_bytes: int | None) -> None:
    if disk_budget_bytes is not None and disk_budget_bytes < 0:
        raise ValueError(f"disk_budget_bytes {disk_budget_bytes} must be >= 0 (or None = unbounded)")
