"""The shader engine: ISF 2.0 fragment shaders ("looks") on OpenGL 3.3 through moderngl, headless.

One standalone GL context per engine (EGL on Linux — Mesa's llvmpipe on a machine without a GPU,
the GPU's driver where there is one; the platform's default context elsewhere), created on the
first frame and used only from the thread that renders. This module is the frame loop: which look
each section shows, the transitions between them (cut, crossfade, melt), a section's hit response
(``flash``/``pulse`` scaled, a zoom punch) and the read-back (RGB, or yuv420p converted on the GPU).

One look's passes, buffers (feedback) and uniforms are :mod:`bridge.visuals.shader_passes`;
finding, naming and adding looks is :mod:`bridge.visuals.shader_looks`.

Deterministic: ``TIME`` is the song position (frame / fps), ``DATE`` a fixed day plus that time,
never the wall clock, so preview, export and a re-render give the same frames.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bridge.errors import RenderError
from bridge.gl import create_gl_context
from bridge.mapping.params import PARAMETERS
from bridge.visuals.base import RenderContext
from bridge.visuals.isf import VERTEX_SHADER, IsfShader, load_isf
from bridge.visuals.readback import (
    draw_yuv420,
    gil_free_readback,
    read_framebuffer,
    yuv420_programs,
    yuv420_supported,
)
from bridge.visuals.shader_looks import (
    look_memory_seconds,
    looks_keep_state,
    resolve_look,
    song_variation,
)
from bridge.visuals.shader_passes import LookRun, compile_program

#: looks_keep_state is re-exported: bridge.export sizes its pre-roll with it and HIT_WINDOW_S.
__all__ = ["HIT_PARAMETERS", "HIT_TRAVEL_STEP", "HIT_WINDOW_S", "PUNCH_ZOOM", "ShaderEngine", "looks_keep_state",
           "state_memory_frames"]

#: The hit response of a section (SectionLook.hit) above 1 adds a zoom punch on each hit: the
#: picture is scaled up by PUNCH_ZOOM × (hit − 1) × the hit's strength, falling back to size over
#: HIT_WINDOW_S (a square taper that reaches exactly 0, so a segment's pre-roll rebuilds it exactly).
PUNCH_ZOOM = 0.16
HIT_WINDOW_S = 0.25
#: A frame's hit strength: its step of ``travel`` (the mappings move the picture on hits) over this
#: step, clipped to 1 (the default mappings step ~0.04 on a beat and up to ~0.13 on a loud hit).
HIT_TRAVEL_STEP = 0.12
#: Parameters a section's hit response scales (levels whose neutral value is 0).
HIT_PARAMETERS = ("flash", "pulse")

#: The section transitions and the hit punch, drawn from the looks' own output textures. One program
#: per MODE (and with or without the punch), each holding only its own code: llvmpipe runs every
#: branch of a shader, uniform or not, so the one shader with all the modes cost ~7 CPU-ms a pass
#: at 640×360 where a copy alone costs ~1.3 (benchmarks/section_transitions.py).
#: MODE 0: b with the punch; 1: crossfade a -> b; 2: melt step; 3: melt shown over b;
#: 4: b copied as it is, fully covering (the melt's first picture).
_COMPOSITE_SHADER = """
uniform sampler2D tex_a;      // the old look (crossfade) / the melt buffer (melt)
uniform sampler2D tex_b;      // the new look
uniform float progress;       // the transition's progress 0 -> 1
uniform float punch;          // zoom punch (PUNCH 1: above 0)
uniform float dt;             // seconds per frame
in vec2 isf_FragNormCoord;
out vec4 fragColor;

float hash(float x) { return fract(sin(x * 127.1) * 43758.5453); }
float noise(float x) { float i = floor(x); float f = fract(x); return mix(hash(i), hash(i + 1.0), f * f * (3.0 - 2.0 * f)); }

vec4 look(sampler2D tex) {
#if PUNCH
    return texture(tex, 0.5 + (isf_FragNormCoord - 0.5) / (1.0 + punch));
#else
    return texelFetch(tex, ivec2(gl_FragCoord.xy), 0);  // exactly the look's pixels
#endif
}

void main() {
    vec2 uv = isf_FragNormCoord;
#if MODE == 1
    fragColor = vec4(mix(look(tex_a).rgb, look(tex_b).rgb, progress), 1.0);
#elif MODE == 2
    // the old picture drips down in columns of varying speed (faster as the melt goes on),
    // wobbling sideways; what runs off the top is gone (alpha: how much old picture is left)
    float speed = (0.15 + 0.85 * noise(uv.x * 23.0)) * (0.25 + 1.75 * progress);
    vec2 src = uv + vec2(0.004 * progress * sin(uv.y * 31.0 + 9.0 * progress), speed * dt);
    vec4 m = src.y > 1.0 ? vec4(0.0) : texture(tex_a, src);
    fragColor = vec4(m.rgb, m.a * (1.0 - 0.6 * dt * progress));
#elif MODE == 4
    fragColor = vec4(texelFetch(tex_b, ivec2(gl_FragCoord.xy), 0).rgb, 1.0);
#elif MODE == 3
    vec4 m = texture(tex_a, uv);
    float cover = m.a * (1.0 - smoothstep(0.5, 1.0, progress));
    fragColor = vec4(mix(look(tex_b).rgb, m.rgb, cover), 1.0);
#else
    fragColor = vec4(look(tex_b).rgb, 1.0);
#endif
}
"""


class ShaderEngine:
    """Renders ISF looks (see the module docstring). Settings: ``look`` (a name or a path: the look
    of sections that have none of their own, :attr:`SectionLook.look`); ``images``: IMAGE input
    name → picture file (e.g. cover art; black when not given); ``audio_inputs``: audio/audioFFT
    input name → the stem it shows ("mix" when not given).

    Sections: each section shows its own look (compiled once per run); into a section the picture
    cuts (on the frame that holds the section start), crossfades the two looks' pictures over the
    transition, or melts (the old picture drips away in feedback, revealing the new look). Outside
    a transition only one look is drawn. A section's ``hit`` above 1 scales ``flash``/``pulse`` and
    adds a zoom punch on each hit (a step of ``travel``); below 1 it only scales them down.

    Audio inputs follow ISF (:class:`bridge.visuals.shader_passes.LookRun`): ``audio`` is the
    waveform (AUDIO_SAMPLES samples up to the frame's time, 0.5 = silence), ``audioFFT`` the
    magnitude spectrum of the AUDIO_FFT_SIZE samples up to it (AUDIO_FFT_SIZE / 2 bins, 0 Hz at the
    left, −80…0 dB mapped to 0…1)."""

    name = "shader"
    #: Whether :meth:`render_yuv420p` converts on the GPU. None (auto): only on a hardware GPU. On
    #: a software rasteriser (llvmpipe) the pass costs more than the CPU work it replaces (measured,
    #: benchmarks/render_speed.py --stages, 1280×720 on 2 cores: the pass 4.2 CPU-ms against 1.5 for
    #: the RGBA read, RGB and OpenCV's conversion), so there the export converts on the CPU.
    yuv_on_gpu: bool | None = None

    def __init__(self, *, look: str | None = None, images: Mapping[str, str] | None = None,
                 audio_inputs: Mapping[str, str] | None = None, base_hue: float = 0.0,
                 variation_seed: int | None = None, **engine_settings: object) -> None:
        from bridge.project.schema import EngineSettings

        unknown = set(engine_settings) - set(EngineSettings.model_fields)
        if unknown:
            raise RenderError(f"shader engine settings {sorted(unknown)} are unknown; it takes look and images")
        self.look_path = resolve_look(look)
        self.shader: IsfShader = load_isf(self.look_path)
        self.images = dict(images or {})
        self.base_hue = float(base_hue)  # the song's palette (bridge.visuals.character), added to `hue`
        #: the song's variation of each look's structure (SONG_VARIATIONS); None: the DEFAULTs
        self.variation_seed = None if variation_seed is None else int(variation_seed)
        #: audio / audioFFT input name → "mix" (the default) or a stem name
        self.audio_inputs = dict(audio_inputs or {})
        self._gl = None
        self._thread: int | None = None
        self._ctx: RenderContext | None = None
        self._shaders: dict[Path, IsfShader] = {self.look_path: self.shader}
        self._section_paths: tuple[Path, ...] = ()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, ctx: RenderContext) -> None:
        """Check every look the sections use compiles (a broken or unknown one fails here, before
        any frame, naming the section) and reset.

        The GL context itself is made on the first ``render``, in the thread that renders: a GL
        context is current in one thread, and the export renders in a worker thread."""
        self.close()
        self._ctx = ctx
        paths = []
        for i, sec in enumerate(ctx.sections):
            if not sec.look:
                paths.append(self.look_path)
                continue
            try:
                path = resolve_look(sec.look)
            except RenderError as e:
                raise RenderError(f"section {i + 1} ({sec.name or 'unnamed'}): {e}") from None
            if path not in self._shaders:
                self._shaders[path] = load_isf(path)
            paths.append(path)
        self._section_paths = tuple(paths)
        gl = create_gl_context()
        try:
            for path in dict.fromkeys([self.look_path, *paths]):
                compile_program(gl, self._shaders[path]).release()
        finally:
            gl.release()

    def _setup_gl(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        gl = self._gl = create_gl_context()
        self._thread = threading.get_ident()
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self._vbo = gl.buffer(quad.tobytes())
        self._runs: dict[Path, LookRun] = {}
        self._composite: dict = {}  # (mode, punch) -> program: compiled on the first use
        self._out_tex = gl.texture((ctx.width, ctx.height), 4)
        self._out = gl.framebuffer(color_attachments=[self._out_tex])
        self._melt = None  # [front tex, back tex, front fbo, back fbo], made on the first melt
        self._melt_section: int | None = None
        self._last_tex = None  # the texture that holds the last frame's picture
        self._last_frame: int | None = None
        self._travel: list[tuple[int, float]] = []  # (frame, travel) of the last frames: the hit envelope
        self._yuv = None  # the yuv420p conversion pass, made on the first render_yuv420p
        self._gil_free = gil_free_readback()  # asked here: the context is current in this thread
        renderer = str(gl.info.get("GL_RENDERER", "")).lower()
        self._software_gl = any(name in renderer for name in ("llvmpipe", "softpipe", "swiftshader"))

    def _run(self, path: Path) -> LookRun:
        run = self._runs.get(path)
        if run is None:
            shader = self._shaders[path]
            run = self._runs[path] = LookRun(self._gl, self._ctx, self._vbo, shader, images=self.images,
                                             audio_inputs=self.audio_inputs, base_hue=self.base_hue,
                                             defaults=song_variation(shader, self.variation_seed))
        return run

    # -- state hand-over (segment exports: bridge.export.segments) ------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """A copy of all that carries from one frame to the next: the hit envelope's history, the
        last picture (a melt starts from it), the melt's buffer, and the feedback buffers (front
        textures) of the looks drawn on the last frame (any other look starts from clear buffers
        when it is drawn next). Call it in the thread that renders."""
        state: dict[str, np.ndarray] = {}
        if self._gl is None:  # nothing drawn yet
            return {"travel": np.zeros((0, 2)), "frames": np.array([-1, -1], dtype=np.int64)}
        self._ensure_gl()
        ctx = self._ctx
        last = -1 if self._last_frame is None else int(self._last_frame)
        state["travel"] = np.array(self._travel, dtype=np.float64).reshape(-1, 2)
        state["frames"] = np.array([last, -1 if self._melt_section is None else int(self._melt_section)],
                                   dtype=np.int64)
        if self._last_tex is not None:
            state["last"] = _texture_array(self._last_tex)
        if self._melt is not None and self._melt_section is not None:
            state["melt"] = _texture_array(self._melt[0])
        paths = [path for path, run in self._runs.items() if run.last_frame is not None and run.last_frame == last]
        state["looks"] = np.array([str(p) for p in paths])
        for i, path in enumerate(paths):
            for name, entry in self._runs[path].targets.items():
                state[f"look{i}:{name}"] = _texture_array(entry[0])
        assert ctx is not None
        return state

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from a state :meth:`get_state` returned (an engine started with the same
        context), in the thread that will render."""
        if self._ctx is None:
            raise RenderError("ShaderEngine.set_state was called before start(ctx); call start first")
        self._ensure_gl()
        try:
            last, melt_section = (int(v) for v in np.asarray(state["frames"]))
            travel = np.asarray(state["travel"], dtype=np.float64).reshape(-1, 2)
            looks = [Path(str(p)) for p in np.asarray(state.get("looks", np.array([], dtype=str))).tolist()]
        except (KeyError, ValueError, TypeError) as err:
            raise RenderError(f"shader engine state is incomplete or malformed ({err}); it must come from "
                              "ShaderEngine.get_state") from None
        for run in self._runs.values():
            run.last_frame = None  # cleared before it is drawn next
        self._travel = [(int(f), float(t)) for f, t in travel]
        self._last_frame = None if last < 0 else last
        self._melt_section = None if melt_section < 0 else melt_section
        self._last_tex = None
        if "last" in state:
            _write_texture(self._out_tex, state["last"], "the last picture")
            self._last_tex = self._out_tex
        if "melt" in state:
            melt = self._melt_buffers()
            _write_texture(melt[0], state["melt"], "the melt buffer")
        for i, path in enumerate(looks):
            if path not in self._shaders:
                raise RenderError(f"shader engine state has look {path}, which this render does not draw")
            run = self._run(path)
            run.last_frame = self._last_frame
            for name, entry in run.targets.items():
                _write_texture(entry[0], state[f"look{i}:{name}"], f"look {path.stem}'s buffer {name!r}")

    def close(self) -> None:
        if self._gl is not None:
            self._gl.release()
        self._gl = None
        self._thread = None

    # -- the frame ---------------------------------------------------------------------------
    def _path(self, section_index: int) -> Path:
        if 0 <= section_index < len(self._section_paths):
            return self._section_paths[section_index]
        return self.look_path

    def _hit_envelope(self, frame_index: int, params: Mapping[str, float]) -> float:
        """How hard the picture is being hit now, 0…1: the strongest recent step of ``travel``
        (HIT_TRAVEL_STEP = 1), tapered to 0 over HIT_WINDOW_S. Needs the frames before (a render
        from the song start or a segment's pre-roll has them); a jump starts over."""
        travel = float(params.get("travel", 0.0))
        travel = travel if math.isfinite(travel) else 0.0
        hist = self._travel
        if hist and hist[-1][0] != frame_index - 1:
            hist.clear()
        hist.append((frame_index, travel))
        window = max(1, math.ceil(HIT_WINDOW_S * float(self._ctx.fps)))
        del hist[:-(window + 1)]
        env = 0.0
        for j in range(1, len(hist)):
            age = len(hist) - 1 - j  # frames since that step
            # travel is a phase wrapped to [0, 1) (integrate_rate): 0.95 -> 0.07 is a step of 0.12
            moved = (hist[j][1] - hist[j - 1][1] + 0.5) % 1.0 - 0.5
            step = min(1.0, max(0.0, moved / HIT_TRAVEL_STEP))
            env = max(env, step * (1.0 - age / window) ** 2)
        return env

    def _composite_pass(self, mode: int, *, a=None, b=None, progress: float = 1.0, punch: float = 0.0,
                        fbo=None) -> None:
        gl = self._gl
        ctx = self._ctx
        key = (mode, punch > 0.0)
        if key not in self._composite:
            source = f"#version 330\n#define MODE {mode}\n#define PUNCH {int(punch > 0.0)}\n{_COMPOSITE_SHADER}"
            program = gl.program(vertex_shader=VERTEX_SHADER, fragment_shader=source)
            self._composite[key] = (program, gl.vertex_array(program, [(self._vbo, "2f", "in_position")]))
        program, vao = self._composite[key]
        if a is not None:
            a.use(location=0)
        if b is not None:
            b.use(location=1)
        for name, value in (("tex_a", 0), ("tex_b", 1), ("progress", float(progress)),
                            ("punch", float(punch)), ("dt", 1.0 / float(ctx.fps))):
            if name in program:
                program[name].value = value
        (fbo or self._out).use()
        gl.viewport = (0, 0, ctx.width, ctx.height)
        vao.render(5)

    def _melt_buffers(self) -> list:
        if self._melt is None:
            gl, ctx = self._gl, self._ctx
            texs = [gl.texture((ctx.width, ctx.height), 4, dtype="f2") for _ in range(2)]  # alpha fades finely
            for t in texs:
                t.repeat_x = t.repeat_y = False
            self._melt = [texs[0], texs[1], *(gl.framebuffer(color_attachments=[t]) for t in texs)]
        return self._melt

    def render(self, frame_index: int, params: Mapping[str, float], section_index: int,
               section_mix: float) -> np.ndarray:
        import cv2

        ctx = self._ctx
        out, _tex = self._draw_frame(frame_index, params, section_index, section_mix)
        # RGBA, then RGB on the CPU: llvmpipe reads RGBA8 as a copy and RGB through a slow
        # per-pixel conversion (720p: 0.1 ms + 0.2 ms here, against 1.0 ms + a 0.1 ms flip)
        rgba = read_framebuffer(out, ctx.width, ctx.height, 4, gil_free=self._gil_free)
        return cv2.flip(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), 0)  # GL's rows start at the bottom

    def advance(self, frame_index: int, params: Mapping[str, float], section_index: int,
                section_mix: float) -> None:
        """Draw frame ``frame_index`` as :meth:`render` does (feedback and transitions move on the
        same) without reading the picture back: a pre-roll frame, which the export throws away."""
        self._draw_frame(frame_index, params, section_index, section_mix)

    def render_yuv420p(self, frame_index: int, params: Mapping[str, float], section_index: int,
                       section_mix: float) -> np.ndarray | None:
        """The frame :meth:`render` gives, as the planes of a yuv420p video frame (BT.709 limited
        range, as :func:`bridge.export.video.rgb_to_yuv420p` converts on the CPU, within ±1 code
        value): uint8 (height × 3 / 2, width), converted by a shader pass before the read-back
        (half the bytes to read, no CPU conversion). None, without drawing anything, for sizes the
        pass cannot pack (:func:`bridge.visuals.readback.yuv420_supported`) and where the pass does
        not pay (:attr:`yuv_on_gpu`): call :meth:`render` then."""
        ctx = self._ctx
        if ctx is not None and not yuv420_supported(ctx.width, ctx.height):
            return None
        self._ensure_gl()
        if not (not self._software_gl if self.yuv_on_gpu is None else self.yuv_on_gpu):
            return None  # nothing drawn: the caller renders the frame with render()
        _out, tex = self._draw_frame(frame_index, params, section_index, section_mix)
        gl = self._gl
        if self._yuv is None:
            target = gl.texture((ctx.width // 4, ctx.height * 3 // 2), 4)
            self._yuv = (yuv420_programs(gl, self._vbo, VERTEX_SHADER, ctx.width, ctx.height),
                         gl.framebuffer(color_attachments=[target]))
        programs, fbo = self._yuv
        draw_yuv420(gl, programs, fbo, tex, ctx.width, ctx.height)
        planes = read_framebuffer(fbo, ctx.width // 4, ctx.height * 3 // 2, 4, gil_free=self._gil_free)
        return planes.reshape(ctx.height * 3 // 2, ctx.width)

    def _ensure_gl(self) -> None:
        if self._ctx is None:
            raise RenderError("ShaderEngine.render was called before start(ctx); call start first")
        if self._gl is None or self._thread != threading.get_ident():
            # First frame, or frames now come from another thread: the context (and the feedback
            # buffers) belong to the thread that renders.
            self.close()
            self._setup_gl()
        # Current in this thread for this frame: a thread holds one current context, and another
        # engine drawing in the same thread (a look browser, a test) makes its own current; then
        # this engine's GL names would land in that one's context (seen: a crossfade's old look
        # drawn with the other engine's objects). Not undone after the frame (cheap to repeat).
        self._gl.__enter__()

    def _draw_frame(self, frame_index: int, params: Mapping[str, float], section_index: int,
                    section_mix: float):
        """Draw frame ``frame_index``: (the framebuffer, the texture) that hold its picture."""
        ctx = self._ctx
        self._ensure_gl()
        mix = float(section_mix) if math.isfinite(section_mix) else 1.0
        sections = ctx.sections
        sec = sections[section_index] if 0 <= section_index < len(sections) else None
        prev = sections[section_index - 1] if sec is not None and section_index > 0 else None
        transition = "cut"
        if prev is not None and mix < 1.0 and sec.transition_seconds > 0:
            transition = sec.transition
        hit = 1.0 if sec is None else float(sec.hit)
        if transition != "cut":
            hit = float(prev.hit) + (hit - float(prev.hit)) * mix
        if hit != 1.0:
            params = dict(params)
            for name in HIT_PARAMETERS:
                spec = PARAMETERS[name]
                v = float(params.get(name, spec.neutral))
                params[name] = min(spec.maximum, max(spec.minimum, v * hit))
        punch = PUNCH_ZOOM * max(0.0, hit - 1.0) * self._hit_envelope(frame_index, params)
        consecutive = self._last_frame == frame_index - 1
        path = self._path(section_index)
        run = self._run(path)
        if transition == "crossfade" and self._path(section_index - 1) != path:
            old = self._run(self._path(section_index - 1))
            old.draw(frame_index, params, section_index - 1, 1.0)
            run.draw(frame_index, params, section_index, mix)
            self._composite_pass(1, a=old.out_tex, b=run.out_tex, progress=mix, punch=punch)
            out = self._out
        elif transition == "melt":
            melt = self._melt_buffers()
            if self._melt_section != section_index or not consecutive:
                # the melt starts from the picture before it (drawn now when there is none)
                source = self._last_tex if consecutive else None
                if source is None:
                    old = self._run(self._path(section_index - 1))
                    old.draw(frame_index, params, section_index - 1, 1.0)
                    source = old.out_tex
                self._composite_pass(4, b=source, fbo=melt[2])
                self._melt_section = section_index
            run.draw(frame_index, params, section_index, mix)
            self._composite_pass(2, a=melt[0], progress=mix, fbo=melt[3])  # the drip step
            melt[0], melt[1], melt[2], melt[3] = melt[1], melt[0], melt[3], melt[2]
            self._composite_pass(3, a=melt[0], b=run.out_tex, progress=mix, punch=punch)
            out = self._out
        else:
            run.draw(frame_index, params, section_index, mix)
            out, out_tex = run.out, run.out_tex
            if punch > 0.0:
                self._composite_pass(0, b=run.out_tex, punch=punch)
                out = self._out
        if out is self._out:
            out_tex = self._out_tex
        if transition != "melt":
            self._melt_section = None
        self._last_tex = out_tex
        self._last_frame = frame_index
        return out, out_tex


def state_memory_frames(ctx: RenderContext, look: str | None, section_index: np.ndarray, section_mix: np.ndarray,
                        *, limit: int) -> int:
    """Frames a fresh engine (``look``: the engine's look, for sections without their own) must draw
    before a cut to end in the state a render from the song start has there, bit for bit.
    ``section_index`` / ``section_mix``: the frames before the cut, oldest first (the last one is the
    frame just before it); ``limit`` when they are not enough (the whole history is needed).

    A look's feedback buffers are cleared when it is drawn after a frame it was not drawn on, so
    what matters is each look whose state reaches the cut (the ones drawn on the frame before it,
    and the old look of a melt in progress: its last picture is what melts), back to the start of
    its run of frames or, sooner, to its memory (:func:`bridge.visuals.shader_looks.look_memory_seconds`:
    0 for a look without feedback, None for one that never forgets bit for bit, as a float buffer
    that fades by a factor does not), plus the hit envelope's frames (HIT_WINDOW_S) before that."""
    n = min(len(section_index), len(section_mix))
    fps = float(ctx.fps)
    hit_frames = math.ceil(HIT_WINDOW_S * fps) + 1
    sections = ctx.sections
    paths: dict[int, Path] = {}
    memory: dict[Path, int | None] = {}

    def path_of(i: int) -> Path:
        if i not in paths:
            name = sections[i].look if 0 <= i < len(sections) and sections[i].look else look
            paths[i] = resolve_look(name)
        return paths[i]

    def memory_of(path: Path) -> int | None:
        if path not in memory:
            seconds = look_memory_seconds(path)
            memory[path] = None if seconds is None else math.ceil(seconds * fps)
        return memory[path]

    def drawn(k: int) -> set[Path]:
        """The looks whose state frame k (0 … n − 1) carries on: its look, and during a transition
        the old one (a crossfade draws it; a melt holds its last picture in the melt buffer)."""
        i, mix = int(section_index[k]), float(section_mix[k])
        out = {path_of(i)}
        if 0 < i < len(sections) and mix < 1.0 and sections[i].transition_seconds > 0 \
                and sections[i].transition in ("crossfade", "melt"):
            out.add(path_of(i - 1))
        return out

    if n == 0:
        return 0
    need = 0
    for path in drawn(n - 1):
        mem = memory_of(path)
        if mem == 0:
            continue
        k = n - 1
        while k > 0 and path in drawn(k - 1) and (mem is None or n - k < mem):
            k -= 1
        if k == 0 and path in drawn(0) and (mem is None or n < mem):
            return limit  # its state goes back further than the frames given
        need = max(need, n - k)
    return min(limit, need + hit_frames)


_TEXTURE_DTYPES = {"f1": np.uint8, "f2": np.float16, "f4": np.float32}


def _texture_array(tex) -> np.ndarray:
    """A texture's content as an array (height, width, components) of its own type, bit for bit."""
    w, h = tex.size
    return np.frombuffer(tex.read(), dtype=_TEXTURE_DTYPES[tex.dtype]).reshape(h, w, tex.components).copy()


def _write_texture(tex, data: np.ndarray, what: str) -> None:
    want = (tex.size[1], tex.size[0], tex.components)
    arr = np.asarray(data)
    if arr.shape != want or arr.dtype != _TEXTURE_DTYPES[tex.dtype]:
        raise RenderError(f"shader engine state: {what} is {arr.dtype} {arr.shape}, this render needs "
                          f"{np.dtype(_TEXTURE_DTYPES[tex.dtype])} {want} (a state from another size or look)")
    tex.write(np.ascontiguousarray(arr).tobytes())
