"""On-disk cache of analysis results, keyed by content, parameters and code version.

Per-stem features are cached apart from the song-level results (beat grid, sections), so a
re-bounced stem re-analyses only that stem. Files are ``.npz`` (``allow_pickle=False``) and JSON —
never pickle — written atomically. A damaged cache file is treated as a miss, never as an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from bridge.analysis import types as T
from bridge.fsutil import atomic_output, atomic_write_text

log = logging.getLogger(__name__)

# ../timebase.py holds BeatGrid (part of every cached grid); ../stems/load.py: the decoder and
# resampler are where every analysed sample comes from; pipeline.py builds the kit and the mix.
#: The files behind a stem's (and the kit's and the mix's) features: their change re-analyses the audio.
_FEATURE_FILES = ("types.py", "features.py", "drum_parts.py", "pipeline.py", "../stems/load.py")
#: Every file whose change alters a song-level result (beat grid, sections), the producer's
#: corrections and the learned tracker included: a fix there must not hide behind an old cached grid.
_SONG_FILES = (*_FEATURE_FILES, "beats.py", "beat_dp.py", "periodicity.py", "beat_phase.py", "bars.py",
               "sections.py", "corrections.py", "tempo_map.py", "project.py", "learned_beats.py", "../timebase.py")


def code_version(scope: Literal["features", "song"] = "song") -> str:
    """Hash of the analysis code itself: changing the algorithm invalidates old results. ``features``:
    only what per-stem features depend on, so a beat-tracking change does not re-decode every stem."""
    h = hashlib.blake2b(digest_size=8)
    here = Path(__file__).parent
    for name in _FEATURE_FILES if scope == "features" else _SONG_FILES:
        p = here / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def make_key(*parts: object) -> str:
    """Stable hash of JSON-able parts (floats via repr, so 0.1 ≠ 0.10000001)."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class AnalysisCache:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # --- per-stem features -------------------------------------------------------------------
    def _stem_path(self, key: str) -> Path:
        return self.folder / "stems" / f"{key}.npz"

    def load_stem(self, key: str, *, name: str, role: str) -> T.StemFeatures | None:
        path = self._stem_path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                curves = {k.removeprefix("curve_"): z[k] for k in z.files if k.startswith("curve_")}
                onsets = z["onsets_s"]
            return T.StemFeatures(
                name=name, role=role, frame_rate_hz=float(meta["frame_rate_hz"]), curves=curves,
                onsets_s=onsets, duration_seconds=float(meta["duration_seconds"]),
            )
        except Exception as e:  # noqa: BLE001 - a broken cache entry is a miss, not a failure
            log.warning("ignoring unreadable analysis cache entry %s: %s", path, e)
            return None

    def save_stem(self, key: str, features: T.StemFeatures) -> None:
        meta = {"frame_rate_hz": features.frame_rate_hz, "duration_seconds": features.duration_seconds}
        arrays = {f"curve_{k}": np.asarray(v) for k, v in features.curves.items()}
        with atomic_output(self._stem_path(key)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, __meta__=np.array(json.dumps(meta)), onsets_s=features.onsets_s, **arrays)

    # --- song level --------------------------------------------------------------------------
    def _song_path(self, key: str) -> Path:
        return self.folder / "song" / f"{key}.json"

    def load_song(self, key: str) -> tuple[T.BeatGrid, list[tuple[float, float]]] | None:
        path = self._song_path(key)
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
            tempo_map = d.get("tempo_map")  # the explicit map of a grid from a MIDI file / the DAW
            grid = T.BeatGrid(
                tempo_bpm=float(d["tempo_bpm"]), beats_s=np.asarray(d["beats_s"], dtype=np.float64),
                downbeats_s=np.asarray(d["downbeats_s"], dtype=np.float64),
                beats_per_bar=int(d["beats_per_bar"]), source=str(d["source"]),
                beat_division=int(d.get("beat_division", 2)), beat_unit=int(d.get("beat_unit", 4)),
                swing_ratio=float(d.get("swing_ratio", 1.0)), swing_level=int(d.get("swing_level", 0)),
                other_readings=tuple(float(x) for x in d.get("other_readings", ())),
                **({} if not tempo_map else {
                    "tempo_anchors_s": np.asarray(tempo_map["seconds"], dtype=np.float64),
                    "tempo_anchors_quarters": np.asarray(tempo_map["quarters"], dtype=np.float64),
                    "meter_changes": tuple((float(a), int(n), int(m)) for a, n, m in tempo_map["meters"])}),
            )
            return grid, [(float(a), float(b)) for a, b in d["sections"]]
        except Exception as e:  # noqa: BLE001
            log.warning("ignoring unreadable analysis cache entry %s: %s", path, e)
            return None

    def save_song(self, key: str, grid: T.BeatGrid, sections: Iterable[tuple[float, float]]) -> None:
        d = {
            "tempo_bpm": grid.tempo_bpm, "beats_s": [float(x) for x in grid.beats_s],
            "downbeats_s": [float(x) for x in grid.downbeats_s], "beats_per_bar": grid.beats_per_bar,
            "source": grid.source, "beat_division": grid.beat_division, "beat_unit": grid.beat_unit,
            "swing_ratio": grid.swing_ratio, "swing_level": grid.swing_level,
            "other_readings": [float(x) for x in grid.other_readings], "sections": [[float(a), float(b)] for a, b in sections],
        }
        if grid.tempo_anchors_s is not None and grid.tempo_anchors_quarters is not None:
            d["tempo_map"] = {"seconds": [float(x) for x in grid.tempo_anchors_s],
                              "quarters": [float(x) for x in grid.tempo_anchors_quarters],
                              "meters": [[float(a), int(n), int(m)] for a, n, m in grid.meter_changes or ()]}
        atomic_write_text(self._song_path(key), json.dumps(d))
