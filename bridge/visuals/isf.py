"""ISF 2.0 (Interactive Shader Format, the VJ community's shader files) → GLSL 3.30, no GL here.

An ISF file is a GLSL fragment shader with a JSON header in its first comment::

    /*{ "DESCRIPTION": "…", "ISFVSN": "2",
        "INPUTS": [{"NAME": "glow", "TYPE": "float", "DEFAULT": 0.5, "MIN": 0, "MAX": 1}, …],
        "PASSES": [{"TARGET": "feedback", "PERSISTENT": true, "FLOAT": true}, {}] }*/
    void main() { gl_FragColor = IMG_NORM_PIXEL(feedback, isf_FragNormCoord) * 0.9; }

:func:`parse_isf` reads the header into an :class:`IsfShader`; :func:`fragment_source` writes the
GLSL 3.30 core program a modern context compiles: the standard uniforms (``TIME``, ``TIMEDELTA``,
``RENDERSIZE``, ``FRAMEINDEX``, ``DATE``, ``PASSINDEX``), one uniform per INPUT, one sampler per
image/audio/audioFFT input and per pass TARGET, the ``IMG_*`` macros, ``isf_FragNormCoord``, and —
what stembridge adds — every visual parameter (``flash``, ``travel``, ``hue`` …) and the musical
clock (``beat_phase``, ``bar_phase``, ``section_index``, ``section_progress``) as float uniforms.

Written here because no maintained Python ISF loader exists (the reference implementations are
VVISF in C++ and interactive-shader-format-js in JavaScript); the translation is a header parse and
a preamble of #defines, the same approach those take.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import RenderError
from bridge.mapping.params import PARAMETER_NAMES

#: Input types and the GLSL type of their uniform.
INPUT_TYPES = {"float": "float", "bool": "bool", "long": "int", "event": "bool", "color": "vec4",
               "point2D": "vec2", "image": "sampler2D", "audio": "sampler2D", "audioFFT": "sampler2D"}
#: Uniforms stembridge gives every shader besides ISF's own and the visual parameters.
MUSIC_UNIFORMS = ("beat_phase", "bar_phase", "section_index", "section_progress", "beat_index", "bar_index",
                  "beat_in_bar")

VERTEX_SHADER = """#version 330
in vec2 in_position;
out vec2 isf_FragNormCoord;
void main() {
    isf_FragNormCoord = in_position * 0.5 + 0.5;
    gl_Position = vec4(in_position, 0.0, 1.0);
}
"""


@dataclass(frozen=True)
class IsfInput:
    name: str
    type: str
    default: object = None
    minimum: object = None
    maximum: object = None


@dataclass(frozen=True)
class IsfPass:
    target: str | None = None
    persistent: bool = False
    float_buffer: bool = False
    width: str | None = None
    height: str | None = None


@dataclass(frozen=True)
class IsfShader:
    """A parsed ISF file. ``body``: the GLSL after the header; ``header_lines``: how many source
    lines the header took (so compiler line numbers can be mapped back to the file)."""

    name: str
    description: str
    inputs: tuple[IsfInput, ...]
    passes: tuple[IsfPass, ...]
    body: str
    path: Path | None = None
    header_lines: int = 0
    categories: tuple[str, ...] = field(default_factory=tuple)
    #: STATE_MEMORY_SECONDS (a stembridge extension): seconds after which the feedback buffers hold
    #: the same bits whatever they held before (bridge.visuals.shader_looks.look_memory_seconds).
    memory_seconds: float | None = None

    @property
    def image_inputs(self) -> tuple[IsfInput, ...]:
        return tuple(i for i in self.inputs if INPUT_TYPES[i.type] == "sampler2D")


def _where(path: Path | None, name: str) -> str:
    return str(path) if path is not None else name


def parse_isf(source: str, *, name: str = "shader", path: Path | None = None) -> IsfShader:
    """Parse an ISF 2.0 fragment shader. Raises RenderError naming the file and what is wrong."""
    where = _where(path, name)
    match = re.match(r"\s*/\*(.*?)\*/", source, flags=re.S)
    if not match:
        raise RenderError(f"{where}: no ISF header: an ISF shader starts with a /*{{ … }}*/ JSON comment")
    try:
        header = json.loads(match.group(1))
    except json.JSONDecodeError as e:
        raise RenderError(f"{where}: the ISF header is not valid JSON ({e.msg} at line {e.lineno + 0})") from None
    if not isinstance(header, dict):
        raise RenderError(f"{where}: the ISF header must be a JSON object")
    inputs = []
    for raw in header.get("INPUTS", []) or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("NAME"), str) or not raw["NAME"].isidentifier():
            raise RenderError(f"{where}: an INPUT needs a NAME that is a GLSL identifier (got {raw!r})")
        kind = raw.get("TYPE")
        if kind not in INPUT_TYPES:
            raise RenderError(f"{where}: INPUT {raw['NAME']!r} has TYPE {kind!r}; use one of {', '.join(INPUT_TYPES)}")
        inputs.append(IsfInput(raw["NAME"], kind, raw.get("DEFAULT"), raw.get("MIN"), raw.get("MAX")))
    passes = []
    for raw in header.get("PASSES", []) or [{}]:
        if not isinstance(raw, dict):
            raise RenderError(f"{where}: each PASS must be a JSON object (got {raw!r})")
        target = raw.get("TARGET")
        if target is not None and (not isinstance(target, str) or not target.isidentifier()):
            raise RenderError(f"{where}: PASS TARGET {target!r} must be a GLSL identifier")
        passes.append(IsfPass(target, bool(raw.get("PERSISTENT", False)), bool(raw.get("FLOAT", False)),
                              _size_expr(raw.get("WIDTH")), _size_expr(raw.get("HEIGHT"))))
    memory = header.get("STATE_MEMORY_SECONDS")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int | float)
                               or not math.isfinite(memory) or memory < 0):
        raise RenderError(f"{where}: STATE_MEMORY_SECONDS {memory!r} must be a number of seconds ≥ 0 "
                          "(how long the look's feedback remembers), e.g. 4")
    body = source[match.end():]
    header_lines = source[: match.end()].count("\n")
    return IsfShader(
        name=name, description=str(header.get("DESCRIPTION", "")), inputs=tuple(inputs),
        passes=tuple(passes or [IsfPass()]), body=body, path=path, header_lines=header_lines,
        categories=tuple(str(c) for c in header.get("CATEGORIES", []) or []),
        memory_seconds=None if memory is None else float(memory),
    )


def load_isf(path: str | Path) -> IsfShader:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RenderError(f"{path}: cannot read the shader ({e})") from None
    return parse_isf(text, name=path.stem, path=path)


def _size_expr(value: object) -> str | None:
    return None if value is None else str(value)


def pass_size(expr: str | None, width: int, height: int) -> int | None:
    """A PASS WIDTH/HEIGHT such as ``"$WIDTH/2"`` or ``"floor($HEIGHT*0.25)"`` in pixels (None: the
    render size). Only numbers, $WIDTH, $HEIGHT, + - * / ( ) and floor/ceil/max/min are allowed."""
    if expr is None:
        return None
    text = expr.replace("$WIDTH", str(width)).replace("$HEIGHT", str(height))
    if not re.fullmatch(r"[0-9.+\-*/() ,a-z]*", text) or re.search(r"[a-z]+", text.replace("floor", "")
                                                                   .replace("ceil", "").replace("max", "")
                                                                   .replace("min", "")):
        raise RenderError(f"PASS size {expr!r} is not an expression of $WIDTH and $HEIGHT")
    import math

    value = eval(text, {"__builtins__": {}}, {"floor": math.floor, "ceil": math.ceil, "max": max, "min": min})  # noqa: S307 - characters checked above
    return max(1, int(value))


def fragment_source(shader: IsfShader) -> str:
    """The GLSL 3.30 core fragment program for ``shader`` (see the module docstring).

    Line numbers: the preamble is followed by ``#line`` so the compiler reports the file's own
    line numbers for errors in the body.
    """
    lines = ["#version 330",
             "uniform float TIME;", "uniform float TIMEDELTA;", "uniform vec2 RENDERSIZE;",
             "uniform int PASSINDEX;", "uniform int FRAMEINDEX;", "uniform vec4 DATE;",
             "in vec2 isf_FragNormCoord;", "out vec4 isf_FragColor;",
             "#define gl_FragColor isf_FragColor", "#define varying in", "#define texture2D texture",
             "#define IMG_NORM_PIXEL(img, c) texture(img, c)",
             "#define IMG_PIXEL(img, c) texture(img, (c) / vec2(textureSize(img, 0)))",
             "#define IMG_THIS_NORM_PIXEL(img) texture(img, isf_FragNormCoord)",
             "#define IMG_THIS_PIXEL(img) texture(img, isf_FragNormCoord)",
             "#define IMG_SIZE(img) vec2(textureSize(img, 0))",
             "#define isf_FragCoord gl_FragCoord"]
    declared = set()
    for item in shader.inputs:
        lines.append(f"uniform {INPUT_TYPES[item.type]} {item.name};")
        declared.add(item.name)
    for p in shader.passes:
        if p.target and p.target not in declared:
            lines.append(f"uniform sampler2D {p.target};")
            declared.add(p.target)
    for name in (*PARAMETER_NAMES, *MUSIC_UNIFORMS):
        if name not in declared and not re.search(rf"\buniform\s+\w+\s+{name}\b", shader.body):
            lines.append(f"uniform float {name};")
    lines.append(f"#line {shader.header_lines + 1}")
    return "\n".join(lines) + "\n" + shader.body


def compiler_message(shader: IsfShader, error: str) -> str:
    """A GL compiler log turned into "FILE:LINE: message" lines (Mesa and NVIDIA prefix lines
    with ``0:LINE(COL)`` or ``0(LINE)``)."""
    where = _where(shader.path, shader.name)
    out = []
    for line in str(error).splitlines():
        m = re.search(r"\b0[:(](\d+)\)?(?:\((\d+)\))?\s*:?\s*(.*)", line)
        if m and ("error" in line.lower() or "warning" in line.lower()):
            out.append(f"{where}:{m.group(1)}: {m.group(3).strip()}")
    return "\n".join(out) or f"{where}: {str(error).strip()}"
