"""The LCM engine: few-step latent-consistency diffusion frames, chained img2img, driven by stems.

Diffusers style: the engine *is* a small pipeline wired from diffusers
parts (UNet, VAE / AutoencoderTiny, CLIP text encoder, LCM or Euler-ancestral scheduler) loaded
through a diffusers pipeline class, with its own loop so it can blend conditioning and noise per
frame, batch keyframes, swap decoders and cancel inside a frame. torch and diffusers are imported
inside functions only: ``import bridge.visuals.lcm`` imports neither. This module is the frame
chain (warp, encode, denoise, decode, post); what frames are conditioned on (prompt embeddings and
noise per section) is :mod:`bridge.visuals.lcm_conditioning`; the model families, loading and the
warm model copies live in :mod:`bridge.visuals.lcm_models`.

Models (see :mod:`bridge.visuals.models` for where they come from):

* **lcm**: an LCM-distilled checkpoint whose UNet has a guidance embedding (``time_cond_proj_dim``),
  e.g. ``SimianLuo/LCM_Dreamshaper_v7``; guidance goes into that embedding (default 8), no CFG.
* **lcm-lora**: a Stable Diffusion 1.5 checkpoint + the LCM-LoRA (``BASE+LORA`` or ``lora=``),
  fused into the UNet once at load; LCMScheduler; guidance 1 (CFG only above 1).
* **turbo**: sd-turbo: Euler-ancestral with trailing timesteps, guidance 0, 1–2 steps.

Each frame (``render``), at a working resolution (export: the output size; preview: 384 px on the
long side), then resized to the output size:

1. the previous frame (the *chain*) is warped by the frame's zoom / rotation / translate with
   :func:`bridge.visuals.procedural.warp_feedback` — the same feedback the procedural engine uses;
2. it is encoded, noised and denoised with ``strength = base_strength + params["strength"]``
   (clipped to [0, 1]); strength 0 (or too little for one LCM step) returns the warped frame as is;
3. keyframes (every ``keyframe_every_beats`` at ``tempo_bpm``) use at least ``keyframe_strength``
   so the errors of chained img2img (blur, colour drift) are re-anchored instead of accumulating; the
   first frame of a run and every hard cut between sections are fresh text-to-image frames;
4. conditioning (:mod:`bridge.visuals.lcm_conditioning`): every section prompt is encoded once
   (cached per model); during a section's transition the text embeddings *and* the initial noise
   are slerped from the previous section by ``section_mix``; ``prompt_mix`` slerps toward the next
   section's prompt;
5. noise is drawn from CPU generators seeded by (run seed, section seed, frame index), so a
   project renders the same video on every run and device. Most of it is a fixed per-section noise
   (``noise_jitter`` sets the per-frame share): fixed noise keeps consecutive img2img frames from
   "boiling" (the StreamDiffusion observation), the per-frame part keeps textures alive;
6. post: hue / saturation / brightness / flash on the displayed frame only (the chain stays clean,
   so a kick's white flash does not get fed back into the next img2img step).

Modes: ``export`` renders every frame with ``steps`` and the full VAE; ``preview`` renders only
keyframes with ``preview_steps`` and the tiny autoencoder (TAESD) when one is available, and makes
the in-between frames by warping the previous frame. Independent frames (keyframes near the
playhead) go through :meth:`LCMEngine.render_batch`, which puts frames sharing a timestep schedule
into one UNet call.

Cancellation: :meth:`LCMEngine.cancel` or a :class:`~bridge.jobs.CancelToken` (``cancel=``) is checked
before every frame and after every denoising step (diffusers' LCM pipelines have no interrupt flag,
which is one reason this loop is our own), so a cancelled frame stops within one UNet call.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from bridge.errors import Cancelled, RenderError
from bridge.jobs import CancelToken
from bridge.mapping.params import PARAMETERS
from bridge.visuals.base import RenderContext
from bridge.visuals.lcm_conditioning import SectionConditioning
from bridge.visuals.lcm_models import (
    FAMILIES,
    LCM_ORIGINAL_STEPS,
    Family,
    LoadedModel,
    _import_diffusers,
    load_model,
    load_tiny_vae,
    original_steps,
    pick_family,
    prepare_pipeline,
)
from bridge.visuals.models import (
    DEFAULT_MODEL,
    DEFAULT_TINY_VAE,
    ModelNotAvailable,
    choose_device,
    pipeline_info,
    resolve_model,
    split_model_spec,
)
from bridge.visuals.procedural import flash_affine, post_colour_matrix, warp_feedback

log = logging.getLogger(__name__)

#: Guidance when the user sets none: LCM embeds w (Dreamshaper-LCM is tuned for ~8); the LCM-LoRA
#: and sd-turbo are distilled without classifier-free guidance (1.0 / 0.0 = none).
DEFAULT_GUIDANCE: dict[str, float] = {"lcm": 8.0, "lcm-lora": 1.0, "turbo": 0.0}
#: Mapped ``strength`` at or above which a frame is a keyframe (re-anchored) when keyframes are
#: given on the beat grid: the default preset maps drum hits to strength, so hits re-imagine.
HIT_KEYFRAME_STRENGTH = 0.25


# --- pure helpers (no torch) ---------------------------------------------------------------------

def img2img_plan(family: str, *, steps: int, strength: float,
                 original_steps: int = LCM_ORIGINAL_STEPS) -> tuple[int, tuple[int, int]]:
    """How an img2img frame at ``strength`` runs: (UNet evaluations, schedule key).

    LCM (LCMScheduler.set_timesteps): the schedule is ``steps`` timesteps picked from the first
    ``int(original_steps · strength)`` of the distillation schedule, so it needs
    ``original_steps · strength ≥ 1`` and runs ``min(steps, int(original_steps · strength))``
    evaluations; 0 means the strength is too low for a single step (the frame is the warped input).
    Euler (turbo): img2img runs ``int(n · strength)`` of ``n`` steps, so ``n · strength ≥ 1`` is
    required: ``n`` is raised to ``ceil(1 / strength)`` (≤ ``original_steps``) when ``steps`` is too
    few, which gives one step at the right noise level instead of none.
    Frames with equal keys share timesteps, hence can share a UNet call.
    """
    strength = float(min(1.0, max(0.0, strength)))
    if family == "turbo":
        if strength <= 0.0:
            return 0, (0, 0)
        n_total = steps if steps * strength >= 1.0 else min(original_steps, math.ceil(1.0 / strength - 1e-9))
        run = min(int(n_total * strength + 1e-9), n_total)
        return run, (n_total, run)
    origin = int(original_steps * strength + 1e-9)
    run = min(steps, origin)
    return run, (run, origin)


def keyframe_interval(*, every_beats: float, tempo_bpm: float, fps: float) -> int:
    """Frames between keyframes: ``every_beats`` beats at ``tempo_bpm``, at least 1."""
    return max(1, int(round(every_beats * 60.0 / tempo_bpm * fps)))


def working_size(width: int, height: int, *, long_side: int | None, multiple: int) -> tuple[int, int]:
    """The size the model works at: ``long_side`` on the longer edge (never above the output size;
    None = the output size), both edges rounded to ``multiple`` (the VAE's downsampling factor)."""
    scale = 1.0 if long_side is None else min(1.0, long_side / max(width, height))
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h


def _clip_params(params: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for name, spec in PARAMETERS.items():
        v = float(params.get(name, spec.neutral))
        out[name] = min(spec.maximum, max(spec.minimum, v)) if math.isfinite(v) else spec.neutral
    return out


# --- frames --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameJob:
    """One independent frame for :meth:`LCMEngine.render_batch`.

    init_rgb: uint8 (h, w, 3) image to start from (img2img; resized to the working size if needed),
        None for a text-to-image frame.
    strength: denoising strength; None = ``base_strength + params["strength"]`` (1.0 without init).
    """

    frame_index: int
    params: Mapping[str, float] = field(default_factory=dict)
    section_index: int = -1
    section_mix: float = 1.0
    init_rgb: np.ndarray | None = None
    strength: float | None = None


@dataclass
class _Work:
    job: FrameJob
    params: dict[str, float]
    init: np.ndarray | None
    strength: float
    evaluations: int = 0
    schedule: tuple[int, int] = (0, 0)


StepCallback = Callable[[Any, int, Any, dict], "dict | None"]


class LCMEngine:
    """Few-step diffusion engine (see the module docstring). Settings (keyword-only):

    model: Hugging Face id or local diffusers folder, or ``BASE+LORA``. Required.
    steps / preview_steps: denoising steps per model frame in export / preview (LCMs: at most the
        50 steps of their distillation schedule; 2–4 is their sweet spot).
    base_strength: img2img strength every frame starts from; ``params["strength"]`` is added.
    guidance_scale: None = the family default (lcm 8, lcm-lora 1, turbo 0).
    keyframe_every_beats, tempo_bpm: keyframe spacing (``keyframe_every_frames`` overrides).
    keyframe_strength: minimum strength at keyframes (re-anchoring).
    noise_jitter: share of per-frame noise (0 = one fixed noise per section, 1 = new noise each frame).
    lora: a LoRA id/path (same as ``model="BASE+LORA"``). family: "auto", "lcm", "lcm-lora", "turbo".
    tiny_vae: id/path of an AutoencoderTiny for preview; None = ``madebyollin/taesd`` if it is
        downloaded (else the full VAE); False = never.
    device / dtype: override the automatic choice (cuda fp16 → mps fp16 → cpu fp32).
    preview_long_side / export_long_side: working resolution (None = output size).
    max_batch: frames per UNet call in :meth:`render_batch`.
    cancel: a CancelToken checked per frame and per step; callback_on_step_end:
        ``f(engine, step_index, timestep, {"latents", "denoised", "prompt_embeds"}) -> dict | None``
        (a returned "latents" replaces them, as in diffusers).
    cache_dir: Hugging Face cache to look in (default: the standard one).
    name, seed: the project's shared engine settings; the run seed comes from RenderContext.seed.
    """

    name = "lcm"

    def __init__(
        self, *, model: str | None = None, steps: int = 4, preview_steps: int = 1, base_strength: float = 0.35,
        guidance_scale: float | None = None, keyframe_every_beats: float = 1.0, seed: int | None = None,
        name: str | None = None, lora: str | None = None, family: str = "auto",
        tiny_vae: str | bool | None = None, device: str | None = None, dtype: str | None = None,
        tempo_bpm: float = 120.0, keyframe_every_frames: int | None = None, keyframe_strength: float = 0.6,
        noise_jitter: float = 0.3, preview_long_side: int = 384, export_long_side: int | None = None,
        max_batch: int = 4, cancel: CancelToken | None = None, callback_on_step_end: StepCallback | None = None,
        cache_dir: str | None = None, pipe: Any = None, keyframes: Sequence[int] | None = None,
        look: str | None = None, images: Any = None, audio_inputs: Any = None,
        hit_keyframe_strength: float = HIT_KEYFRAME_STRENGTH,
    ) -> None:
        del seed, name, look, images, audio_inputs  # shared project settings (the run seed is RenderContext.seed)
        if not model and pipe is None:
            raise RenderError(
                "the lcm engine needs a model: set engine.model in the project or pass --model ID_OR_PATH, "
                f"e.g. --model {DEFAULT_MODEL} (download it once with: stembridge models pull {DEFAULT_MODEL})")
        for label, v, lo, hi in (("steps", steps, 1, 100), ("preview_steps", preview_steps, 1, 100),
                                 ("max_batch", max_batch, 1, 64)):
            if not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise RenderError(f"{label} {v!r} must be an integer from {lo} to {hi}")
        for label, v in (("base_strength", base_strength), ("keyframe_strength", keyframe_strength),
                         ("noise_jitter", noise_jitter)):
            if not 0.0 <= float(v) <= 1.0:
                raise RenderError(f"{label} {v!r} must be between 0 and 1")
        if guidance_scale is not None and not 0.0 <= guidance_scale <= 20.0:
            raise RenderError(f"guidance_scale {guidance_scale!r} must be between 0 and 20 (or unset for the model's default)")
        if not 20.0 <= tempo_bpm <= 400.0:
            raise RenderError(f"tempo_bpm {tempo_bpm!r} must be between 20 and 400")
        if keyframe_every_beats <= 0 or (keyframe_every_frames is not None and keyframe_every_frames < 1):
            raise RenderError("keyframe_every_beats must be > 0 and keyframe_every_frames >= 1")
        if preview_long_side < 64 or (export_long_side is not None and export_long_side < 64):
            raise RenderError("preview_long_side / export_long_side must be at least 64 pixels")
        if family not in FAMILIES:
            raise RenderError(f"family {family!r} is unknown; use one of {', '.join(FAMILIES)}")

        self._pipe = pipe
        self._scheduler: Any = None  # this engine's own copy of the model's scheduler (start())
        self._tiny_path = None
        self._tiny_given = None
        self._model_path = self._lora_path = None
        if pipe is not None:
            self.model = model or type(pipe).__name__
            unet = pipe.unet.config
            info = {"class_name": type(pipe).__name__, "time_cond_proj_dim": unet.time_cond_proj_dim,
                    "addition_embed_type": unet.addition_embed_type}
            self.family: Family = pick_family(family, info, base=self.model, has_lora=False)
            steps_cap = int(getattr(pipe.scheduler.config, "original_inference_steps", None) or LCM_ORIGINAL_STEPS)
            if tiny_vae is not None and not isinstance(tiny_vae, (str, bool)):
                self._tiny_given = tiny_vae  # an AutoencoderTiny object
        else:
            base, spec_lora = split_model_spec(model)
            lora = lora or spec_lora
            self.model = model
            self._model_path = resolve_model(base, role="pipeline", cache_dir=cache_dir)
            self._lora_path = resolve_model(lora, role="lora", cache_dir=cache_dir) if lora else None
            info = pipeline_info(self._model_path)
            self.family = pick_family(family, info, base=base, has_lora=self._lora_path is not None)
            steps_cap = original_steps(self._model_path)
        for label, v in (("steps", steps), ("preview_steps", preview_steps)):
            if self.family != "turbo" and v > steps_cap:
                raise RenderError(f"{label} {v} is more than the {steps_cap} steps this LCM was distilled on; "
                                  f"use 1–8 (LCM's sweet spot is 2–4)")
        if tiny_vae is not False and self._tiny_given is None:
            try:
                self._tiny_path = resolve_model(tiny_vae or DEFAULT_TINY_VAE, role="tiny_vae", cache_dir=cache_dir)
            except ModelNotAvailable:
                if tiny_vae:  # asked for by name: say so; the default is optional
                    raise
                log.info("tiny autoencoder %s is not downloaded; preview decodes with the full VAE", DEFAULT_TINY_VAE)
        self.steps, self.preview_steps = int(steps), int(preview_steps)
        self.base_strength, self.keyframe_strength = float(base_strength), float(keyframe_strength)
        self.guidance_scale = DEFAULT_GUIDANCE[self.family] if guidance_scale is None else float(guidance_scale)
        self.keyframe_every_beats, self.tempo_bpm = float(keyframe_every_beats), float(tempo_bpm)
        self.keyframe_every_frames = keyframe_every_frames
        # Keyframes on the beat grid (frame indices, e.g. bridge.mapping.sections.keyframe_frames)
        # rather than every N frames: a constant N drifts off the beats of any song whose tempo is
        # not a divisor of the frame rate. A frame whose mapped strength reaches
        # ``hit_keyframe_strength`` (a drum hit, in the default preset) re-anchors too.
        self.keyframes = None if keyframes is None else frozenset(int(k) for k in keyframes)
        self.hit_keyframe_strength = float(hit_keyframe_strength)
        self.noise_jitter = float(noise_jitter)
        self.preview_long_side, self.export_long_side = int(preview_long_side), export_long_side
        self.max_batch = int(max_batch)
        self._device_pref, self._dtype_pref = device, dtype
        self._token = cancel
        self._cancel_event = threading.Event()
        self._callback = callback_on_step_end
        self._ctx: RenderContext | None = None
        self._model: LoadedModel | None = None
        self._cond: SectionConditioning | None = None

    @classmethod
    def from_pipe(cls, pipe: Any, **settings: Any) -> LCMEngine:
        """An engine around a diffusers pipeline already in memory (any SD 1.x/2.x-class pipeline:
        LatentConsistencyModelPipeline, StableDiffusionPipeline with a fused LCM-LoRA…), kept on its
        device and dtype. ``tiny_vae`` may be an AutoencoderTiny object. Benchmarks and notebooks."""
        return cls(pipe=pipe, **settings)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, ctx: RenderContext) -> None:
        """Load the model (once per worker), encode the section prompts, reset the chain."""
        if ctx.width < 16 or ctx.height < 16:
            raise RenderError(f"frame size {ctx.width}×{ctx.height} is too small; use at least 16×16")
        _import_diffusers()
        preview = ctx.mode == "preview"
        if self._pipe is not None:
            if self._model is None:
                self._model = prepare_pipeline(self._pipe, family=self.family)
            m = self._model
            tiny = self._tiny_given
            if tiny is None and self._tiny_path is not None and preview:
                tiny = load_tiny_vae(str(self._tiny_path), device=str(m.device), dtype=str(m.dtype).split(".")[-1])
            self._tiny = tiny if preview else None
        else:
            device, dtype = choose_device(device=self._device_pref, dtype=self._dtype_pref)
            self._model = m = load_model(str(self._model_path), family=self.family, device=device, dtype=dtype,
                                         lora_path=str(self._lora_path) if self._lora_path else None)
            self._tiny = (load_tiny_vae(str(self._tiny_path), device=device, dtype=dtype)
                          if preview and self._tiny_path is not None else None)
        if self._tiny is not None:
            tiny_scale = 2 ** (len(self._tiny.config.encoder_block_out_channels) - 1)
            if tiny_scale != m.vae_scale_factor or self._tiny.config.latent_channels != m.latent_channels:
                raise RenderError(f"the tiny autoencoder {self._tiny_path or 'given'} does not match the model's "
                                  f"latents (×{tiny_scale} vs ×{m.vae_scale_factor}); use {DEFAULT_TINY_VAE} for SD 1.x/2.x")
        # The loaded model is shared by every engine in the process (the preview's and an export's,
        # each on its own thread), but a scheduler is mutable (set_timesteps, its step index): each
        # engine steps its own copy, or two renders interleaving would corrupt each other's schedule.
        self._scheduler = type(m.pipe.scheduler).from_config(m.pipe.scheduler.config)
        self._ctx = ctx
        self._preview = preview
        self._run_steps = self.preview_steps if preview else self.steps
        long_side = self.preview_long_side if preview else self.export_long_side
        self._size = working_size(ctx.width, ctx.height, long_side=long_side, multiple=m.vae_scale_factor)
        w, h = self._size
        # Sampling grid for warp_feedback, built once per run (rebuilding it costs more than the warp).
        self._grid = (np.arange(w, dtype=np.float32)[None, :].repeat(h, 0),
                      np.arange(h, dtype=np.float32)[:, None].repeat(w, 1))
        self._key_every = self.keyframe_every_frames or keyframe_interval(
            every_beats=self.keyframe_every_beats, tempo_bpm=self.tempo_bpm, fps=float(ctx.fps))
        self._cfg = m.cond_dim is None and self.guidance_scale > 1.0
        self._chain: np.ndarray | None = None
        self._last_section: int | None = None
        self._cancel_event.clear()
        f = m.vae_scale_factor
        self._cond = SectionConditioning(m, ctx.sections, run_seed=ctx.seed, cfg=self._cfg,
                                         latent_shape=(1, m.latent_channels, h // f, w // f),
                                         noise_jitter=self.noise_jitter)
        self._w_embedding = None
        import torch

        with torch.inference_mode():
            if m.cond_dim is not None:
                w = torch.tensor([self.guidance_scale - 1.0])
                self._w_embedding = m.pipe.get_guidance_scale_embedding(w, embedding_dim=m.cond_dim).to(
                    device=m.device, dtype=m.dtype)
            for i in range(-1, len(ctx.sections)):
                self._cond.embeddings(i)  # every prompt encoded now, not on its section's first frame

    def resume_from(self, frame_rgb: np.ndarray, *, section_index: int) -> None:
        """Continue the img2img chain from a frame rendered earlier (uint8 (h, w, 3), e.g. the last
        frame an interrupted export wrote, or a cached preview frame), instead of starting with a
        text-to-image frame. ``section_index`` is the section that frame belongs to."""
        if self._ctx is None:
            raise RenderError("LCMEngine.resume_from was called before start(ctx); call start first")
        self._chain = self._fit(frame_rgb)
        self._last_section = section_index if 0 <= section_index < len(self._ctx.sections) else -1

    def close(self) -> None:
        """Free per-run buffers; the model stays warm for the next run."""
        self._chain = None
        if self._cond is not None:
            self._cond.forget_noise()

    def cancel(self) -> None:
        """Stop the current frame within one denoising step (thread-safe); the next ``start`` clears it."""
        self._cancel_event.set()

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (its unet / vae / text_encoder / scheduler), after ``start``."""
        if self._model is None:
            raise RenderError("LCMEngine.pipeline is loaded by start(ctx); call start first")
        return self._model.pipe

    @property
    def tiny_vae(self) -> Any | None:
        """The AutoencoderTiny used in this run (preview with a tiny autoencoder), else None."""
        return getattr(self, "_tiny", None)

    @property
    def keyframe_every(self) -> int:
        """Frames between keyframes in the current run."""
        return self._key_every

    @property
    def working_size(self) -> tuple[int, int]:
        """(width, height) the model renders at in the current run."""
        return self._size

    # -- conditioning (bridge.visuals.lcm_conditioning) -------------------------------------------
    def prompt_embedding(self, section_index: int, section_mix: float = 1.0, prompt_mix: float = 0.0) -> np.ndarray:
        """The text conditioning a frame gets, float32 (tokens, hidden) — for inspection and tests."""
        if self._model is None:
            raise RenderError("LCMEngine.prompt_embedding was called before start(ctx); call start first")
        pos, _ = self._cond.text(section_index, float(np.clip(section_mix, 0, 1)), float(np.clip(prompt_mix, 0, 1)))
        return pos[0].float().cpu().numpy()

    # -- the loop ----------------------------------------------------------------------------------
    def _cancelled(self) -> bool:
        return self._cancel_event.is_set() or (self._token is not None and self._token.cancelled)

    def _raise_if_cancelled(self) -> None:
        if self._cancelled():
            raise Cancelled("the LCM render")

    def _encode(self, images: np.ndarray):
        """uint8 (B, h, w, 3) → latents (B, C, h/f, w/f) in the scaled space both decoders read."""
        import torch

        m = self._model
        x = torch.from_numpy(images).to(m.device).permute(0, 3, 1, 2).to(m.dtype) / 127.5 - 1.0
        if self._tiny is not None:
            return self._tiny.encode(x, return_dict=False)[0] * self._tiny.config.scaling_factor
        vae = m.pipe.vae
        return vae.encode(x, return_dict=False)[0].mode() * vae.config.scaling_factor

    def _decode(self, latents) -> list[np.ndarray]:
        import torch

        if self._tiny is not None:
            img = self._tiny.decode(latents / self._tiny.config.scaling_factor, return_dict=False)[0]
        else:
            vae = self._model.pipe.vae
            img = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        img = ((img.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        arr = img.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(a) for a in arr]

    def _timesteps(self, work: _Work):
        m = self._model
        sched = self._scheduler
        if self.family == "turbo":
            n_total, run = work.schedule
            sched.set_timesteps(n_total, device=m.device)
            start = (n_total - run) * sched.order
            sched.set_begin_index(start)
            return sched.timesteps[start:]
        sched.set_timesteps(work.evaluations, device=m.device, original_inference_steps=m.original_steps,
                            strength=work.strength)
        return sched.timesteps

    def _denoise(self, group: list[_Work]) -> list[np.ndarray]:
        """One UNet batch: every item shares the timestep schedule."""
        import torch

        m = self._model
        pipe, sched = m.pipe, self._scheduler
        with torch.inference_mode():
            timesteps = self._timesteps(group[0])
            cond = self._cond
            noise = torch.cat([cond.noise(w.job.section_index, w.job.section_mix, w.job.frame_index)
                               for w in group]).to(m.device, m.dtype)
            conds = [cond.text(w.job.section_index, w.job.section_mix, w.params["prompt_mix"]) for w in group]
            pos = torch.cat([c[0] for c in conds])
            neg = torch.cat([c[1] for c in conds]) if self._cfg else None
            latents = noise * sched.init_noise_sigma
            with_init = [i for i, w in enumerate(group) if w.init is not None]
            if with_init:
                init = self._encode(np.stack([group[i].init for i in with_init]))
                t0 = timesteps[:1].repeat(len(with_init))
                latents[with_init] = sched.add_noise(init, noise[with_init], t0)
            gens = [cond.generator(cond.section_seed(w.job.section_index), w.job.frame_index, 1) for w in group]
            w_emb = self._w_embedding.repeat(len(group), 1) if self._w_embedding is not None else None
            hidden = torch.cat([neg, pos]) if self._cfg else pos
            denoised = latents
            for i, t in enumerate(timesteps):
                x = sched.scale_model_input(latents, t)
                if self._cfg:
                    x = torch.cat([x, x])
                pred = pipe.unet(x, t, encoder_hidden_states=hidden, timestep_cond=w_emb, return_dict=False)[0]
                if self._cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + self.guidance_scale * (cond - uncond)
                latents, denoised = sched.step(pred, t, latents, generator=gens, return_dict=False)
                if self.family == "turbo":
                    denoised = latents  # Euler's last prev_sample is the image; its x0 guess is noisier
                if self._callback is not None:
                    out = self._callback(self, i, t, {"latents": latents, "denoised": denoised, "prompt_embeds": pos})
                    if out and "latents" in out:
                        latents = out["latents"]
                self._raise_if_cancelled()
            return self._decode(denoised)

    def _run(self, work: list[_Work]) -> list[np.ndarray]:
        """Chain images (working size, uint8) for independent work items, batching shared schedules."""
        out: list[np.ndarray | None] = [None] * len(work)
        groups: dict[tuple, list[int]] = {}
        for i, w in enumerate(work):
            strength = 1.0 if w.init is None else w.strength
            w.strength = strength
            w.evaluations, w.schedule = img2img_plan(self.family, steps=self._run_steps, strength=strength,
                                                     original_steps=self._model.original_steps)
            if w.evaluations == 0:
                out[i] = w.init.copy()  # too little strength for one step: the warped frame itself
                continue
            groups.setdefault(w.schedule, []).append(i)
        for indices in groups.values():
            for k in range(0, len(indices), self.max_batch):
                chunk = indices[k:k + self.max_batch]
                for i, img in zip(chunk, self._denoise([work[i] for i in chunk]), strict=True):
                    out[i] = img
        return out  # type: ignore[return-value]

    def _finish(self, chain: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
        """Displayed frame: resize to the output size, then hue / saturation / brightness / flash."""
        ctx = self._ctx
        img = chain
        if (img.shape[1], img.shape[0]) != (ctx.width, ctx.height):
            shrink = img.shape[1] > ctx.width
            img = cv2.resize(img, (ctx.width, ctx.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        hue, sat, bright, flash = p["hue"], p["saturation"], p["brightness"], p["flash"]
        if hue or sat or bright:
            m = post_colour_matrix(hue=hue, saturation=sat, brightness=bright)
            img = cv2.transform(img, m.astype(np.float32))
        if flash > 0:
            alpha, beta = flash_affine(flash)
            img = cv2.convertScaleAbs(img, alpha=alpha, beta=beta)
        # Never hand out the chain buffer itself: a caller drawing on the frame would change the next one.
        return img.copy() if img is chain else np.ascontiguousarray(img)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise RenderError(f"init image must be uint8 (h, w, 3), got {image.dtype} {image.shape}")
        w, h = self._size
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    # -- the Engine interface ----------------------------------------------------------------------
    def render(self, frame_index: int, params: Mapping[str, float], section_index: int,
               section_mix: float) -> np.ndarray:
        if self._ctx is None or self._model is None:
            raise RenderError("LCMEngine.render was called before start(ctx); call start first")
        self._raise_if_cancelled()
        p = _clip_params(params)
        mix = float(np.clip(section_mix, 0.0, 1.0)) if math.isfinite(section_mix) else 1.0
        if not 0 <= section_index < len(self._ctx.sections):
            section_index = -1
        prev = self._chain
        cut = prev is None or (section_index != self._last_section and mix >= 1.0)
        if self.keyframes is not None:
            key = frame_index in self.keyframes or p["strength"] >= self.hit_keyframe_strength
        else:
            key = frame_index % self._key_every == 0
        if cut:
            init, strength = None, 1.0
        else:
            motion = (p["zoom"], p["rotation"], p["translate_x"], p["translate_y"])
            init = prev if not any(motion) else warp_feedback(
                prev, zoom=p["zoom"], rotation_deg=p["rotation"], translate_x=p["translate_x"],
                translate_y=p["translate_y"], grid=self._grid)
            strength = min(1.0, self.base_strength + p["strength"])
            if key:
                strength = max(strength, self.keyframe_strength)
            elif self._preview:
                strength = 0.0  # preview: only keyframes pay for the model
        job = FrameJob(frame_index, p, section_index, mix, init, strength)
        chain = self._run([_Work(job, p, init, strength)])[0]
        self._chain, self._last_section = chain, section_index
        return self._finish(chain, p)

    def render_batch(self, jobs: Sequence[FrameJob]) -> list[np.ndarray]:
        """Render independent frames (keyframes near the playhead), several per UNet call where their
        timestep schedules match. Does not touch the chain of :meth:`render`. Returns output-size
        RGB uint8 frames in the order of ``jobs``; each equals what it would be rendered alone."""
        if self._ctx is None or self._model is None:
            raise RenderError("LCMEngine.render_batch was called before start(ctx); call start first")
        self._raise_if_cancelled()
        work = []
        for job in jobs:
            p = _clip_params(job.params)
            section_index = job.section_index if 0 <= job.section_index < len(self._ctx.sections) else -1
            mix = float(np.clip(job.section_mix, 0.0, 1.0))
            init = self._fit(job.init_rgb) if job.init_rgb is not None else None
            strength = job.strength if job.strength is not None else self.base_strength + p["strength"]
            job = FrameJob(job.frame_index, p, section_index, mix, init, float(np.clip(strength, 0.0, 1.0)))
            work.append(_Work(job, p, init, job.strength))
        return [self._finish(img, w.params) for img, w in zip(self._run(work), work, strict=True)]
