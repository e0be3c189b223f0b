"""The engine interface every visual engine implements (procedural, lcm…).

An engine is stateful (feedback buffer, previous frame for img2img chaining): ``start`` resets it,
then ``render`` is called for consecutive frames. Engines never touch files or the clock.

An engine may also offer ``get_state() -> dict[str, np.ndarray]`` (a copy of all it carries from
frame to frame) and ``set_state(state)`` (continue from one, after ``start``); the engines that do
are listed in :data:`bridge.visuals.STATE_ENGINES`. Segment exports use them to start a segment
from the exact state the previous one ended with, instead of a pre-roll that only approximates it.

Layer: :mod:`bridge.visuals` sits above mapping and analysis and below export and preview (see
:mod:`bridge.vocab` for the whole order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol

import numpy as np

# SectionLook lives at the bottom layer (bridge.vocab): mapping resolves sections into it and
# mapping sits below visuals. Re-exported here, where engines have always found it.
from bridge.vocab import SectionLook


@dataclass(frozen=True)
class RenderContext:
    width: int
    height: int
    fps: Fraction
    sections: tuple[SectionLook, ...] = field(default_factory=tuple)
    seed: int = 0
    mode: Literal["preview", "export"] = "export"
    #: The song's beat grid (seconds), for engines that follow the beat and bar (shader uniforms).
    beats_s: tuple[float, ...] = ()
    downbeats_s: tuple[float, ...] = ()
    #: Song audio for engines that draw it (the shader engine's audio/audioFFT inputs): "mix" and
    #: stem name → mono float32 from song time 0, at ``audio_sample_rate``. Empty: not given.
    audio: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    audio_sample_rate: int = 0


class Engine(Protocol):
    name: str

    def start(self, ctx: RenderContext) -> None:
        """Reset all state (feedback buffers, previous frame) for a new run of frames."""

    def render(
        self, frame_index: int, params: Mapping[str, float], section_index: int, section_mix: float
    ) -> np.ndarray:
        """Render one frame: RGB uint8, shape (height, width, 3), C-contiguous.

        ``params`` has one value per name in bridge.vocab.PARAMETERS. ``section_index``
        indexes ``ctx.sections`` (-1: none); ``section_mix`` in [0, 1] is the progress of the
        transition from section_index - 1 into section_index.
        """

    def close(self) -> None:
        """Release resources (models stay warm in their worker; this frees per-run buffers)."""
