"""FrameParams: one row per video frame, one column per visual parameter."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bridge.mapping.params import PARAMETER_NAMES


@dataclass(frozen=True, eq=False)
class FrameParams:
    """Visual parameters for a run of frames.

    values: float32, shape (n_frames, len(names)); row i is frame ``start_frame + i``.
    section_index: int32, shape (n_frames,): index into the project's resolved sections (-1: none).
    section_mix: float32, shape (n_frames,): 0→1 progress of the transition *into* section_index
        from the previous section (1.0 once the transition is over).
    fps: exact frame rate; frame k is at song time k / fps seconds.
    """

    fps: Fraction
    start_frame: int
    values: np.ndarray
    section_index: np.ndarray
    section_mix: np.ndarray
    names: tuple[str, ...] = PARAMETER_NAMES

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def row(self, i: int) -> dict[str, float]:
        """Parameters of row ``i`` (not frame index) as a plain dict."""
        return dict(zip(self.names, (float(v) for v in self.values[i]), strict=True))

    def frame_indices(self) -> np.ndarray:
        return np.arange(self.start_frame, self.start_frame + len(self), dtype=np.int64)

    def times_s(self) -> np.ndarray:
        """Song time of each row in seconds (exact rational fps, evaluated in float64)."""
        return self.frame_indices() * (self.fps.denominator / self.fps.numerator)
