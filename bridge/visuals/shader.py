"""The shader engine: ISF 2.0 fragment shaders ("looks") on OpenGL 3.3 through moderngl, headless.

One standalone GL context per engine (EGL on Linux — Mesa's llvmpipe on a machine without a GPU,
the GPU's driver where there is one; the platform's default context elsewhere), created in
``start`` and used only from the thread that renders. Each frame runs the look's passes in order:
a pass with a TARGET renders into that buffer (two textures per target, swapped after the pass, so
a pass can read the buffer's previous contents: feedback); PERSISTENT buffers keep their contents
from frame to frame, FLOAT ones are 32-bit float. The last pass without a TARGET is the picture.

Deterministic: ``TIME`` is the song position (frame / fps), ``DATE`` a fixed day plus that time,
never the wall clock, so preview, export and a re-render give the same frames. Every visual
parameter of :mod:`bridge.mapping.params` (``travel``, ``flash``, ``hue`` …) is a float uniform, and
so are ``beat_phase``, ``bar_phase`` (0→1 through the beat / bar, from the song's beat grid),
``beat_index``, ``bar_index``, ``beat_in_bar`` (counts from 0 on that grid),
``section_index`` and ``section_progress``.

Looks: ``bridge/visuals/looks/*.fs`` ship with the package; ``stembridge looks add FILE.fs`` copies
the producer's own into the user data folder (same name: the user's wins).
"""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bridge.errors import MissingDependency, RenderError
from bridge.mapping.params import PARAMETERS, SHADER_TARGET_PREFIX
from bridge.visuals.base import RenderContext
from bridge.visuals.isf import (
    INPUT_TYPES,
    VERTEX_SHADER,
    IsfShader,
    compiler_message,
    fragment_source,
    load_isf,
    pass_size,
)

SHIPPED_LOOKS = Path(__file__).resolve().parent / "looks"
DEFAULT_LOOK = "tunnel"
#: Samples an ``audio`` input shows, and the window of an ``audioFFT`` input (its bins: half).
AUDIO_SAMPLES = 512
AUDIO_FFT_SIZE = 1024
#: DATE uniform: a fixed day (2000-01-01) so renders never depend on when they run.
_DATE = (2000.0, 1.0, 1.0)


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


def compile_program(gl, shader: IsfShader):
    """The look's GL program in context ``gl``; RenderError with the compiler's message (FILE:LINE)."""
    import moderngl

    try:
        return gl.program(vertex_shader=VERTEX_SHADER, fragment_shader=fragment_source(shader))
    except moderngl.Error as e:
        raise RenderError(compiler_message(shader, str(e))) from None


def create_gl_context():
    """A standalone OpenGL ≥ 3.3 context: EGL on Linux (headless), the default elsewhere."""
    try:
        import moderngl
    except ImportError as exc:
        raise MissingDependency("moderngl", feature="The shader engine") from exc
    import sys

    attempts = [dict(backend="egl")] if sys.platform.startswith("linux") else []
    attempts.append({})
    errors = []
    for kwargs in attempts:
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as e:  # noqa: BLE001 - moderngl/glcontext raise several types
            errors.append(f"{kwargs.get('backend', 'default')}: {e}")
    raise RenderError(
        "the shader engine needs OpenGL 3.3, and no context could be created (" + "; ".join(errors) + "). "
        "On Linux install Mesa's EGL (Debian/Ubuntu: apt install libegl1 libegl-mesa0 libgl1-mesa-dri), "
        "or use --engine procedural")


def _clamp_input(item, value: float) -> float:
    """``value`` within the ISF input's MIN/MAX (either may be absent)."""
    if item.minimum is not None:
        value = max(float(item.minimum), value)
    if item.maximum is not None:
        value = min(float(item.maximum), value)
    return value


def _counts(beats: tuple[float, ...], downbeats: tuple[float, ...], t: float) -> tuple[int, int, int]:
    """(beat index, bar index, beat in the bar) at ``t``, all from 0; 0 before the first beat/bar."""
    beat = max(0, int(np.searchsorted(np.asarray(beats), t, side="right")) - 1)
    bar = max(0, int(np.searchsorted(np.asarray(downbeats), t, side="right")) - 1)
    if not downbeats or not beats:
        return beat, bar, 0
    first = int(np.searchsorted(np.asarray(beats), downbeats[bar] - 1e-6, side="left"))
    return beat, bar, max(0, beat - first)


def _phase(times: tuple[float, ...], t: float) -> float:
    """0→1 position of ``t`` between the grid points around it (0 before the first)."""
    if len(times) < 2:
        return 0.0
    arr = np.asarray(times)
    i = int(np.searchsorted(arr, t, side="right")) - 1
    if i < 0:
        return 0.0
    if i >= arr.size - 1:
        period = float(arr[-1] - arr[-2])
        return ((t - arr[-1]) / period) % 1.0 if period > 0 else 0.0
    return float((t - arr[i]) / (arr[i + 1] - arr[i]))


class ShaderEngine:
    """Renders an ISF look (see the module docstring). Settings: ``look`` (a name or a path);
    ``images``: IMAGE input name → picture file (e.g. cover art; black when not given);
    ``audio_inputs``: audio/audioFFT input name → the stem it shows ("mix" when not given).

    Audio inputs follow ISF: ``audio`` is the waveform (AUDIO_SAMPLES samples up to the frame's
    time, 0.5 = silence), ``audioFFT`` the magnitude spectrum of the AUDIO_FFT_SIZE samples up to it
    (AUDIO_FFT_SIZE / 2 bins, 0 Hz at the left, −80…0 dB mapped to 0…1)."""

    name = "shader"

    def __init__(self, *, look: str | None = None, images: Mapping[str, str] | None = None,
                 audio_inputs: Mapping[str, str] | None = None, base_hue: float = 0.0,
                 **engine_settings: object) -> None:
        from bridge.project.schema import EngineSettings

        unknown = set(engine_settings) - set(EngineSettings.model_fields)
        if unknown:
            raise RenderError(f"shader engine settings {sorted(unknown)} are unknown; it takes look and images")
        self.look_path = resolve_look(look)
        self.shader: IsfShader = load_isf(self.look_path)
        self.images = dict(images or {})
        self.base_hue = float(base_hue)  # the song's palette (bridge.visuals.character), added to `hue`
        #: audio / audioFFT input name → "mix" (the default) or a stem name
        self.audio_inputs = dict(audio_inputs or {})
        self._gl = None
        self._thread: int | None = None
        self._ctx: RenderContext | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, ctx: RenderContext) -> None:
        """Check the look compiles (a broken shader fails here, before any frame) and reset.

        The GL context itself is made on the first ``render``, in the thread that renders: a GL
        context is current in one thread, and the export renders in a worker thread."""
        self.close()
        self._ctx = ctx
        gl = create_gl_context()
        try:
            self._compile(gl).release()
        finally:
            gl.release()

    def _compile(self, gl):
        return compile_program(gl, self.shader)

    def _setup_gl(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        gl = self._gl = create_gl_context()
        self._thread = threading.get_ident()
        self._program = self._compile(gl)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self._vbo = gl.buffer(quad.tobytes())
        self._vao = gl.vertex_array(self._program, [(self._vbo, "2f", "in_position")])
        self._out_tex = gl.texture((ctx.width, ctx.height), 4)
        self._out = gl.framebuffer(color_attachments=[self._out_tex])
        self._targets: dict[str, list] = {}  # name -> [front texture, back texture, fbo front, fbo back]
        for p in self.shader.passes:
            if not p.target or p.target in self._targets:
                continue
            size = (pass_size(p.width, ctx.width, ctx.height) or ctx.width,
                    pass_size(p.height, ctx.width, ctx.height) or ctx.height)
            dtype = "f4" if p.float_buffer else "f1"
            texs = [gl.texture(size, 4, dtype=dtype) for _ in range(2)]
            fbos = [gl.framebuffer(color_attachments=[t]) for t in texs]
            for t in texs:
                t.repeat_x = t.repeat_y = False
            for f in fbos:
                f.use()
                gl.clear(0.0, 0.0, 0.0, 0.0)
            self._targets[p.target] = [texs[0], texs[1], fbos[0], fbos[1]]
        self._inputs: dict[str, object] = {}
        for item in self.shader.image_inputs:
            if item.type == "image":
                self._inputs[item.name] = self._image_texture(item.name)
            else:
                width = AUDIO_SAMPLES if item.type == "audio" else AUDIO_FFT_SIZE // 2
                self._inputs[item.name] = gl.texture((width, 1), 1, dtype="f4")

    def _image_texture(self, name: str):
        gl = self._gl
        path = self.images.get(name)
        if path:
            import cv2

            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise RenderError(f"image {path!r} for the look's input {name!r} cannot be read; use a PNG or JPEG")
            rgba = cv2.cvtColor(img[::-1], cv2.COLOR_BGR2RGBA)  # GL rows start at the bottom
            return gl.texture((rgba.shape[1], rgba.shape[0]), 4, np.ascontiguousarray(rgba).tobytes())
        return gl.texture((1, 1), 4, bytes(4))

    def _audio_source(self, name: str) -> np.ndarray | None:
        ctx = self._ctx
        want = self.audio_inputs.get(name, "mix")
        audio = ctx.audio.get(want) if ctx is not None else None
        if audio is None and ctx is not None and ctx.audio and want != "mix":
            raise RenderError(f"audio input {name!r} asks for stem {want!r}, which the project does not have; "
                              f"use one of {', '.join(ctx.audio)}")
        return audio

    def _update_audio(self, t: float) -> None:
        """Fill the audio / audioFFT textures with the samples up to song time ``t``."""
        ctx = self._ctx
        for item in self.shader.image_inputs:
            if item.type not in ("audio", "audioFFT"):
                continue
            tex = self._inputs[item.name]
            audio = self._audio_source(item.name)
            n = AUDIO_SAMPLES if item.type == "audio" else AUDIO_FFT_SIZE
            window = np.zeros(n, dtype=np.float32)
            if audio is not None and ctx.audio_sample_rate > 0:
                end = int(round(t * ctx.audio_sample_rate))
                start = max(0, end - n)
                chunk = audio[start:end]
                if chunk.size:
                    window[n - chunk.size:] = chunk
            if item.type == "audio":
                values = 0.5 + 0.5 * np.clip(window, -1.0, 1.0)
            else:
                spectrum = np.abs(np.fft.rfft(window * np.hanning(n).astype(np.float32)))[: n // 2]
                spectrum *= 2.0 / np.sum(np.hanning(n))  # a full-scale sine → 1.0 (0 dB)
                db = 20.0 * np.log10(np.maximum(spectrum, 1e-6))
                values = np.clip((db + 80.0) / 80.0, 0.0, 1.0)
            tex.write(np.ascontiguousarray(values, dtype=np.float32).tobytes())

    def close(self) -> None:
        if self._gl is not None:
            self._gl.release()
        self._gl = None
        self._thread = None

    # -- the frame ---------------------------------------------------------------------------
    def _set(self, name: str, value: object) -> None:
        if name in self._program:
            self._program[name].value = value

    def render(self, frame_index: int, params: Mapping[str, float], section_index: int,
               section_mix: float) -> np.ndarray:
        ctx = self._ctx
        if ctx is None:
            raise RenderError("ShaderEngine.render was called before start(ctx); call start first")
        if self._gl is None or self._thread != threading.get_ident():
            # First frame, or frames now come from another thread: the context (and the feedback
            # buffers) belong to the thread that renders.
            self.close()
            self._setup_gl()
        fps = float(ctx.fps)
        t = frame_index / fps
        self._set("TIME", t)
        self._set("TIMEDELTA", 1.0 / fps)
        self._set("RENDERSIZE", (float(ctx.width), float(ctx.height)))
        self._set("FRAMEINDEX", int(frame_index))
        self._set("DATE", (*_DATE, t))
        for name, spec in PARAMETERS.items():
            v = float(params.get(name, spec.neutral))
            v = v if math.isfinite(v) else spec.neutral
            self._set(name, v + self.base_hue if name == "hue" else v)
        self._set("beat_phase", _phase(ctx.beats_s, t))
        self._set("bar_phase", _phase(ctx.downbeats_s, t))
        beat, bar, in_bar = _counts(ctx.beats_s, ctx.downbeats_s, t)
        self._set("beat_index", float(beat))
        self._set("bar_index", float(bar))
        self._set("beat_in_bar", float(in_bar))
        self._set("section_index", float(section_index))
        self._set("section_progress", float(section_mix) if math.isfinite(section_mix) else 1.0)
        for item in self.shader.inputs:
            if INPUT_TYPES[item.type] != "sampler2D" and item.default is not None:
                value = item.default
                if item.type == "color" or item.type == "point2D":
                    value = tuple(float(x) for x in value)
                else:
                    # a mapping to shader:NAME adds to the input's DEFAULT, clamped to MIN/MAX
                    mapped = params.get(SHADER_TARGET_PREFIX + item.name)
                    if mapped is not None and math.isfinite(float(mapped)):
                        value = _clamp_input(item, float(value) + float(mapped))
                    if item.type == "long":
                        value = int(round(float(value)))
                    elif item.type in ("bool", "event"):
                        value = bool(value >= 0.5) if mapped is not None else bool(value)
                    else:
                        value = float(value)
                self._set(item.name, value)
        self._update_audio(t)
        for index, p in enumerate(self.shader.passes):
            self._set("PASSINDEX", index)
            unit = 0
            for name, tex in self._inputs.items():
                tex.use(location=unit)
                self._set(name, unit)
                unit += 1
            for name, (front, _back, _ff, _bf) in self._targets.items():
                front.use(location=unit)
                self._set(name, unit)
                unit += 1
            if p.target:
                entry = self._targets[p.target]
                fbo, size = entry[3], entry[1].size
            else:
                fbo, size = self._out, (ctx.width, ctx.height)
            fbo.use()
            self._gl.viewport = (0, 0, *size)
            self._vao.render(5)  # moderngl.TRIANGLE_STRIP
            if p.target:
                entry[0], entry[1], entry[2], entry[3] = entry[1], entry[0], entry[3], entry[2]
        data = self._out.read(components=3, alignment=1)
        frame = np.frombuffer(data, dtype=np.uint8).reshape(ctx.height, ctx.width, 3)
        return np.ascontiguousarray(frame[::-1])
