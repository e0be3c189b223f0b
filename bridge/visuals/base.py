"""The engine interface every visual engine implements (procedural, lcm…).

An engine is stateful (feedback buffer, previous frame for img2img chaining): ``start`` resets it,
then ``render`` is called for consecutive frames. Engines never touch files or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class SectionLook:
    """What an engine needs to know of a section (resolved to seconds)."""

    start_s: float
    end_s: float
    name: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    style: str = ""
    #: Length of the transition into this section from the previous one (seconds; 0 = a cut).
    #: Added for bridge.mapping.sections: Section.transition_beats resolved at the local tempo.
    transition_seconds: float = 0.0
    #: The shader engine's look for this section (a name or an .fs path); "" = the engine's own
    #: ``look``. Filled from the music where the producer chose none (bridge.visuals.character).
    look: str = ""
    #: "cut", "crossfade" or "melt" (bridge.project.schema.Section.transition).
    transition: str = "cut"
    #: How hard hits land in this section (1 = as mapped): the shader engine scales ``flash`` and
    #: ``pulse`` by it and, above 1, adds a zoom punch on each hit (the drop hits harder).
    hit: float = 1.0


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

        ``params`` has one value per name in bridge.mapping.params.PARAMETERS. ``section_index``
        indexes ``ctx.sections`` (-1: none); ``section_mix`` in [0, 1] is the progress of the
        transition from section_index - 1 into section_index.
        """

    def close(self) -> None:
        """Release resources (models stay warm in their worker; this frees per-run buffers)."""
