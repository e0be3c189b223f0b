"""Whole-song FrameParams for the preview, re-evaluating only the mappings an edit touched.

:class:`ParamEvaluator` gives the table :func:`bridge.mapping.evaluate_mappings` gives, bit for bit
(tested), but keeps each mapping's contribution keyed by what it reads, so that after a one-mapping
edit only that mapping (and its one column) is computed again.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from bridge.analysis.types import BeatGrid, SongAnalysis, StemFeatures
from bridge.errors import ProjectError
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES, PARAMETERS
from bridge.preview.events import MappingProblem
from bridge.visuals.base import SectionLook

_NEUTRAL_ROW = np.array([PARAMETERS[n].neutral for n in PARAMETER_NAMES], dtype=np.float64)
_MIN_ROW = np.array([PARAMETERS[n].minimum for n in PARAMETER_NAMES], dtype=np.float64)
_MAX_ROW = np.array([PARAMETERS[n].maximum for n in PARAMETER_NAMES], dtype=np.float64)


def _hash_arrays(*arrays: np.ndarray, extra: bytes = b"") -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(extra)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class ParamEvaluator:
    """:func:`bridge.mapping.evaluate_mappings` for the whole song, re-evaluating only what changed.

    Each mapping's contribution (``amount · curve(follower(source)) + offset``, clamped) is kept,
    keyed by the mapping's fields and a content hash of what it reads (the stems' features, or the
    beat grid for oscillators). After an edit to one mapping, or a re-analysed stem, only the
    mappings that depend on it are re-evaluated; the contributions are then summed in mapping order
    exactly as ``evaluate_mappings`` sums them, so the table is bit-identical to it (tested).

    Unlike ``evaluate_mappings``, a mapping that cannot be resolved (its stem was removed) does not
    fail the whole table: it contributes nothing and is reported in ``problems``.
    """

    def __init__(self, *, max_entries: int = 512) -> None:
        self._memo: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._max_entries = max_entries
        self._stem_tokens: weakref.WeakKeyDictionary[StemFeatures, str] = weakref.WeakKeyDictionary()
        self._grid_tokens: weakref.WeakKeyDictionary[BeatGrid, str] = weakref.WeakKeyDictionary()
        self.evaluated = 0  # mappings actually computed (not memo hits), for tests and benchmarks
        self.signals_evaluated = 0  # of which the source → smoothing → curve part was computed too
        self._edges: np.ndarray = np.zeros(0)
        self._edges_key: tuple[Fraction, int] | None = None
        self._timeline: tuple[tuple[SectionLook, ...], np.ndarray, np.ndarray] | None = None
        #: (n_frames, per-mapping (column, contribution) parts, the clipped float32 table) of the last call.
        self._last_table: tuple[tuple, list, np.ndarray] | None = None

    def _stem_token(self, f: StemFeatures) -> str:
        tok = self._stem_tokens.get(f)
        if tok is None:
            names = sorted(f.curves)
            tok = _hash_arrays(*(f.curves[n] for n in names), f.onsets_s,
                               extra=repr((names, f.frame_rate_hz, f.duration_seconds)).encode())
            self._stem_tokens[f] = tok
        return tok

    def _grid_token(self, g: BeatGrid) -> str:
        tok = self._grid_tokens.get(g)
        if tok is None:
            tok = _hash_arrays(g.beats_s, g.downbeats_s, extra=repr((g.tempo_bpm, g.beats_per_bar)).encode())
            self._grid_tokens[g] = tok
        return tok

    def _memo_get(self, key: tuple) -> np.ndarray | None:
        got = self._memo.get(key)
        if got is not None:
            self._memo.move_to_end(key)
        return got

    def _memo_put(self, key: tuple, value: np.ndarray) -> None:
        value.flags.writeable = False
        self._memo[key] = value
        while len(self._memo) > self._max_entries:
            self._memo.popitem(last=False)

    def _part(self, m: Any, analysis: SongAnalysis, roles: tuple, base: tuple, edges: np.ndarray,
              fps: Fraction) -> tuple[str, np.ndarray] | ProjectError:
        """(target, contribution) of enabled mapping ``m``, or the error resolving its source.

        Looked up by content (the mapping's fields and what it reads), so the mappings an edit did
        not touch, an undo, or a value dragged back to where it was, are not computed again.
        """
        from bridge.mapping import evaluate as ev
        from bridge.mapping.sources import OscillatorSource, resolve_source, source_stem

        try:
            src = resolve_source(m.source, analysis, stem_roles=dict(roles))
        except (ProjectError, KeyError, ValueError) as e:
            result: tuple[int, np.ndarray] | ProjectError = ProjectError(str(e))
        else:
            if isinstance(src, OscillatorSource):
                dep: tuple = ("grid", self._grid_token(analysis.beat_grid))
            else:
                dep = ("stems",) + tuple((s, self._stem_token(source_stem(analysis, s))) for s in src.stems)
            key = (m.model_dump_json(), dep, base)
            contribution = self._memo_get(key)
            if contribution is None:
                # The shaped signal (source → smoothing → curve) is kept apart: an amount, offset or
                # clamp change (a slider drag) only rescales it.
                signal_key = ("signal", m.source, m.attack_ms, m.release_ms, m.curve, dep, base)
                shaped = self._memo_get(signal_key)
                if shaped is None:
                    shaped = ev.mapping_signal(m, src, analysis, fps=fps, start_frame=0, edges_s=edges)
                    self._memo_put(signal_key, shaped)
                    self.signals_evaluated += 1
                contribution = ev.scale_contribution(m, shaped)
                self._memo_put(key, contribution)
                self.evaluated += 1
            result = (m.target, contribution)
        return result

    def evaluate(self, mappings: Sequence[Any], analysis: SongAnalysis, sections: Sequence[SectionLook], *,
                 fps: Fraction, stem_roles: Mapping[str, str] | None = None
                 ) -> tuple[FrameParams, list[MappingProblem]]:
        """Whole-song FrameParams (frames 0 … ceil(duration·fps)−1) and the mappings that failed."""
        from bridge.mapping import evaluate as ev
        from bridge.mapping.sections import section_timeline

        fps = Fraction(fps)
        n_frames = ev.song_frame_count(analysis.duration_seconds, fps)
        if self._edges_key != (fps, n_frames):
            self._edges, self._edges_key = ev.frame_times(fps, 0, n_frames), (fps, n_frames)
            self._edges.flags.writeable = False
            self._timeline = None
        edges = self._edges
        problems: list[MappingProblem] = []
        base = (str(fps), n_frames, repr(analysis.duration_seconds))
        roles = tuple(sorted((stem_roles or {}).items()))
        names = ev.column_names(mappings)
        col_of = {name: i for i, name in enumerate(names)}
        # One (column, contribution) per mapping, None where it is disabled or failed.
        parts: list[tuple[int, np.ndarray] | None] = []
        for index, m in enumerate(mappings):
            part = self._part(m, analysis, roles, base, edges, fps) if m.enabled else None
            if isinstance(part, ProjectError):
                problems.append(MappingProblem(index, m.source, str(part)))
                part = None
            parts.append(None if part is None else (col_of[part[0]], part[1]))
        last = self._last_table
        if last is not None and last[0] == (n_frames, names) and len(last[1]) == len(parts):
            # Only the columns whose contributions changed are summed again, in mapping order as
            # evaluate_mappings sums them (so the table stays bit-identical to it); the others are
            # copied from the last table. After a one-mapping edit that is one column of ~20.
            columns = {c for a, b in zip(last[1], parts, strict=True)
                       if not (a is b or (a is not None and b is not None and a[0] == b[0] and a[1] is b[1]))
                       for c in (a[0] if a else None, b[0] if b else None) if c is not None}
            table = last[2].copy()
        else:
            columns = set(range(len(names)))
            table = np.empty((n_frames, len(names)), dtype=np.float32)
        n_params = len(PARAMETER_NAMES)
        for c in columns:
            # shader:NAME columns (after the parameters) start at 0 and are not clipped here
            col = np.full(n_frames, _NEUTRAL_ROW[c] if c < n_params else 0.0, dtype=np.float64)
            for part in parts:
                if part is not None and part[0] == c:
                    col += part[1]
            if c < n_params:
                np.clip(col, _MIN_ROW[c], _MAX_ROW[c], out=col)
                if PARAMETERS[PARAMETER_NAMES[c]].integrated:
                    col = ev.integrate_rate(col)  # the table starts at frame 0, as evaluate_mappings' sum
            table[:, c] = col
        table.flags.writeable = False
        self._last_table = ((n_frames, names), parts, table)
        looks = tuple(sections)
        if self._timeline is None or self._timeline[0] != looks:
            index_, mix_ = section_timeline(looks, edges[:-1], edges[1:])
            index_.flags.writeable = mix_.flags.writeable = False
            self._timeline = (looks, index_, mix_)
        params = FrameParams(fps=fps, start_frame=0, values=table,
                             section_index=self._timeline[1], section_mix=self._timeline[2], names=names)
        return params, problems
