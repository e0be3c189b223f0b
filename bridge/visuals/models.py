"""Diffusion model files: where they are, how to get them, and which device runs them.

A model is named by a Hugging Face id (``SimianLuo/LCM_Dreamshaper_v7``) or a local diffusers folder
(one with ``model_index.json``). ``BASE+LORA`` names a base checkpoint plus a LoRA, e.g.
``stable-diffusion-v1-5/stable-diffusion-v1-5+latent-consistency/lcm-lora-sdv1-5``.

Nothing here downloads unless :func:`pull_model` is called (``stembridge models pull ID``): every
other lookup is offline (``local_files_only=True`` against the Hugging Face cache), and a model that
is not on this computer raises :class:`ModelNotAvailable` naming the command that fetches it.
``huggingface_hub`` and torch are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge.errors import MissingDependency, RenderError

Role = Literal["pipeline", "lora", "tiny_vae"]

#: Components a Stable-Diffusion-class pipeline folder must hold for the LCM engine.
PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
#: Components with weights (the rest hold only configs / vocabularies).
_WEIGHTED = ("unet", "vae", "text_encoder")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: The file name diffusers looks for in a LoRA folder.
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class KnownModel:
    model_id: str
    kind: Literal["lcm", "turbo", "base", "lora", "tiny_vae"]
    about: str
    download_gb: float


#: Models known to work, shown by ``stembridge models list`` (downloaded or not).
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("SimianLuo/LCM_Dreamshaper_v7", "lcm",
               "LCM-distilled Dreamshaper v7 (SD 1.5): the recommended model; 2–4 steps, guidance 8", 4.3),
    KnownModel("stabilityai/sd-turbo", "turbo",
               "SD 2.1 Turbo (adversarial distillation): 1–2 steps, guidance 0, best at 512²", 5.2),
    KnownModel("stable-diffusion-v1-5/stable-diffusion-v1-5", "base",
               "SD 1.5 base: use it with the LCM-LoRA, --model "
               "'stable-diffusion-v1-5/stable-diffusion-v1-5+latent-consistency/lcm-lora-sdv1-5'", 2.8),
    KnownModel("latent-consistency/lcm-lora-sdv1-5", "lora",
               "LCM-LoRA: turns any SD 1.5 checkpoint into a 2–8 step model (guidance 1–2)", 0.14),
    KnownModel("madebyollin/taesd", "tiny_vae",
               "TAESD tiny autoencoder for SD 1.x/2.x: ~10× faster preview decode", 0.01),
)

DEFAULT_MODEL = KNOWN_MODELS[0].model_id
DEFAULT_LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
DEFAULT_TINY_VAE = "madebyollin/taesd"


class ModelNotAvailable(RenderError):
    """A model is not on this computer (or is incomplete). ``model`` is the id or folder as given."""

    def __init__(self, message: str, *, model: str) -> None:
        super().__init__(message)
        self.model = model


# --- names ---------------------------------------------------------------------------------------

def split_model_spec(spec: str) -> tuple[str, str | None]:
    """``"BASE+LORA"`` → (BASE, LORA); ``"ID_OR_PATH"`` → (ID_OR_PATH, None).

    An existing path containing ``+`` is taken whole (folders may have any name).
    """
    spec = spec.strip()
    if "+" in spec and not Path(spec).expanduser().exists():
        base, lora = (part.strip() for part in spec.split("+", 1))
        if not base or not lora:
            raise RenderError(f"model {spec!r} must be ID_OR_PATH or BASE+LORA with both parts given")
        return base, lora
    return spec, None


def looks_like_path(ref: str) -> bool:
    """True for what a user means as a folder: absolute, ./ ../ ~/, a Windows drive, or a backslash."""
    return (ref.startswith(("/", ".", "~")) or "\\" in ref or bool(re.match(r"^[A-Za-z]:", ref))
            or ref.count("/") > 1)


def is_repo_id(ref: str) -> bool:
    """True if ``ref`` is a syntactically valid Hugging Face model id (``org/name`` or ``name``)."""
    if looks_like_path(ref):
        return False
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def hf_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face hub cache in use (``HF_HUB_CACHE`` / ``HF_HOME`` are honoured)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _pull_hint(ref: str) -> str:
    return f"stembridge models pull {ref}"


# --- offline lookup ------------------------------------------------------------------------------

def find_local(ref: str, *, cache_dir: str | os.PathLike[str] | None = None,
               revision: str | None = None) -> Path | None:
    """The folder (or file) ``ref`` names on this computer, without any network access: an
    existing path, else the cached snapshot of a Hugging Face id; None when neither exists."""
    path = Path(ref).expanduser()
    if path.exists():
        return path.resolve()
    if not is_repo_id(ref):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(ref, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.endswith(_WEIGHT_SUFFIXES) for p in folder.iterdir())


def missing_parts(path: Path, *, role: Role) -> list[str]:
    """What a model folder lacks for ``role`` (empty = complete), as paths relative to it."""
    if role == "lora":
        if path.is_file():
            return [] if path.suffix in _WEIGHT_SUFFIXES else [f"{path.name} (not a .safetensors file)"]
        if not path.is_dir():
            return [str(path)]
        return [] if any(p.suffix == ".safetensors" for p in path.iterdir()) else [LORA_WEIGHT_NAME]
    if not path.is_dir():
        return [str(path)]
    if role == "tiny_vae":
        missing = [] if (path / "config.json").is_file() else ["config.json"]
        return missing + ([] if _has_weights(path) else ["diffusion_pytorch_model.safetensors"])
    if not (path / "model_index.json").is_file():
        return ["model_index.json"]
    missing = []
    for comp in PIPELINE_COMPONENTS:
        sub = path / comp
        if not sub.is_dir():
            missing.append(f"{comp}/")
        elif comp in _WEIGHTED and not _has_weights(sub):
            missing.append(f"{comp}/ weights (*.safetensors)")
        elif comp == "tokenizer" and not any((sub / n).is_file() for n in ("vocab.json", "tokenizer.json")):
            missing.append("tokenizer/vocab.json")
        elif comp == "scheduler" and not (sub / "scheduler_config.json").is_file():
            missing.append("scheduler/scheduler_config.json")
    return missing


def resolve_model(ref: str, *, role: Role = "pipeline",
                  cache_dir: str | os.PathLike[str] | None = None, revision: str | None = None) -> Path:
    """The complete local folder (or LoRA file) for ``ref``; never downloads.

    Raises
    ------
    ModelNotAvailable
        ``ref`` is neither an existing path nor a cached Hugging Face model, or what is there is
        incomplete. The message names the command that fetches it (``stembridge models pull ID``)
        or what the folder lacks.
    MissingDependency
        ``huggingface_hub`` is not installed (it comes with the ``ai`` extra).
    """
    ref = ref.strip()
    what = {"pipeline": "model", "lora": "LoRA", "tiny_vae": "tiny autoencoder"}[role]
    try:
        path = find_local(ref, cache_dir=cache_dir, revision=revision)
        repo_id = is_repo_id(ref)
    except ImportError as exc:
        raise MissingDependency("huggingface_hub", feature="Loading diffusion models", extra="ai") from exc
    if path is None:
        if not repo_id:
            raise ModelNotAvailable(
                f"{what} folder {ref!r} does not exist; pass a diffusers folder (one with "
                f"model_index.json) or a Hugging Face id such as {DEFAULT_MODEL}", model=ref)
        raise ModelNotAvailable(
            f"{what} {ref!r} is not on this computer (not a folder, and not in the Hugging Face cache "
            f"at {hf_cache_dir(cache_dir)}); nothing is downloaded unless you ask. Download it once with:"
            f"  {_pull_hint(ref)}  — or pass a local diffusers folder instead.", model=ref)
    missing = missing_parts(path, role=role)
    if missing:
        fix = (f"run  {_pull_hint(ref)}  again to complete it" if repo_id
               else "copy the complete diffusers folder (save_pretrained output) there")
        raise ModelNotAvailable(
            f"{what} {ref!r} at {path} is incomplete: missing {', '.join(missing)}; {fix}", model=ref)
    return path


def pipeline_info(path: Path) -> dict[str, object]:
    """Facts about a pipeline folder read from its JSON configs (no torch): ``class_name``,
    ``time_cond_proj_dim`` (None for a non-LCM UNet), ``cross_attention_dim``, ``scheduler``,
    ``variant`` ("fp16" when only half-precision weights are present, else None)."""
    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
    names = [p.name for p in (path / "unet").iterdir()]
    plain = any(n.endswith(_WEIGHT_SUFFIXES) and ".fp16." not in n for n in names)
    return {
        "class_name": index.get("_class_name", ""),
        "time_cond_proj_dim": unet.get("time_cond_proj_dim"),
        "cross_attention_dim": unet.get("cross_attention_dim"),
        "addition_embed_type": unet.get("addition_embed_type"),
        "scheduler": (index.get("scheduler") or [None, None])[1],
        "variant": None if plain else "fp16",
    }


# --- download (explicit only) --------------------------------------------------------------------

_SKIP_FOLDERS = {"safety_checker", "feature_extractor", "image_encoder"}


def select_repo_files(files: Sequence[str]) -> list[str]:
    """The files of a Hub repo the LCM engine needs, so ``pull`` skips what it never reads.

    Pipeline repos (with ``model_index.json``): the index, every JSON/TXT config, and per component
    folder one copy of the weights: plain ``.safetensors`` first, else the ``fp16`` variant, else
    ``.bin`` (sharded weights keep all shards + their index). Root-level single-file checkpoints
    (``v1-5-pruned.ckpt``…), the safety checker and EMA / non-EMA duplicates are skipped.
    Other repos (LoRA, TAESD): root configs + root ``.safetensors`` (``.bin`` only if none).
    """
    files = [f for f in files if not f.startswith(".")]
    if "model_index.json" not in files:
        root = [f for f in files if "/" not in f]
        keep = [f for f in root if f.endswith((".json", ".txt"))]
        weights = [f for f in root if f.endswith(".safetensors")] or [f for f in root if f.endswith(".bin")]
        return sorted(set(keep + weights))
    keep = ["model_index.json"]
    by_folder: dict[str, list[str]] = {}
    for f in files:
        if "/" not in f:
            continue
        folder = f.split("/", 1)[0]
        if folder in _SKIP_FOLDERS:
            continue
        by_folder.setdefault(folder, []).append(f)
    for names in by_folder.values():
        keep += [f for f in names if f.endswith((".json", ".txt", ".model"))
                 and ".fp16." not in f and "non_ema" not in f and ".ema." not in f]
        weights = [f for f in names if f.endswith(_WEIGHT_SUFFIXES) and "non_ema" not in f and ".ema." not in f]
        for pick in (lambda f: f.endswith(".safetensors") and ".fp16." not in f,
                     lambda f: f.endswith(".safetensors"),
                     lambda f: f.endswith(".bin") and ".fp16." not in f,
                     lambda f: f.endswith(".bin")):
            chosen = [f for f in weights if pick(f)]
            if chosen:
                keep += chosen
                if any(".fp16." in f for f in chosen):  # sharded fp16 weights: keep their index too
                    keep += [f for f in names if f.endswith(".index.fp16.json")]
                break
    return sorted(set(keep))


def guess_role(files: Sequence[str]) -> Role:
    if "model_index.json" in files:
        return "pipeline"
    if any(f.endswith("config.json") for f in files if "/" not in f):
        return "tiny_vae"
    return "lora"


def pull_model(ref: str, *, cache_dir: str | os.PathLike[str] | None = None,
               revision: str | None = None) -> list[Path]:
    """Download a model (or ``BASE+LORA``: both) into the Hugging Face cache; returns the local
    folders. This is the only function of stembridge that goes online for models.

    Raises ModelNotAvailable (unknown id, gated repo without login, no connection) or RenderError.
    """
    base, lora = split_model_spec(ref)
    out = []
    for part in (base, lora):
        if part is None:
            continue
        local = Path(part).expanduser()
        if local.exists():
            out.append(local.resolve())  # a folder is already "pulled"
            continue
        if not is_repo_id(part):
            raise ModelNotAvailable(
                f"{part!r} is neither an existing folder nor a Hugging Face id (org/name, e.g. {DEFAULT_MODEL})",
                model=part)
        out.append(_pull_one(part, cache_dir=cache_dir, revision=revision))
    return out


def _pull_one(repo_id: str, *, cache_dir: str | os.PathLike[str] | None, revision: str | None) -> Path:
    try:
        from huggingface_hub import list_repo_files, snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:
        raise MissingDependency("huggingface_hub", feature="Downloading models", extra="ai") from exc
    try:
        files = list_repo_files(repo_id, revision=revision)
        allow = select_repo_files(files)
        path = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=allow))
    except GatedRepoError:
        raise ModelNotAvailable(
            f"{repo_id!r} is gated on the Hugging Face Hub: accept its licence on huggingface.co/{repo_id}, "
            "log in with  hf auth login , then run the pull again", model=repo_id) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelNotAvailable(
            f"{repo_id!r}{'@' + revision if revision else ''} was not found on the Hugging Face Hub; check the "
            f"spelling (e.g. {DEFAULT_MODEL}) or log in with  hf auth login  for a private repo",
            model=repo_id) from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelNotAvailable(
            f"could not download {repo_id!r}: {exc}. Check the internet connection and retry; finished "
            "files are kept, so the pull resumes where it stopped", model=repo_id) from None
    missing = missing_parts(path, role=guess_role(files))
    if missing:
        raise ModelNotAvailable(
            f"{repo_id!r} was downloaded to {path} but lacks {', '.join(missing)}: it is not a "
            "diffusers model the LCM engine can use (see `stembridge models list` for ones that work)",
            model=repo_id)
    return path


# --- what is here --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalModel:
    model_id: str
    kind: str          # "lcm", "turbo", "base", "lora", "tiny_vae", "other"
    path: Path
    size_bytes: int


def detect_kind(path: Path, *, name: str = "") -> str:
    """What a model folder is, from its configs: lcm / turbo / base / lora / tiny_vae / other."""
    if (path / "model_index.json").is_file() and (path / "unet" / "config.json").is_file():
        info = pipeline_info(path)
        if info["time_cond_proj_dim"] is not None:
            return "lcm"
        return "turbo" if "turbo" in name.lower() else "base"
    config = path / "config.json"
    if config.is_file():
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("_class_name") == "AutoencoderTiny":
                return "tiny_vae"
        except (OSError, ValueError):
            pass
    if path.is_dir() and any(p.suffix == ".safetensors" and "lora" in p.name.lower() for p in path.iterdir()):
        return "lora"
    return "other"


def list_local_models(*, cache_dir: str | os.PathLike[str] | None = None) -> list[LocalModel]:
    """Models in the Hugging Face cache (newest revision of each), offline; [] if the cache is empty."""
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError as exc:
        raise MissingDependency("huggingface_hub", feature="Listing models", extra="ai") from exc
    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = max(repo.revisions, key=lambda r: r.last_modified)
        out.append(LocalModel(repo.repo_id, detect_kind(Path(rev.snapshot_path), name=repo.repo_id),
                              Path(rev.snapshot_path), int(repo.size_on_disk)))
    return out


# --- device ----------------------------------------------------------------------------------------

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def choose_device(*, device: str | None = None, dtype: str | None = None) -> tuple[str, str]:
    """(device, dtype name) to run on: CUDA fp16, else Apple MPS fp16, else CPU fp32; ``device`` /
    ``dtype`` override ("cuda", "cuda:1", "mps", "cpu"; "float16", "bfloat16", "float32").

    Raises RenderError for an unknown dtype or a device this computer does not have.
    """
    import torch

    if dtype is not None and dtype.lower() not in _DTYPES:
        raise RenderError(f"dtype {dtype!r} is unknown; use float16, bfloat16 or float32")
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind = device.split(":", 1)[0].lower()
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if kind not in available:
        raise RenderError(f"device {device!r} is unknown; use cuda, mps or cpu (or leave it unset to pick the best)")
    if not available[kind]:
        raise RenderError(f"device {device!r} is not available on this computer (torch {torch.__version__} "
                          "sees no such accelerator); leave the device unset or use cpu")
    name = _DTYPES[dtype.lower()] if dtype is not None else ("float32" if kind == "cpu" else "float16")
    return device, name


def torch_dtype(name: str):
    """The torch dtype for a name from :func:`choose_device`."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[_DTYPES[name.lower()]]
