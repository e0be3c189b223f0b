"""The visual parameters a mapping can drive (the columns of FrameParams).

Each parameter has a neutral value (what it is when nothing drives it), a hard range, and a
meaning that every engine honours. Mapping outputs are *added* to the neutral value, then clipped to
the range (and to the mapping's own clamp range, if any).
"""

from __future__ import annotations

import re
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
