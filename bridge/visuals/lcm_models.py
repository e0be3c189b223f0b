"""Loading the LCM engine's diffusion models (:mod:`bridge.visuals.lcm`): which family a model is
(LCM, SD 1.5 + LCM-LoRA fused, or sd-turbo), its pipeline folder on a device and dtype, the tiny autoencoder, and the
process-wide warm copies (one per model, LoRA, family, device, dtype; shared read-only by engines,
which keep their own scheduler state). Safetensors only unless the producer opts in. torch and
diffusers are imported inside functions only."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.errors import MissingDependency, RenderError
from bridge.visuals.models import DEFAULT_LCM_LORA, DEFAULT_MODEL, pipeline_info, torch_dtype

Family = Literal["lcm", "lcm-lora", "turbo"]
#: The engine's ``family`` setting: one of the families, or "auto" (:func:`pick_family`).
FAMILIES: tuple[str, ...] = ("auto", "lcm", "lcm-lora", "turbo")
#: The schedule LCMs were distilled on; a step count above it cannot be a subset of it.
LCM_ORIGINAL_STEPS = 50
#: Environment variable that allows pickled (.bin) model weights (off: safetensors only).
PICKLE_OPT_IN_ENV = "STEMBRIDGE_ALLOW_PICKLE_WEIGHTS"


def allow_pickle_weights() -> bool:
    import os

    return os.environ.get(PICKLE_OPT_IN_ENV, "").strip().lower() in ("1", "true", "yes")


# --- which family a model is -----------------------------------------------------------------------

def pick_family(family: str, info: dict, *, base: str, has_lora: bool) -> Family:
    """The family of model ``base`` (``info``: :func:`bridge.visuals.models.pipeline_info`, or the
    same keys read from a pipeline in memory): ``family`` when it is not "auto". RenderError for
    SDXL, and for a plain SD checkpoint without LCM distillation (naming what to use instead)."""
    if "XL" in str(info["class_name"]) or info["addition_embed_type"] == "text_time":
        raise RenderError(f"model {base!r} is an SDXL pipeline ({info['class_name']}); the lcm engine runs "
                          f"Stable Diffusion 1.x/2.x models: use {DEFAULT_MODEL} or stabilityai/sd-turbo")
    if family != "auto":
        return family  # type: ignore[return-value]
    if has_lora:
        return "lcm-lora"
    if info["time_cond_proj_dim"] is not None:
        return "lcm"
    if "turbo" in base.lower():
        return "turbo"
    raise RenderError(
        f"model {base!r} is a plain Stable Diffusion checkpoint (its UNet has no LCM guidance embedding), "
        f"which needs 25+ steps per frame. Add the LCM-LoRA with --model '{base}+{DEFAULT_LCM_LORA}', use an "
        f"LCM checkpoint such as {DEFAULT_MODEL}, or set family='turbo' for an SD-Turbo fine-tune")


def original_steps(model_path: Path) -> int:
    """The distillation schedule length of the pipeline folder's scheduler (LCM_ORIGINAL_STEPS when
    its config does not say)."""
    import json

    cfg = json.loads((model_path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    return int(cfg.get("original_inference_steps") or LCM_ORIGINAL_STEPS)


# --- models: loaded once per worker, kept warm ---------------------------------------------------

@dataclass
class LoadedModel:
    """A pipeline on a device, ready for the loop (one per (model, LoRA, family, device, dtype))."""

    key: tuple
    pipe: Any
    family: str
    device: Any
    dtype: Any
    vae_scale_factor: int
    latent_channels: int
    original_steps: int
    cond_dim: int | None
    prompt_cache: dict = field(default_factory=dict)


_LOADED: dict[tuple, LoadedModel] = {}
_TINY: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _import_diffusers():
    try:
        import torch  # noqa: F401
        import transformers

        # Importing diffusers' SD pipelines makes transformers warn that torchvision is missing
        # (for image processors the engine never uses): not something the user can act on.
        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            import diffusers.pipelines  # noqa: F401
            from diffusers import LatentConsistencyModelPipeline  # noqa: F401
        finally:
            transformers.logging.set_verbosity(level)
    except ImportError as exc:
        raise MissingDependency(getattr(exc, "name", None) or "diffusers",
                                feature="The LCM (diffusion) engine", extra="ai") from exc


def _dtype_kwarg(dtype: str) -> dict[str, Any]:
    """``dtype=`` for diffusers that renamed ``torch_dtype`` (and warn about the old name), else the old."""
    from diffusers.utils import deprecation_utils

    name = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    return {name: torch_dtype(dtype)}


def load_model(path: str, *, family: Family, lora_path: str | None = None, device: str, dtype: str) -> LoadedModel:
    """Load (or return the warm copy of) a pipeline folder for ``family`` on ``device``/``dtype``.

    ``path`` / ``lora_path`` are local paths from :func:`bridge.visuals.models.resolve_model`.
    Raises RenderError when the files cannot be loaded, MissingDependency without torch/diffusers
    (or without peft for a LoRA).
    """
    key = (str(path), str(lora_path), family, device, dtype)
    with _LOCK:
        cached = _LOADED.get(key)
        if cached is not None:
            return cached
        _import_diffusers()
        from diffusers import LatentConsistencyModelPipeline, StableDiffusionPipeline

        info = pipeline_info(Path(path))
        cls = LatentConsistencyModelPipeline if info["time_cond_proj_dim"] is not None else StableDiffusionPipeline
        kwargs: dict[str, Any] = dict(local_files_only=True, safety_checker=None, feature_extractor=None,
                                      requires_safety_checker=False, **_dtype_kwarg(dtype))
        if info["variant"]:
            kwargs["variant"] = info["variant"]
        # Pickled .bin weights can run code when they load: safetensors only, unless the producer
        # opts in for a model they trust (STEMBRIDGE_ALLOW_PICKLE_WEIGHTS=1).
        kwargs["use_safetensors"] = None if allow_pickle_weights() else True
        try:
            pipe = cls.from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if kwargs["use_safetensors"] and any(Path(path).rglob("*.bin")):
                raise RenderError(
                    f"the diffusion model at {path} has pickled (.bin) weights, which can run code "
                    f"when loaded; convert it to safetensors, or if you trust its source set "
                    f"{PICKLE_OPT_IN_ENV}=1 to load it anyway"
                ) from None
            raise RenderError(
                f"could not load the diffusion model at {path}: {exc}. The folder may be incomplete or "
                "not a Stable Diffusion 1.x/2.x diffusers folder; pull it again or pick another model"
            ) from exc
        if lora_path is not None:
            _fuse_lora(pipe, lora_path)
        pipe.to(device)
        loaded = prepare_pipeline(pipe, family=family)
        loaded.key = key
        _LOADED[key] = loaded
        return loaded


def prepare_pipeline(pipe: Any, *, family: Family) -> LoadedModel:
    """Make a diffusers SD-class pipeline ready for the engine loop (scheduler for ``family``, eval
    mode, no progress bars) and describe it. The pipeline stays on its device and dtype."""
    from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler

    if family in ("lcm", "lcm-lora") and not isinstance(pipe.scheduler, LCMScheduler):
        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    elif family == "turbo" and not isinstance(pipe.scheduler, EulerAncestralDiscreteScheduler):
        # sd-turbo was distilled for 1–4 steps from the *last* timestep: trailing spacing.
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                     timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval().requires_grad_(False)
    return LoadedModel(
        key=(id(pipe), family), pipe=pipe, family=family, device=pipe.unet.device, dtype=pipe.unet.dtype,
        vae_scale_factor=2 ** (len(pipe.vae.config.block_out_channels) - 1),
        latent_channels=int(pipe.unet.config.in_channels),
        original_steps=int(getattr(pipe.scheduler.config, "original_inference_steps", None) or LCM_ORIGINAL_STEPS),
        cond_dim=pipe.unet.config.time_cond_proj_dim,
    )


def _fuse_lora(pipe: Any, lora_path: str) -> None:
    """Load a LoRA and fuse it into the UNet once, then drop the adapter (no per-step LoRA cost)."""
    from diffusers.utils import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise MissingDependency("peft", feature="The LCM-LoRA (BASE+LORA models)", extra="ai")
    p = Path(lora_path)
    folder, weight = (p.parent, p.name) if p.is_file() else (p, None)
    if weight is None:
        names = sorted(f.name for f in folder.iterdir() if f.suffix == ".safetensors")
        weight = "pytorch_lora_weights.safetensors" if "pytorch_lora_weights.safetensors" in names else names[0]
    try:
        pipe.load_lora_weights(str(folder), weight_name=weight, adapter_name="lcm", local_files_only=True)
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise RenderError(f"could not apply the LoRA {p}: {exc}. Is it an SD 1.5 LoRA (e.g. {DEFAULT_LCM_LORA})?") from exc


def load_tiny_vae(path: str, *, device: str, dtype: str) -> Any:
    """An AutoencoderTiny (TAESD) from a local folder, cached per (path, device, dtype)."""
    key = (str(path), device, dtype)
    with _LOCK:
        if key in _TINY:
            return _TINY[key]
        _import_diffusers()
        from diffusers import AutoencoderTiny

        try:
            tiny = AutoencoderTiny.from_pretrained(path, local_files_only=True, **_dtype_kwarg(dtype))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise RenderError(f"could not load the tiny autoencoder at {path}: {exc}") from exc
        tiny.to(device).eval().requires_grad_(False)
        _TINY[key] = tiny
        return tiny


def release_models() -> None:
    """Drop every warm model (frees GPU memory); the next engine start loads again."""
    with _LOCK:
        _LOADED.clear()
        _TINY.clear()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
