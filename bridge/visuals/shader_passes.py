"""One ISF look's passes in a GL context: its program, pass buffers and the uniforms it is fed.

:class:`LookRun` holds what a look needs in the shader engine's context (compiled once per run): the
program, two textures per pass TARGET (swapped after the pass, so a pass reads the buffer's previous
contents: feedback), its image / audio / audioFFT input textures and the texture it draws into.
Each frame it binds ISF's standard uniforms (``TIME`` is the song position, ``DATE`` a fixed day,
never the wall clock), every visual parameter, the musical clock from the song's beat grid and the
look's own INPUTS (a ``shader:NAME`` mapping adds to the DEFAULT), then runs the passes in order.

What is drawn when (sections, transitions, the hit punch) is the engine's business:
:mod:`bridge.visuals.shader`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from bridge.errors import RenderError
from bridge.mapping.params import PARAMETERS, SHADER_TARGET_PREFIX
from bridge.visuals.base import RenderContext
from bridge.visuals.isf import (
    INPUT_TYPES,
    VERTEX_SHADER,
    IsfShader,
    compiler_message,
    fragment_source,
    pass_size,
)

#: Samples an ``audio`` input shows, and the window of an ``audioFFT`` input (its bins: half).
AUDIO_SAMPLES = 512
AUDIO_FFT_SIZE = 1024
#: DATE uniform: a fixed day (2000-01-01) so renders never depend on when they run.
_DATE = (2000.0, 1.0, 1.0)


def compile_program(gl, shader: IsfShader):
    """The look's GL program in context ``gl``; RenderError with the compiler's message (FILE:LINE)."""
    import moderngl

    try:
        return gl.program(vertex_shader=VERTEX_SHADER, fragment_shader=fragment_source(shader))
    except moderngl.Error as e:
        raise RenderError(compiler_message(shader, str(e))) from None


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



class LookRun:
    """One look's GL objects in a context (compiled once per run): its program, the pass buffers
    (PERSISTENT feedback), its image/audio inputs and the texture it draws into.

    ``gl`` is the context, current in the thread that draws; ``vbo`` the full-screen quad;
    ``images``: IMAGE input name → picture file (black when not given); ``audio_inputs``:
    audio/audioFFT input name → the stem it shows ("mix" when not given); ``base_hue`` is added to
    ``hue``; ``defaults``: the song's values of the look's structural inputs, in place of their
    DEFAULTs (:func:`bridge.visuals.shader_looks.song_variation`)."""

    def __init__(self, gl, ctx: RenderContext, vbo, shader: IsfShader, *, images: Mapping[str, str],
                 audio_inputs: Mapping[str, str], base_hue: float,
                 defaults: Mapping[str, float]) -> None:
        self.gl = gl
        self.ctx = ctx
        self.shader = shader
        self.images = images
        self.audio_inputs = audio_inputs
        self.base_hue = base_hue
        self.program = compile_program(gl, shader)
        self.vao = gl.vertex_array(self.program, [(vbo, "2f", "in_position")])
        self.out_tex = gl.texture((ctx.width, ctx.height), 4)
        self.out = gl.framebuffer(color_attachments=[self.out_tex])
        #: the frame last drawn: a look that was not drawn on the frame before starts from clear
        #: buffers, so what it shows never depends on when it was shown last (or on seeks)
        self.last_frame: int | None = None
        self.targets: dict[str, list] = {}  # name -> [front texture, back texture, fbo front, fbo back]
        for p in shader.passes:
            if not p.target or p.target in self.targets:
                continue
            size = (pass_size(p.width, ctx.width, ctx.height) or ctx.width,
                    pass_size(p.height, ctx.width, ctx.height) or ctx.height)
            dtype = "f4" if p.float_buffer else "f1"
            texs = [gl.texture(size, 4, dtype=dtype) for _ in range(2)]
            fbos = [gl.framebuffer(color_attachments=[t]) for t in texs]
            for t in texs:
                t.repeat_x = t.repeat_y = False
            self.targets[p.target] = [texs[0], texs[1], fbos[0], fbos[1]]
        self.inputs: dict[str, object] = {}
        self.defaults = defaults
        for item in shader.image_inputs:
            if item.type == "image":
                self.inputs[item.name] = self._image_texture(item.name)
            else:
                width = AUDIO_SAMPLES if item.type == "audio" else AUDIO_FFT_SIZE // 2
                self.inputs[item.name] = gl.texture((width, 1), 1, dtype="f4")

    def _image_texture(self, name: str):
        gl = self.gl
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
        ctx = self.ctx
        want = self.audio_inputs.get(name, "mix")
        audio = ctx.audio.get(want)
        if audio is None and ctx.audio and want != "mix":
            raise RenderError(f"audio input {name!r} asks for stem {want!r}, which the project does not have; "
                              f"use one of {', '.join(ctx.audio)}")
        return audio

    def _update_audio(self, t: float) -> None:
        """Fill the look's audio / audioFFT textures with the samples up to song time ``t``."""
        ctx = self.ctx
        for item in self.shader.image_inputs:
            if item.type not in ("audio", "audioFFT"):
                continue
            tex = self.inputs[item.name]
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

    def _set(self, name: str, value: object) -> None:
        if name in self.program:
            self.program[name].value = value

    def clear(self) -> None:
        for entry in self.targets.values():
            for fbo in entry[2:]:
                fbo.use()
                self.gl.clear(0.0, 0.0, 0.0, 0.0)

    def draw(self, frame_index: int, params: Mapping[str, float], section_index: int, progress: float) -> None:
        """Run the look's passes for ``frame_index``; the picture lands in ``out``."""
        ctx = self.ctx
        if self.last_frame != frame_index - 1:
            self.clear()
        self.last_frame = frame_index
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
        self._set("section_progress", float(progress) if math.isfinite(progress) else 1.0)
        for item in self.shader.inputs:
            if INPUT_TYPES[item.type] != "sampler2D" and item.default is not None:
                value = self.defaults.get(item.name, item.default)
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
            for name, tex in self.inputs.items():
                tex.use(location=unit)
                self._set(name, unit)
                unit += 1
            for name, (front, _back, _ff, _bf) in self.targets.items():
                front.use(location=unit)
                self._set(name, unit)
                unit += 1
            if p.target:
                entry = self.targets[p.target]
                fbo, size = entry[3], entry[1].size
            else:
                fbo, size = self.out, (ctx.width, ctx.height)
            fbo.use()
            self.gl.viewport = (0, 0, *size)
            self.vao.render(5)  # moderngl.TRIANGLE_STRIP
            if p.target:
                entry[0], entry[1], entry[2], entry[3] = entry[1], entry[0], entry[3], entry[2]
