"""Vocabularies: the names every layer agrees on, at the bottom of the import graph.

Layer order (lowest first; a module imports only from its own package or from lower layers —
``tests/test_layers.py`` checks it): errors → fsutil, jobs, cli_support, daw_install →
**timebase, vocab** → transport → stems → separation → project → plugins → analysis → mapping →
visuals → export → playback → preview → session → demo, commands → cli → __main__.

What lives here and why it is not in the package that uses it most:

* the visual parameters (the columns of FrameParams) and ``shader:NAME`` mapping targets — the
  project schema validates mapping targets against them and every engine reads them, so they cannot
  live in :mod:`bridge.mapping` (it imports the schema) or :mod:`bridge.visuals`;
  :mod:`bridge.mapping.params` re-exports them;
* :class:`SectionLook`, what an engine knows of a section — mapping resolves sections into it and
  visuals render from it (re-exported by :mod:`bridge.visuals.base`);
* the pedalboard built-in effect names a chain may use (no pedalboard import) — the schema validates
  slots against them (re-exported by :mod:`bridge.plugins.builtins`);
* ``MIX``, the mapping source name of the mix as heard (re-exported by :mod:`bridge.mapping.sources`).
* :func:`names_matching`, how a stem name typed by the producer finds its stem — shared by the
  ``fx --stem`` commands (:mod:`bridge.plugins.edit`) and mapping sources (:mod:`bridge.mapping.sources`).

Pure data and string checks: no numpy, no pydantic, no imports from the rest of bridge.

Visual parameters
-----------------
Each parameter has a neutral value (what it is when nothing drives it), a hard range, and a
meaning that every engine honours. Mapping outputs are *added* to the neutral value, then clipped to
the range (and to the mapping's own clamp range, if any).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class VisualParameter:
    name: str
    neutral: float
    minimum: float
    maximum: float
    doc: str
    #: Integrated parameters: what the mappings give is a rate per frame, and the column holds its
    #: running sum from the song's first frame (a position that only moves when driven: a hit
    #: steps it forward and it stays there, so the picture moves on the hit and not after it).
    integrated: bool = False
    #: The unit of its values (and so of a mapping's amount, offset and range): what the editor shows.
    unit: str = ""


PARAMETERS: dict[str, VisualParameter] = {
    p.name: p
    for p in (
        VisualParameter("zoom", 0.0, -0.5, 0.5,
                        "feedback zoom per frame, as a fraction: 0.02 = previous frame scaled by 1.02", unit="size/frame"),
        VisualParameter("rotation", 0.0, -30.0, 30.0, "feedback rotation per frame, degrees", unit="°/frame"),
        VisualParameter("translate_x", 0.0, -0.25, 0.25, "feedback shift per frame, fraction of width", unit="width/frame"),
        VisualParameter("translate_y", 0.0, -0.25, 0.25, "feedback shift per frame, fraction of height", unit="height/frame"),
        VisualParameter("hue", 0.0, -10.0, 10.0, "palette hue rotation in turns (wraps; 0.5 = opposite colour)", unit="turns"),
        VisualParameter("saturation", 0.0, -1.0, 1.0, "added to the base saturation (0.75)"),
        VisualParameter("brightness", 0.0, -1.0, 1.0, "added to the base brightness (1.0 = unchanged)"),
        VisualParameter("flash", 0.0, 0.0, 1.0, "white flash amount (kicks, hits)"),
        VisualParameter("warp", 0.0, 0.0, 1.0, "spatial distortion of the feedback (liquid/bass wobble)"),
        VisualParameter("pulse", 0.0, 0.0, 1.0, "size/energy of the foreground shapes"),
        VisualParameter("detail", 0.0, 0.0, 1.0, "fine detail / sparkle layer (hats, vocals)"),
        VisualParameter("decay", 0.0, -0.5, 0.5, "added to feedback persistence (0 = engine default trail length)"),
        VisualParameter("strength", 0.0, 0.0, 1.0,
                        "added to the base img2img denoising strength (diffusion engines); procedural: re-seeding"),
        VisualParameter("prompt_mix", 0.0, 0.0, 1.0,
                        "blend toward the next section's prompt (diffusion engines); procedural: palette blend"),
        VisualParameter("travel", 0.0, 0.0, 0.5,
                        "forward travel through the pattern per frame, in turns (integrated: the column is "
                        "the position reached; a hit steps it and it stays)", integrated=True, unit="turns/frame"),
    )
}

PARAMETER_NAMES: tuple[str, ...] = tuple(PARAMETERS)

#: Mapping targets ``shader:NAME`` drive a float/long/bool INPUT of the shader look (e.g.
#: ``drums.onset → shader:glow``): the mapping's value is added to the input's DEFAULT and the
#: engine clamps the sum to the input's MIN/MAX. Other engines ignore them.
SHADER_TARGET_PREFIX = "shader:"
_SHADER_INPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unit_of(target: str) -> str:
    """The unit of a mapping target's values ("°/frame" for rotation, "turns" for hue); "" for a
    0..1 level, a ``shader:NAME`` input (its own scale) or an unknown name."""
    p = PARAMETERS.get(target)
    return p.unit if p is not None else ""


def is_shader_target(target: str) -> bool:
    return target.startswith(SHADER_TARGET_PREFIX)


def shader_input_name(target: str) -> str:
    """``shader:glow`` → ``glow``; ValueError (naming the fix) when NAME is not a GLSL identifier."""
    name = target[len(SHADER_TARGET_PREFIX):]
    if not _SHADER_INPUT.fullmatch(name):
        raise ValueError(f"mapping target {target!r}: {name!r} is not a shader input name; use "
                         "'shader:NAME' with the NAME of a float input of the look (stembridge looks list --inputs)")
    return name


# -- sections --------------------------------------------------------------------------------------

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


# -- effect chains ---------------------------------------------------------------------------------

#: pedalboard class names usable as ``FxSlot.plugin``.
BUILTIN_EFFECTS: tuple[str, ...] = (
    "Bitcrush", "Chorus", "Clipping", "Compressor", "Delay", "Distortion", "Gain",
    "HighShelfFilter", "HighpassFilter", "LadderFilter", "Limiter", "LowShelfFilter",
    "LowpassFilter", "NoiseGate", "PeakFilter", "Phaser", "PitchShift", "Reverb",
)

#: Tempo-synced settings of built-ins: (class, setting in beats) -> the pedalboard setting in
#: seconds it becomes at the project's tempo. Hosted plugins get no tempo from pedalboard.
TEMPO_SYNCED: dict[tuple[str, str], str] = {("Delay", "delay_beats"): "delay_seconds"}

#: File name endings of the plugin bundles stembridge hosts: VST3, and Audio Units on macOS.
PLUGIN_BUNDLE_SUFFIXES: tuple[str, ...] = (".vst3", ".component")


def is_builtin(plugin: str) -> bool:
    return plugin in BUILTIN_EFFECTS


# -- mapping sources -------------------------------------------------------------------------------

#: The source prefix for the mix as heard (``mix.onset``, ``mix.rms``…), unless a stem or role
#: is named so.
MIX = "mix"


# -- stem names as the producer types them ---------------------------------------------------------

def names_matching(typed: str, names: Iterable[str]) -> tuple[str, ...]:
    """The names ``typed`` may mean, as a producer types a stem's name the way their DAW shows it
    (``--stem Drums`` for a stem named ``drums``): the one spelled exactly so; else every one equal
    to it ignoring case. One name: that stem; none: no such stem; several (``Drums`` and ``drums``
    in one project): ambiguous — the caller says so and lists the stems, rather than guessing."""
    names = list(dict.fromkeys(names))
    if typed in names:
        return (typed,)
    folded = typed.strip().casefold()
    return tuple(n for n in names if n.casefold() == folded)
