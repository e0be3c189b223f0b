"""The shader engine's looks: where they are, what they are called, and adding the producer's own.

A look is an ISF 2.0 fragment shader file (``.fs``). ``bridge/visuals/looks/*.fs`` ship with the
package; ``stembridge looks add FILE.fs`` checks a file (header, and the compile where OpenGL is
available) and copies it into the user data folder (same name: the user's wins). Sections name a
look, or a path to an .fs file; :func:`resolve_look` turns either into the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bridge.errors import RenderError
from bridge.gl import create_gl_context
from bridge.mapping.params import SHADER_TARGET_PREFIX
from bridge.visuals.isf import IsfShader, load_isf
from bridge.visuals.shader_passes import compile_program

SHIPPED_LOOKS = Path(__file__).resolve().parent / "looks"
DEFAULT_LOOK = "tunnel"


def user_looks_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("stembridge", appauthor=False)) / "looks"


def available_looks() -> dict[str, Path]:
    """Look name → .fs file: the shipped looks, then the user's (which win on a name clash)."""
    looks: dict[str, Path] = {}
    for folder in (SHIPPED_LOOKS, user_looks_dir()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.fs")):
                looks[path.stem] = path
    return looks


def check_look_name(look: str) -> str:
    """``look`` when it is an .fs path or an installed look's name, else ValueError naming it and
    listing the shipped and the user's looks (what to choose instead)."""
    name = look.strip()
    if name.lower().endswith(".fs") or "/" in name or "\\" in name:
        return name
    looks = available_looks()
    if name not in looks:
        shipped = sorted(p.stem for p in SHIPPED_LOOKS.glob("*.fs"))
        yours = sorted(set(looks) - set(shipped))
        raise ValueError(f"look {name!r} is unknown; use one of the shipped looks ({', '.join(shipped)})"
                         + (f" or yours ({', '.join(yours)})" if yours else "")
                         + ", a path to an ISF .fs file, or none (null in the file, auto in the app and CLI) to have "
                         "it chosen from the music")
    return name


#: ISF input types a mapping can drive through a ``shader:NAME`` target.
MAPPABLE_INPUT_TYPES = ("float", "long", "bool")


def shader_targets(look: str | None) -> list[str]:
    """The ``shader:NAME`` mapping targets of a look (its float/long/bool inputs); [] when the
    look cannot be read (the render reports why)."""
    try:
        shader = load_isf(resolve_look(look))
    except (RenderError, OSError, ValueError):
        return []
    return [SHADER_TARGET_PREFIX + i.name for i in shader.inputs if i.type in MAPPABLE_INPUT_TYPES]


def resolve_look(look: str | None) -> Path:
    """A look name (shipped or the user's) or a path to an .fs file → the file. RenderError lists
    the looks when the name is unknown."""
    name = (look or DEFAULT_LOOK).strip()
    path = Path(name).expanduser()
    if path.suffix == ".fs" and path.is_file():
        return path
    looks = available_looks()
    if name in looks:
        return looks[name]
    raise RenderError(f"look {name!r} is unknown; use one of {', '.join(looks) or '(none installed)'}, "
                      "a path to an ISF .fs file, or add yours with `stembridge looks add FILE.fs`")


def looks_keep_state(look: str | None, sections) -> bool:
    """Whether a render with engine look ``look`` and these sections (:class:`SectionLook`) draws a
    look that carries pictures from frame to frame (a pass with a TARGET: feedback buffers). Without
    one, a frame depends only on its own parameters and the hit envelope's last frames, so a run of
    frames that starts mid-song needs no long pre-roll. True when a look cannot be read (the render
    reports why, and the long pre-roll is the safe side)."""
    names = [look, *(s.look for s in sections if s.look)]
    try:
        return any(p.target for name in dict.fromkeys(names) for p in load_isf(resolve_look(name)).passes)
    except (RenderError, OSError, ValueError):
        return True


#: Seconds a look with 8-bit feedback buffers is assumed to remember when its header does not say
#: (STATE_MEMORY_SECONDS): a guess, which the export checks (a segment whose pre-roll missed the
#: state is rendered again from the exact one).
DEFAULT_MEMORY_S = 2.0


def look_memory_seconds(name: str | Path | None) -> float | None:
    """How long the look ``name`` remembers, bit for bit: after this many seconds of frames its
    feedback buffers hold the same whatever they held before. 0 for a look without feedback (no pass
    with a TARGET); the header's ``STATE_MEMORY_SECONDS`` (a stembridge extension of ISF, measured
    for the built-in looks); None for a FLOAT buffer without one (a float that fades by a factor
    reaches the same bits only when it underflows: ink's fluid, fading by 0.99 a frame as it then
    did, was still 2e-5 off after 30 s of the demo); else DEFAULT_MEMORY_S. None too when the look cannot be read
    (the render reports why)."""
    try:
        shader = load_isf(name if isinstance(name, Path) else resolve_look(name))
    except (RenderError, OSError, ValueError):
        return None
    targets = [p for p in shader.passes if p.target]
    if not targets:
        return 0.0
    if shader.memory_seconds is not None:
        return shader.memory_seconds
    return None if any(p.float_buffer for p in targets) else DEFAULT_MEMORY_S


def add_look(source: str | Path) -> list[Path]:
    """Copy an .fs file (or every .fs in a folder) into the user's looks, after checking that each
    parses as ISF and, where OpenGL is available, that it compiles (RenderError with the compiler's
    message, FILE:LINE, and nothing is copied). Returns the installed paths."""
    source = Path(source).expanduser()
    files = sorted(source.glob("*.fs")) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise RenderError(f"{source}: no ISF .fs shader there; pass an .fs file or a folder of them")
    shaders = [load_isf(f) for f in files]  # a broken header is reported now, not at render time
    try:
        gl = create_gl_context()
    except RenderError:
        gl = None  # no OpenGL here: the header is checked, the render reports a compile error
    if gl is not None:
        try:
            for shader in shaders:
                compile_program(gl, shader).release()
        finally:
            gl.release()
    target = user_looks_dir()
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        dest = target / f.name
        shutil.copyfile(f, dest)
        out.append(dest)
    return out


#: Every song its own look, within a look too: the inputs that set a look's structure (how many
#: folds, rings, traces; where the horizon lies; how dense the stars) vary from song to song, so two
#: songs that get the same look (similar tempo and brightness) still differ in shape, not only in
#: hue. (low, high, whole numbers?) per look name; the song's seed picks the value, so a song always
#: gets the same one. Only structure: nothing here changes how a look answers a hit (its sync was
#: measured with the DEFAULTs, which lie inside every range).
SONG_VARIATIONS: dict[str, dict[str, tuple[float, float, bool]]] = {
    "kaleidoscope": {"folds": (4.0, 9.0, True)},
    "tunnel": {"rings": (4.0, 9.0, True)},
    "grid": {"horizon": (0.45, 0.65, False)},
    "starfield": {"density": (0.4, 0.8, False)},
    "glitch": {"blocks": (12.0, 32.0, True)},
    "oscilloscope": {"traces": (3.0, 7.0, True)},
    "titles": {"stripes": (6.0, 14.0, True)},
    "cover": {"slices": (6.0, 16.0, True)},
}


def song_variation(shader: IsfShader, seed: int | None) -> dict[str, float]:
    """The song's values of ``shader``'s structural inputs (SONG_VARIATIONS, by the look's file
    name); {} without a seed or for a look with none (a producer's own look keeps its DEFAULTs)."""
    name = Path(shader.path).stem if shader.path is not None else ""
    ranges = SONG_VARIATIONS.get(name, {}) if seed is not None else {}
    out: dict[str, float] = {}
    for i, (input_name, (lo, hi, whole)) in enumerate(sorted(ranges.items())):
        u = np.random.default_rng([int(seed) % 2**32, i]).random()
        value = lo + u * (hi - lo)
        out[input_name] = float(round(value)) if whole else round(value, 3)
    return out
