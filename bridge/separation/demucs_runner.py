"""Separate a full mix into stems with Demucs: offline-safe model loading, blocks, progress, cancel.

torch and demucs are imported inside functions only: importing this module (and so
``bridge.separation``) stays light, and a cache hit never imports torch at all.

How a separation runs (``DemucsSeparator.separate``):

1. Check the options and the mix header (no decoding yet) and build the cache key: mix content hash
   + model identity + options + demucs version. A hit returns the cached stems at once.
2. Find the model weights *locally* (``--model-repo DIR``, the Hugging Face cache, the torch hub
   cache). Only if they are missing and the network answers within a few seconds are they
   downloaded; otherwise :class:`ModelNotAvailable` says which model, where we looked and the two
   ways out. We never hand a name to ``demucs.pretrained.get_model`` for released models, because it
   asks the Hugging Face hub first and waits ~25 s on DNS when offline.
3. Load the weights safely: ``.th`` packages with ``torch.load(weights_only=True)`` and an
   allow-list of the three Demucs model classes, ``.safetensors`` with the same allow-list.
4. Decode the mix at the model's rate (the project's loader), normalise it as demucs's own
   ``Separator`` does, and run ``demucs.apply.apply_model`` (split into overlapping segments, random
   shifts with a fixed seed so results are reproducible). Its callback reports progress and is
   where cancellation is raised. Mixes longer than ``max_block_seconds`` are streamed: read,
   separated and written block by block with a crossfade, so a 3-hour DJ set needs the memory of a
   5-minute song.
5. Stems are written as float32 WAVs into a temporary cache folder that is renamed into place only
   when complete: Ctrl-C or cancel leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import AudioError, BridgeError, MissingDependency
from bridge.jobs import CancelToken, ProgressCallback
from bridge.separation.cache import CacheEntry, SeparationCache, default_cache_dir, file_digest_memo

log = logging.getLogger(__name__)

DEFAULT_MODEL = "htdemucs"
#: A tiny random-weight model built by demucs itself (no download): for tests, never for music.
TEST_MODEL = "demucs_unittest"
#: Released models worth offering, with what they are (the full list: ``demucs/remote/*.yaml``).
MODEL_CHOICES: dict[str, str] = {
    "htdemucs": "Hybrid Transformer Demucs v4, 4 stems (the default; best speed/quality balance)",
    "htdemucs_ft": "htdemucs fine-tuned per source, a bag of 4 models: a bit better, ~4x slower",
    "htdemucs_6s": "6 stems (adds guitar and piano; the piano stem bleeds a lot)",
    "hdemucs_mmi": "Hybrid Demucs v3 trained on MUSDB18-HQ + 800 songs; 4 stems",
    "mdx_extra": "Demucs v3 bag of 4 models from the 2021 Music Demixing challenge; 4 stems, slow",
}
#: The rate of every released Demucs model (a local model may differ; it is read from the model).
DEMUCS_SAMPLE_RATE = 44100
#: HF hub namespace demucs 4.1 downloads from, and the host we probe before any download.
_HF_NAMESPACE = "adefossez"
_HF_HOST = "huggingface.co"
_NETWORK_PROBE_SECONDS = 3.0
#: Separation shorter than this is refused: nothing to drive visuals with, and usually a wrong file.
MIN_DURATION_SECONDS = 0.1
#: Mixes longer than this are streamed in blocks (~1.5 GB of RAM for a 4-stem model at 44.1 kHz).
DEFAULT_MAX_BLOCK_SECONDS = 300.0
#: Crossfade between streamed blocks (a bit more than one htdemucs segment, 7.8 s).
BLOCK_CROSSFADE_SECONDS = 10.0
#: Seed for demucs's random time shifts: same inputs → same stems (the cache relies on it).
SHIFT_SEED = 0
#: Bump when this module's output changes for the same inputs (invalidates cached stems).
SEPARATION_CODE_VERSION = 1
_ALLOWED_MODEL_CLASSES = ("demucs.htdemucs.HTDemucs", "demucs.hdemucs.HDemucs", "demucs.demucs.Demucs")
_FEATURE = "Separating a mix into stems (Demucs)"


class SeparationError(BridgeError):
    """Separation cannot run with these options or this model (message: what, why, the fix)."""


class ModelNotAvailable(SeparationError):
    """The model's weights are not on this machine and cannot be downloaded now."""


# --- environment -----------------------------------------------------------------------------

def require_ai_packages() -> None:
    """Raise MissingDependency unless torch and demucs can be imported (without importing them)."""
    for package in ("torch", "demucs"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(package, feature=_FEATURE, extra="ai")


def demucs_version() -> str:
    try:
        return importlib.metadata.version("demucs")
    except importlib.metadata.PackageNotFoundError:
        raise MissingDependency("demucs", feature=_FEATURE, extra="ai") from None


def _demucs_package_dir() -> Path:
    spec = importlib.util.find_spec("demucs")
    if spec is None or spec.origin is None:
        raise MissingDependency("demucs", feature=_FEATURE, extra="ai")
    return Path(spec.origin).parent


def pick_device(device: str = "auto") -> str:
    """'auto' → cuda, else mps (Apple), else cpu; an explicit device is checked to exist."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not cuda:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise SeparationError(
                f"--device cuda: PyTorch {torch.__version__} ({build}) sees no CUDA GPU. Use --device auto "
                "or cpu, or install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/)."
            )
        return "cuda"
    if device == "mps":
        if not mps:
            raise SeparationError("--device mps: Apple Metal (MPS) is not available here (it needs an Apple "
                                  "Silicon Mac and a recent PyTorch). Use --device auto or cpu.")
        return "mps"
    raise SeparationError(f"--device {device!r} is not one of auto, cpu, cuda, mps.")


# --- which model ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """Which model to use: a released name (``repo`` None) or a name inside a local folder."""

    name: str
    repo: Path | None = None

    def describe(self) -> str:
        return f"'{self.name}' from {self.repo}" if self.repo else f"'{self.name}'"


def _released_models() -> dict[str, dict[str, Any]]:
    """Released bag names → their yaml ({models, weights, segment}), plus single signatures."""
    import yaml

    remote = _demucs_package_dir() / "remote"
    bags = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(remote.glob("*.yaml"))}
    for sig in _released_files():
        bags.setdefault(sig, {"models": [sig]})
    return bags


def _released_files() -> dict[str, str]:
    """Released signature → file name on the legacy download server (``<sig>-<sha256[:8]>.th``)."""
    files: dict[str, str] = {}
    root = ""
    for line in (_demucs_package_dir() / "remote" / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
            continue
        files[line.split("-", 1)[0]] = root + line
    return files


def _repo_entries(repo: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(bag name → yaml, model signature → weights file) in a local model folder, as demucs reads it."""
    bags: dict[str, Path] = {}
    models: dict[str, Path] = {}
    for path in sorted(repo.iterdir()):
        if path.suffix == ".yaml":
            bags[path.stem] = path
        elif path.suffix in (".th", ".safetensors"):
            sig = path.stem.rsplit("-", 1)[0] if path.suffix == ".th" and "-" in path.stem else path.stem
            if sig in models:
                raise SeparationError(
                    f"{repo}: two files hold model '{sig}' ({models[sig].name}, {path.name}); delete one.")
            models[sig] = path
    return bags, models


def resolve_model_spec(model: str | None = None, model_repo: str | os.PathLike[str] | None = None) -> ModelSpec:
    """Check a model name (and folder) without loading anything; fill in the default name.

    With ``model_repo`` and no ``model``: the folder's only bag (``.yaml``), or its only model file.
    """
    if model_repo is None:
        name = model or DEFAULT_MODEL
        if name == TEST_MODEL:
            return ModelSpec(name)
        if name not in _released_models():
            bags = sorted(p.stem for p in (_demucs_package_dir() / "remote").glob("*.yaml"))
            raise SeparationError(
                f"--model {name!r} is not a Demucs model name. Choose one of: {', '.join(bags)} "
                "(see `stembridge separate --help`), or point --model-repo at a folder with your own "
                "model files."
            )
        return ModelSpec(name)
    repo = Path(model_repo).expanduser().resolve()
    if not repo.is_dir():
        raise SeparationError(
            f"--model-repo {model_repo}: no such folder. Give the folder holding the model files "
            "(<signature>.th or <signature>.safetensors, plus <name>.yaml for a bag of models).")
    bags, models = _repo_entries(repo)
    names = sorted(set(bags) | set(models))
    if not names:
        raise SeparationError(
            f"--model-repo {repo}: holds no model files (*.th, *.safetensors) and no bag (*.yaml). "
            "Copy the files of a Demucs model there, e.g. from a machine where it was downloaded.")
    if model is None:
        if len(bags) == 1:
            model = next(iter(bags))
        elif not bags and len(models) == 1:
            model = next(iter(models))
        else:
            raise SeparationError(f"--model-repo {repo} holds several models ({', '.join(names)}); pick one with --model NAME.")
    if model not in names:
        raise SeparationError(f"--model {model!r} is not in {repo}; it holds: {', '.join(names)}.")
    return ModelSpec(model, repo)


def model_identity(spec: ModelSpec, *, memo_path: Path | None = None) -> str:
    """A string that changes whenever the model's weights could change; no torch needed.

    Released models are immutable releases: their bag definition and signatures identify them.
    A local folder is identified by its bag file and the content hashes of the weight files
    (memoised by path, size and mtime so re-runs don't re-hash hundreds of MB).
    """
    if spec.repo is None:
        if spec.name == TEST_MODEL:
            return f"{TEST_MODEL}:seed0"
        return "released:" + spec.name + ":" + json.dumps(_released_models()[spec.name], sort_keys=True)
    bags, models = _repo_entries(spec.repo)
    parts = [f"repo:{spec.name}"]
    sigs = [spec.name]
    if spec.name in bags:
        text = bags[spec.name].read_text()
        parts.append(text)
        sigs = _bag_definition(bags[spec.name])["models"]
    for sig in sigs:
        path = models.get(sig)
        parts.append(f"{sig}={path.name}:{file_digest_memo(path, memo_path=memo_path)}" if path else f"{sig}=missing")
    return "\n".join(parts)


def _bag_definition(yaml_path: Path) -> dict[str, Any]:
    import yaml

    try:
        bag = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as e:
        raise SeparationError(f"{yaml_path}: not valid YAML ({e}). A bag file lists `models: [sig, ...]`.") from None
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list) or not bag["models"]:
        raise SeparationError(f"{yaml_path}: a bag of models needs a non-empty `models: [signature, ...]` list.")
    return bag


# --- finding and downloading weights -----------------------------------------------------------

def _hf_repo_id(name: str) -> str:
    # demucs.hf.hf_repo_name, restated so the lookup needs no torch import.
    if name == "htdemucs":
        return f"{_HF_NAMESPACE}/HTDemucs"
    if name.startswith("htdemucs_"):
        return f"{_HF_NAMESPACE}/HTDemucs-{name[len('htdemucs_'):]}"
    return f"{_HF_NAMESPACE}/Demucs-{name}"


def _hf_cache_dir() -> Path:
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:
        return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _cached_released_weights(name: str) -> tuple[dict[str, Path], list[str]]:
    """For a released model: signature → local weights file found, and the places looked in."""
    sigs = _released_models()[name]["models"]
    files = _released_files()
    found: dict[str, Path] = {}
    looked: list[str] = []
    hf_dir = _hf_cache_dir()
    looked.append(str(hf_dir / ("models--" + _hf_repo_id(name).replace("/", "--"))))
    ckpt_dir = _torch_hub_checkpoints()
    for sig in sigs:
        with contextlib.suppress(ImportError):
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(_hf_repo_id(name), f"{sig}.safetensors", cache_dir=str(hf_dir))
            if isinstance(hit, str) and Path(hit).is_file():
                found[sig] = Path(hit)
                continue
        if sig in files:
            legacy = ckpt_dir / Path(files[sig]).name
            looked.append(str(legacy))
            if legacy.is_file():
                found[sig] = legacy
    return found, looked


def network_reachable(host: str = _HF_HOST, port: int = 443, *, timeout_s: float = _NETWORK_PROBE_SECONDS) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout_s`` (DNS included).

    ``socket.create_connection``'s timeout does not cover name resolution, which can hang ~25 s on
    a machine without network; running the probe in a daemon thread bounds the whole thing.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    result: dict[str, bool] = {}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, name="stembridge-network-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return result.get("ok", False)


def _not_available(spec: ModelSpec, looked: list[str], why: str) -> ModelNotAvailable:
    where = "\n    ".join(looked)
    return ModelNotAvailable(
        f"Demucs model '{spec.name}' is not on this machine and cannot be downloaded now ({why}).\n"
        f"  Looked in:\n    {where}\n"
        "  Two ways out:\n"
        f"    1. run the same command once with internet access: the weights (about 80 MB per model) are "
        "then cached and later runs work offline;\n"
        "    2. or copy the model files from a machine that has them into a folder and pass "
        "--model-repo DIR (files <signature>.th or <signature>.safetensors, plus <name>.yaml for a bag)."
    )


def _download_released(spec: ModelSpec, missing: list[str], looked: list[str]) -> dict[str, Path]:
    if not network_reachable():
        reason = ("HF_HUB_OFFLINE is set" if os.environ.get("HF_HUB_OFFLINE")
                  else f"no network: {_HF_HOST} could not be reached within {_NETWORK_PROBE_SECONDS:.0f} s")
        raise _not_available(spec, looked, reason)
    log.info("downloading Demucs model %s (%s)", spec.name, ", ".join(missing))
    out: dict[str, Path] = {}
    files = _released_files()
    for sig in missing:
        try:
            from huggingface_hub import hf_hub_download

            out[sig] = Path(hf_hub_download(_hf_repo_id(spec.name), f"{sig}.safetensors"))
            continue
        except Exception as e:  # noqa: BLE001 - any hub failure falls back to the legacy server
            log.info("hub download of %s failed (%s); trying the legacy server", sig, e)
        if sig not in files:
            raise _not_available(spec, looked, f"the hub download of {sig} failed")
        import torch
        from demucs.pretrained import ROOT_URL

        dest = _torch_hub_checkpoints() / Path(files[sig]).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        checksum = Path(files[sig]).stem.rsplit("-", 1)[-1]
        try:  # writes to a temporary file and renames it when the hash matches
            torch.hub.download_url_to_file(ROOT_URL + files[sig], str(dest), hash_prefix=checksum, progress=True)
        except Exception as e:  # noqa: BLE001
            raise _not_available(spec, looked, f"the download failed: {e}") from None
        out[sig] = dest
    return out


# --- loading weights safely ---------------------------------------------------------------------

def _check_klass(klass: object, path: Path) -> None:
    qualname = f"{getattr(klass, '__module__', '?')}.{getattr(klass, '__name__', klass)}"
    if qualname not in _ALLOWED_MODEL_CLASSES:
        raise SeparationError(f"{path}: declares model class {qualname}, which is not a Demucs model; refusing to load it.")


def _sha256_prefix(path: Path, n: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def _load_th(path: Path) -> Any:
    """A demucs ``.th`` package, unpickled with torch's weights-only loader and a class allow-list."""
    import pickle
    from fractions import Fraction

    import torch
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    if "-" in path.stem:  # <sig>-<sha256 prefix>.th: demucs checks it too
        expected = path.stem.rsplit("-", 1)[1]
        if _sha256_prefix(path, len(expected)) != expected:
            raise SeparationError(f"{path}: checksum mismatch (the name says {expected}); the file is corrupt or "
                                  "was modified. Download it again. (In '<sig>-<hash>.th' names the part after "
                                  "the last '-' is a sha256 prefix; rename your own files without a '-'.)")
    try:
        with torch.serialization.safe_globals([HTDemucs, HDemucs, Demucs, Fraction]):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:200]
        raise SeparationError(
            f"{path}: holds Python objects beyond a Demucs model ({first}); stembridge loads model files "
            "with PyTorch's weights-only loader and will not run arbitrary code from them. Use the "
            ".safetensors release of the model, or re-save it as a plain demucs package."
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise SeparationError(f"{path}: not a readable PyTorch file ({str(e)[:160]}). Download it again.") from None
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise SeparationError(f"{path}: not a demucs model package (needs klass, args, kwargs, state).")
    _check_klass(package["klass"], path)
    return package


def _decode_json(value: Any) -> Any:
    # demucs.hf._decode_json: the segment of HTDemucs is stored as a fraction.
    from fractions import Fraction

    if isinstance(value, dict):
        if value.get("_type") == "fraction":
            return Fraction(value["numerator"], value["denominator"])
        return {k: _decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _load_safetensors(path: Path) -> Any:
    """A demucs model exported to safetensors (class and arguments in the header metadata)."""
    import importlib

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 - safe_open has no items()
    except (SafetensorError, OSError) as e:
        raise SeparationError(f"{path}: not a readable safetensors file ({str(e)[:160]}).") from None
    if "klass" not in metadata:
        raise SeparationError(f"{path}: safetensors file without demucs metadata (klass, args, kwargs).")
    if metadata["klass"] not in _ALLOWED_MODEL_CLASSES:
        raise SeparationError(f"{path}: declares model class {metadata['klass']}, which is not a Demucs model.")
    if "structure" in metadata:
        raise MissingDependency("diffq", feature=f"The quantized Demucs model in {path.name}")
    module, name = metadata["klass"].rsplit(".", 1)
    klass = getattr(importlib.import_module(module), name)
    return {"klass": klass, "args": _decode_json(json.loads(metadata.get("args", "[]"))),
            "kwargs": _decode_json(json.loads(metadata.get("kwargs", "{}"))), "state": tensors}


def _model_from_file(path: Path) -> Any:
    from demucs.states import load_model as demucs_load_model

    package = _load_th(path) if path.suffix == ".th" else _load_safetensors(path)
    if isinstance(package["state"], dict) and package["state"].get("__quantized"):
        if importlib.util.find_spec("diffq") is None:
            raise MissingDependency("diffq", feature=f"The quantized Demucs model in {path.name}")
    try:
        return demucs_load_model(package)
    except (RuntimeError, TypeError, KeyError) as e:
        raise SeparationError(f"{path}: the weights do not fit the declared model ({str(e)[:200]}).") from None


def load_model(spec: ModelSpec, *, allow_download: bool = True) -> Any:
    """Load the model (a demucs Model or BagOfModels, in eval mode) for ``spec``; offline-safe.

    Raises ModelNotAvailable (not cached and no network, in a few seconds at most), SeparationError
    (a bad or unsafe file), MissingDependency (torch/demucs, or diffq for quantized models).
    """
    require_ai_packages()
    import torch
    from demucs.apply import BagOfModels

    if spec.repo is None and spec.name == TEST_MODEL:
        from demucs.pretrained import get_model

        with torch.random.fork_rng(devices=[]):  # random init, but the same one every time
            torch.manual_seed(0)
            model = get_model(TEST_MODEL)
        return model.eval()

    if spec.repo is None:
        bag = _released_models()[spec.name]
        found, looked = _cached_released_weights(spec.name)
        missing = [s for s in bag["models"] if s not in found]
        if missing:
            if not allow_download:
                raise _not_available(spec, looked, "downloads are disabled")
            found.update(_download_released(spec, missing, looked))
        files = [found[s] for s in bag["models"]]
    else:
        bags, models = _repo_entries(spec.repo)
        bag = _bag_definition(bags[spec.name]) if spec.name in bags else {"models": [spec.name]}
        absent = [s for s in bag["models"] if s not in models]
        if absent:
            raise SeparationError(f"{spec.repo}: bag '{spec.name}' lists {', '.join(absent)}, but no "
                                  f"{absent[0]}.th or {absent[0]}.safetensors is in that folder.")
        files = [models[s] for s in bag["models"]]

    sub_models = [_model_from_file(p) for p in files]
    if len(files) == 1 and "weights" not in bag and "segment" not in bag:
        return sub_models[0].eval()
    try:
        model = BagOfModels(sub_models, bag.get("weights"), bag.get("segment"))
    except AssertionError:
        raise SeparationError(f"{spec.describe()}: the models of the bag disagree on sources, rate or channels, "
                              "or the weights list does not match.") from None
    return model.eval()


def save_model_to_repo(model: Any, repo_dir: str | os.PathLike[str], *, name: str, fmt: str = "th") -> Path:
    """Save a single demucs model into a ``--model-repo`` folder as bag ``name``; returns the weights file.

    fmt "th": a demucs package (``<sig>-<sha256[:8]>.th``, what ``demucs.states.save_with_checksum``
    writes); "safetensors": demucs's Hugging Face export format (class and arguments in the header).
    Either is loadable by demucs itself (``get_model(name, repo=...)`` for .th) and by stembridge.
    """
    import io
    from fractions import Fraction

    import torch
    from demucs.states import get_state

    from bridge.fsutil import atomic_write_bytes, atomic_write_text

    if fmt not in ("th", "safetensors"):
        raise SeparationError(f"model format {fmt!r} must be 'th' or 'safetensors'.")
    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    args, kwargs = model._init_args_kwargs  # recorded by demucs's @capture_init
    sig = hashlib.sha256(name.encode()).hexdigest()[:8]
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in get_state(model, None).items()}
    if fmt == "th":
        buf = io.BytesIO()
        torch.save({"klass": model.__class__, "args": list(args), "kwargs": dict(kwargs), "state": state}, buf)
        data = buf.getvalue()
        path = repo / f"{sig}-{hashlib.sha256(data).hexdigest()[:8]}.th"
        atomic_write_bytes(path, data)
    else:
        from safetensors.torch import save as save_safetensors

        def encode(value: Any) -> Any:
            if isinstance(value, Fraction):
                return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
            if isinstance(value, dict):
                return {k: encode(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [encode(v) for v in value]
            return value

        klass = f"{model.__class__.__module__}.{model.__class__.__name__}"
        metadata = {"klass": klass, "args": json.dumps(encode(list(args))), "kwargs": json.dumps(encode(dict(kwargs)))}
        path = repo / f"{sig}.safetensors"
        atomic_write_bytes(path, save_safetensors(state, metadata=metadata))
    atomic_write_text(repo / f"{name}.yaml", f"models: ['{sig}']\n")
    return path


# --- planning ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockPlan:
    """How a mix of ``num_samples`` (at the model rate) is cut into blocks separated one at a time."""

    num_samples: int
    block_samples: int
    crossfade_samples: int
    starts: tuple[int, ...]

    @property
    def num_blocks(self) -> int:
        return len(self.starts)

    def bounds(self) -> Iterator[tuple[int, int]]:
        for s in self.starts:
            yield s, min(s + self.block_samples, self.num_samples)


#: Model weights + activations of one segment + allocator slack, on top of the audio buffers. Measured:
#: htdemucs on 30 s peaks at 1.2 GB RSS (benchmarks/separation_speed.py); streaming 20 or 40 min in
#: 5-min blocks peaks at 2.3 GB without any model weights — flat in the mix length.
_MODEL_OVERHEAD_BYTES = 1792 * 1024**2


def estimate_block_bytes(block_samples: int, *, num_sources: int, channels: int = 2) -> int:
    """Peak RAM of separating one block: float32 mix + normalised copy + shift padding + the output
    accumulators apply_model keeps for the whole block (sum, per-shift and per-model results)."""
    return 4 * channels * block_samples * (3 + 3 * num_sources) + _MODEL_OVERHEAD_BYTES


def plan_blocks(num_samples: int, *, sample_rate: int, max_block_seconds: float = DEFAULT_MAX_BLOCK_SECONDS,
                crossfade_seconds: float = BLOCK_CROSSFADE_SECONDS) -> BlockPlan:
    """One block for songs up to ``max_block_seconds`` (identical to the demucs command line), else
    overlapping blocks crossfaded over ``crossfade_seconds``."""
    block = max(1, int(round(max_block_seconds * sample_rate)))
    if num_samples <= block:
        return BlockPlan(num_samples, num_samples, 0, (0,))
    fade = min(int(round(crossfade_seconds * sample_rate)), block // 4)
    hop = block - fade
    starts = [0]
    while starts[-1] + block < num_samples:
        starts.append(starts[-1] + hop)
    return BlockPlan(num_samples, block, fade, tuple(starts))


def available_memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def check_memory(plan: BlockPlan, *, num_sources: int, channels: int = 2, available: int | None = None) -> None:
    """Refuse before starting when one block will not fit in the free RAM (instead of swapping/OOM)."""
    need = estimate_block_bytes(plan.block_samples, num_sources=num_sources, channels=channels)
    available = available_memory_bytes() if available is None else available
    if available is not None and need > available:
        gib = 1024**3
        raise SeparationError(
            f"Separating needs about {need / gib:.1f} GB of free memory (blocks of "
            f"{plan.block_samples / max(1, plan.num_samples) * 100:.0f}% of the mix), but only "
            f"{available / gib:.1f} GB is free. Close other applications and try again, or separate "
            "with a smaller max_block_seconds to stream the mix in shorter pieces."
        )


@dataclass
class _PreparedMix:
    """A checked, decoded (or, when long, measured) mix at one sample rate, ready to cut into blocks."""

    path: Path
    sample_rate: int
    num_samples: int
    mix_channels: int
    mean: float
    std: float
    plan: BlockPlan
    audio: np.ndarray | None  # the whole mix when it is one block, else None (streamed)

    @classmethod
    def load(cls, path: Path, info: Any, *, sample_rate: int, max_block_seconds: float,
             cancel: CancelToken | None) -> _PreparedMix:
        """Decode and check the mix before any model is loaded: a bad file fails in a second."""
        estimate = max(1, int(round(info.num_frames * sample_rate / info.sample_rate)))
        plan = plan_blocks(estimate, sample_rate=sample_rate, max_block_seconds=max_block_seconds)
        if plan.num_blocks == 1:
            from bridge.stems.load import load_audio

            audio = load_audio(path, sample_rate=sample_rate)  # all the bad-file checks
            mean, std = _mix_stats(audio)
            plan = plan_blocks(audio.shape[1], sample_rate=sample_rate, max_block_seconds=max_block_seconds)
            return cls(path, sample_rate, audio.shape[1], info.num_channels, mean, std, plan, audio)
        mean, std = _stream_stats(path, sample_rate=sample_rate, cancel=cancel)
        with _open_resampled(path, sample_rate) as reader:  # the same length load_audio would give
            num_samples = int(reader.frames)
        plan = plan_blocks(num_samples, sample_rate=sample_rate, max_block_seconds=max_block_seconds)
        return cls(path, sample_rate, num_samples, info.num_channels, mean, std, plan, None)

    def blocks(self, channels: int) -> Iterator[np.ndarray]:
        if self.audio is not None:
            yield _to_model_channels(self.audio, channels)
            return
        for block in _stream_blocks(self.path, self.plan, self.sample_rate):
            yield _to_model_channels(block, channels)


# --- the separation itself -----------------------------------------------------------------------

def _count_segments(model: Any, num_samples: int, *, shifts: int, overlap: float, segment: float | None) -> int:
    """How many model calls apply_model will make (for the progress total; may overshoot by one)."""
    subs = list(model.models) if hasattr(model, "models") else [model]
    total = 0
    for sub in subs:
        seg_s = float(segment if segment is not None else sub.segment)
        seg_len = max(1, int(sub.samplerate * seg_s))
        stride = max(1, int((1 - overlap) * seg_len))
        length = num_samples + (int(0.5 * sub.samplerate) if shifts else 0)
        total += max(1, shifts) * math.ceil(length / stride)
    return total


def max_segment_seconds(model: Any) -> float:
    """Longest ``segment`` the model accepts (transformer models are limited to their training length)."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    if isinstance(model, BagOfModels):
        return float(model.max_allowed_segment)
    if isinstance(model, HTDemucs):
        return float(model.segment)
    return float("inf")


def _apply(model: Any, mix: np.ndarray, *, mean: float, std: float, shifts: int, overlap: float,
           segment: float | None, device: str, on_event: Callable[[dict], None]) -> np.ndarray:
    """demucs's ``Separator.separate_tensor`` on one block: (channels, n) → (sources, channels, n)."""
    import torch
    from demucs.apply import apply_model

    wav = torch.from_numpy(np.ascontiguousarray(mix))
    # Random shifts come from Python's global `random`; seed it for reproducible stems and restore it.
    state = random.getstate()
    random.seed(SHIFT_SEED)
    try:
        out = apply_model(model, ((wav - mean) / std)[None], shifts=shifts, split=True, overlap=overlap,
                          segment=segment, device=device, progress=False, callback=on_event)
    finally:
        random.setstate(state)
    out = out[0] * std + mean
    return out.to("cpu", torch.float32).numpy()


def _mix_stats(audio: np.ndarray) -> tuple[float, float]:
    """demucs's normalisation: mean and (unbiased) std of the channel-averaged mix, in float32 torch."""
    import torch

    ref = torch.from_numpy(np.ascontiguousarray(audio)).mean(0)
    return float(ref.mean()), float(ref.std()) + 1e-8


def _to_model_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:  # mono mix: the model hears it on both sides (as demucs does)
        return np.repeat(audio, channels, axis=0)
    return audio.mean(axis=0, keepdims=True)  # a 1-channel model fed a stereo mix


@dataclass(frozen=True)
class SeparationResult:
    """Stems of one mix, as float32 WAV files in the separation cache (read-only: copy, don't edit).

    stems: source name ("drums", "bass", "other", "vocals", and "guitar", "piano" for 6-stem
    models) → file, in the model's order; sample_rate: the model's rate (Hz); mix_channels: the
    mix's channel count (stems are stored with the model's channels).
    """

    stems: dict[str, Path]
    sample_rate: int
    num_samples: int
    num_channels: int
    mix_channels: int
    model: str
    from_cache: bool

    @property
    def duration_seconds(self) -> float:
        return self.num_samples / self.sample_rate


class DemucsSeparator:
    """A Demucs model with its options, loaded on first need and kept for the next mixes.

    Holding one instance in the model worker keeps the model warm between separations; a cache hit
    never loads it (nor imports torch).
    """

    def __init__(self, *, model: str | None = None, model_repo: str | os.PathLike[str] | None = None,
                 device: str = "auto", shifts: int = 1, overlap: float = 0.25, segment: float | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True,
                 allow_download: bool = True, max_block_seconds: float = DEFAULT_MAX_BLOCK_SECONDS) -> None:
        if isinstance(shifts, bool) or not isinstance(shifts, int) or not 0 <= shifts <= 20:
            raise SeparationError(f"--shifts {shifts!r} must be a whole number from 0 to 20 (1 is the default; "
                                  "each extra shift adds one full pass for ~0.2 dB better SDR).")
        if not 0.0 <= overlap < 1.0:
            raise SeparationError(f"--overlap {overlap!r} must be in [0, 1), e.g. 0.25 (the default).")
        if segment is not None and not segment > 0:
            raise SeparationError(f"--segment {segment!r} must be a positive number of seconds.")
        if device not in ("auto", "cpu", "cuda", "mps"):
            raise SeparationError(f"--device {device!r} is not one of auto, cpu, cuda, mps.")
        if not max_block_seconds > 0:
            raise SeparationError(f"max_block_seconds {max_block_seconds!r} must be positive.")
        self.spec = resolve_model_spec(model, model_repo)
        self.device = device
        self.shifts = shifts
        self.overlap = float(overlap)
        self.segment = None if segment is None else float(segment)
        self.use_cache = use_cache
        self.allow_download = allow_download
        self.max_block_seconds = float(max_block_seconds)
        self.cache = SeparationCache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
        self._model: Any = None
        self._device_resolved: str | None = None

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    def _options_key(self) -> dict[str, Any]:
        return {
            "code": SEPARATION_CODE_VERSION, "demucs": demucs_version(),
            "model": model_identity(self.spec, memo_path=self.cache.memo_path),
            "shifts": self.shifts, "overlap": self.overlap, "segment": self.segment, "seed": SHIFT_SEED,
            "max_block_seconds": self.max_block_seconds, "crossfade_seconds": BLOCK_CROSSFADE_SECONDS,
        }

    def ensure_model(self) -> Any:
        """Load the model now (e.g. to warm it up or to fail early on missing weights)."""
        if self._model is None:
            require_ai_packages()
            model = load_model(self.spec, allow_download=self.allow_download)
            if self.segment is not None and self.segment > max_segment_seconds(model):
                raise SeparationError(
                    f"--segment {self.segment:g}: {self.spec.describe()} is a transformer model trained on "
                    f"{max_segment_seconds(model):g} s segments and cannot take longer ones. Use --segment "
                    f"{max_segment_seconds(model):g} or less (or leave it out).")
            self._device_resolved = pick_device(self.device)
            self._model = model
        return self._model

    def separate(self, mix_path: str | os.PathLike[str], *, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> SeparationResult:
        """Separate ``mix_path`` (any format the stem loader reads) into cached float32 WAV stems.

        Raises AudioError (missing/corrupt/truncated/silent/NaN/>2 channels/too short),
        ModelNotAvailable, SeparationError, MissingDependency, Cancelled (nothing is left behind).
        """
        from bridge.stems.load import file_digest, probe_audio

        mix_path = Path(mix_path)
        info = probe_audio(mix_path)  # header checks: missing, empty, not audio, truncated, > 8 ch
        if info.num_channels > 2:
            raise AudioError(
                f"{mix_path}: has {info.num_channels} channels; Demucs separates stereo or mono mixes. "
                "Export a stereo mixdown (or fold the surround bus down to stereo) and separate that.")
        if info.duration_seconds < MIN_DURATION_SECONDS:
            raise AudioError(f"{mix_path}: is only {info.duration_seconds * 1000:.0f} ms long; separating needs "
                             f"at least {MIN_DURATION_SECONDS:g} s of music. Is this the right file?")
        key = SeparationCache.make_key({"audio": file_digest(mix_path), **self._options_key()})
        if self.use_cache:
            entry = self.cache.lookup(key)
            if entry is not None:
                if progress:
                    progress(1, 1, "cached")
                return self._result(entry, from_cache=True)
        if cancel is not None:
            cancel.raise_if_cancelled("the separation")
        # Every released Demucs model runs at 44.1 kHz: decode (and reject bad files) before the
        # model load; a local model at another rate costs a second decode.
        rate = int(self._model.samplerate) if self._model is not None else DEMUCS_SAMPLE_RATE
        mix = _PreparedMix.load(mix_path, info, sample_rate=rate, max_block_seconds=self.max_block_seconds,
                                cancel=cancel)
        model = self.ensure_model()
        if int(model.samplerate) != mix.sample_rate:
            mix = _PreparedMix.load(mix_path, info, sample_rate=int(model.samplerate),
                                    max_block_seconds=self.max_block_seconds, cancel=cancel)
        entry = self._run(model, mix, key, progress=progress, cancel=cancel)
        return self._result(entry, from_cache=False)

    def _result(self, entry: CacheEntry, *, from_cache: bool) -> SeparationResult:
        return SeparationResult(stems=entry.stems, sample_rate=entry.sample_rate, num_samples=entry.num_samples,
                                num_channels=entry.num_channels, mix_channels=entry.meta.get("mix_channels", 2),
                                model=entry.meta.get("model", self.spec.name), from_cache=from_cache)

    def _run(self, model: Any, mix: _PreparedMix, key: str, *, progress: ProgressCallback | None,
             cancel: CancelToken | None) -> CacheEntry:
        channels = int(model.audio_channels)
        sources = list(model.sources)
        plan = mix.plan
        check_memory(plan, num_sources=len(sources), channels=channels)
        device = self._device_resolved or pick_device(self.device)
        totals = [_count_segments(model, e - s, shifts=self.shifts, overlap=self.overlap, segment=self.segment)
                  for s, e in plan.bounds()]
        meta = {"model": self.spec.name, "mix": str(mix.path), "mix_channels": mix.mix_channels,
                "options": self._options_key()}
        import soundfile as sf

        try:
            self._write_blocks(model, mix, key, sources=sources, channels=channels, meta=meta, totals=totals,
                               device=device, progress=progress, cancel=cancel)
        except (OSError, sf.LibsndfileError) as e:
            raise SeparationError(f"the separation cache at {self.cache.root} could not be written ({e}). Check "
                                  "free disk space and permissions (or pass another cache_dir).") from None
        except RuntimeError as e:
            if "out of memory" not in str(e).lower():
                raise
            raise SeparationError(
                f"{device} ran out of memory separating {mix.path.name} ({str(e).splitlines()[0][:120]}). "
                "Use a shorter --segment (v3 models), --device cpu, or close other GPU programs.") from None
        entry = self.cache.lookup(key)
        if entry is None:
            raise SeparationError(f"the separation cache at {self.cache.root} could not be written; check free "
                                  "disk space and permissions.")
        return entry

    def _write_blocks(self, model: Any, mix: _PreparedMix, key: str, *, sources: list[str], channels: int,
                      meta: dict[str, Any], totals: list[int], device: str, progress: ProgressCallback | None,
                      cancel: CancelToken | None) -> None:
        plan = mix.plan
        grand_total = sum(totals)
        done_before = 0
        with self.cache.writer(key, sources=sources, sample_rate=mix.sample_rate, channels=channels,
                               num_samples=mix.num_samples, meta=meta) as writer:
            tail: np.ndarray | None = None
            for index, ((start, end), block) in enumerate(zip(plan.bounds(), mix.blocks(channels), strict=True)):
                counter = [0]
                label = f"block {index + 1}/{plan.num_blocks}" if plan.num_blocks > 1 else ""

                def on_event(event: dict, _base: int = done_before, _label: str = label,
                             _counter: list[int] = counter) -> None:
                    # Runs inside apply_model before/after each segment: the place to stop it.
                    if cancel is not None:
                        cancel.raise_if_cancelled("the separation")
                    if event.get("state") == "end":
                        _counter[0] += 1
                        if progress:
                            progress(min(_base + _counter[0], grand_total), grand_total, _label)

                if block.shape[-1] != end - start:  # the resampler's length estimate was off by a few samples
                    block = _fit_length(block, end - start)
                stems = _apply(model, block, mean=mix.mean, std=mix.std, shifts=self.shifts, overlap=self.overlap,
                               segment=self.segment, device=device, on_event=on_event)
                done_before += totals[index]
                if progress:
                    progress(done_before, grand_total, label)
                if tail is not None:  # crossfade with the end of the previous block
                    fade = tail.shape[-1]
                    ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
                    stems[..., :fade] = tail * (1.0 - ramp) + stems[..., :fade] * ramp
                last = index == plan.num_blocks - 1
                keep = stems.shape[-1] if last else stems.shape[-1] - plan.crossfade_samples
                writer.write(stems[..., :keep])
                tail = None if last else stems[..., keep:].copy()


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.concatenate([x, np.zeros((*x.shape[:-1], n - x.shape[-1]), dtype=x.dtype)], axis=-1)


# --- streaming long mixes ------------------------------------------------------------------------

@contextlib.contextmanager
def _open_resampled(path: Path, sample_rate: int):
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as f:
        if int(round(f.samplerate)) == sample_rate:
            yield f
        else:
            with f.resampled_to(float(sample_rate)) as r:
                yield r


def _read_chunks(path: Path, sample_rate: int, chunk: int) -> Iterator[np.ndarray]:
    from bridge.stems.load import _short  # one way to shorten decoder messages

    with _open_resampled(path, sample_rate) as reader:
        while True:
            try:
                data = np.asarray(reader.read(chunk), dtype=np.float32)
            except (ValueError, RuntimeError, OSError) as e:
                raise AudioError(f"{path}: decoding failed part-way ({_short(e)}); the file looks truncated "
                                 "or corrupt. Re-export it from your DAW as WAV, AIFF or FLAC.") from None
            if data.shape[-1] == 0:
                return
            if not np.isfinite(data).all():
                raise AudioError(f"{path}: contains NaN/Inf samples (a broken plug-in or render). Re-bounce "
                                 "the mix after fixing the track, or with a limiter on the master.")
            yield data


def _stream_stats(path: Path, *, sample_rate: int, cancel: CancelToken | None) -> tuple[float, float]:
    """Mean/std of the channel-averaged mix in one streaming pass (demucs normalises by them), and
    the silence check load_audio does for short files."""
    from bridge.stems.load import SILENCE_PEAK_DBFS, SilentAudioError

    n = 0
    total = 0.0
    total_sq = 0.0
    peak = 0.0
    for chunk in _read_chunks(path, sample_rate, 60 * sample_rate):
        if cancel is not None:
            cancel.raise_if_cancelled("the separation")
        ref = chunk.mean(axis=0, dtype=np.float64)
        n += ref.size
        total += float(ref.sum())
        total_sq += float(np.dot(ref, ref))
        peak = max(peak, float(np.abs(chunk).max()))
    if peak <= 10 ** (SILENCE_PEAK_DBFS / 20):
        raise SilentAudioError(f"{path}: is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS); there is nothing "
                               "to separate. Was the master muted when it was bounced?")
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / max(1, n - 1))
    return mean, math.sqrt(var) + 1e-8


def _stream_blocks(path: Path, plan: BlockPlan, sample_rate: int) -> Iterator[np.ndarray]:
    """The blocks of ``plan`` read sequentially: each repeats the previous block's last crossfade."""
    reader = _read_chunks(path, sample_rate, 1 << 16)
    pending: list[np.ndarray] = []
    pending_len = 0
    carry: np.ndarray | None = None

    def take(n: int) -> np.ndarray:
        nonlocal pending_len
        while pending_len < n:
            nxt = next(reader, None)
            if nxt is None:
                break
            pending.append(nxt)
            pending_len += nxt.shape[-1]
        data = np.concatenate(pending, axis=-1) if pending else np.zeros((1, 0), np.float32)
        out, rest = data[:, :n], data[:, n:]
        pending.clear()
        if rest.shape[-1]:
            pending.append(rest)
        pending_len = rest.shape[-1]
        return out

    for start, end in plan.bounds():
        fresh = take(end - start - (0 if carry is None else carry.shape[-1]))
        block = fresh if carry is None else np.concatenate([carry, fresh], axis=-1)
        carry = block[:, -plan.crossfade_samples:] if plan.crossfade_samples else None
        yield block


# --- the two calls the CLI and the GUI make ------------------------------------------------------

def separate_mix(mix_path: str | os.PathLike[str], *, model: str | None = None,
                 model_repo: str | os.PathLike[str] | None = None, device: str = "auto", shifts: int = 1,
                 overlap: float = 0.25, segment: float | None = None, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 use_cache: bool = True) -> SeparationResult:
    """Separate a mix into cached stems (see :class:`DemucsSeparator` for the options)."""
    separator = DemucsSeparator(model=model, model_repo=model_repo, device=device, shifts=shifts,
                                overlap=overlap, segment=segment, cache_dir=cache_dir, use_cache=use_cache)
    return separator.separate(mix_path, progress=progress, cancel=cancel)


def stem_filename(mix_path: str | os.PathLike[str], source: str) -> str:
    """"<mix name> - <source>.wav": the source comes last, so ``guess_role`` maps it right."""
    return f"{Path(mix_path).stem} - {source}.wav"


def export_stems(result: SeparationResult, out_dir: str | os.PathLike[str], *, mix_path: str | os.PathLike[str],
                 bit_depth: str = "float", cancel: CancelToken | None = None) -> list[Path]:
    """Write the stems into ``out_dir`` as WAVs, all or nothing.

    bit_depth: "float" (32-bit float, lossless, the default) or "int24" (samples beyond ±1 are
    clipped, and a warning says how many). A mono mix gives mono stems (the two model channels
    averaged). Existing files with the same names are replaced only once every stem is written.
    """
    import shutil

    import soundfile as sf

    from bridge.fsutil import PendingFile

    if bit_depth not in ("float", "int24"):
        raise SeparationError(f"bit depth {bit_depth!r} must be 'float' or 'int24'.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SeparationError(f"-o {out_dir}: exists and is not a folder. Give a folder for the stems.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SeparationError(f"-o {out_dir}: the folder cannot be created ({e}). Give a folder you can write to.") from None
    mono = result.mix_channels == 1 and result.num_channels > 1
    subtype = "FLOAT" if bit_depth == "float" else "PCM_24"
    pending: list[PendingFile] = []
    clipped = 0
    try:
        for source, src in result.stems.items():
            if cancel is not None:
                cancel.raise_if_cancelled("writing the stems")
            p = PendingFile(out_dir / stem_filename(mix_path, source))
            pending.append(p)
            if bit_depth == "float" and not mono:
                shutil.copyfile(src, p.tmp)
                continue
            with sf.SoundFile(str(src)) as fin, sf.SoundFile(
                    str(p.tmp), "w", samplerate=result.sample_rate, channels=1 if mono else fin.channels,
                    subtype=subtype, format=_wav_format(result.num_samples, 1 if mono else fin.channels, subtype)
            ) as fout:
                for block in fin.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                    if mono:
                        block = block.mean(axis=1, keepdims=True)
                    if subtype == "PCM_24":
                        over = np.abs(block) > 1.0
                        clipped += int(over.sum())
                        block = np.clip(block, -1.0, 1.0)
                    fout.write(block)
        paths = [p.commit() for p in pending]
    except BaseException as e:
        for p in pending:
            p.abort()
        if isinstance(e, OSError | sf.LibsndfileError):
            raise SeparationError(f"-o {out_dir}: the stems could not be written there ({e}). Check free disk "
                                  "space and that the folder is writable.") from None
        raise
    if clipped:
        log.warning("%d samples above full scale were clipped writing 24-bit stems; use --float to keep them",
                    clipped)
    return paths


def _wav_format(num_samples: int, channels: int, subtype: str) -> str:
    # Plain WAV stops at 4 GiB (a 3-hour stereo float stem is ~3.8 GB); RF64 carries on past it.
    bytes_per = 4 if subtype == "FLOAT" else 3
    return "RF64" if num_samples * channels * bytes_per > 0xFFFFFFFF - 1024 else "WAV"


def separate_mix_to_folder(mix_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                           model: str | None = None, model_repo: str | os.PathLike[str] | None = None,
                           device: str = "auto", shifts: int = 1, overlap: float = 0.25,
                           segment: float | None = None, bit_depth: str = "float",
                           progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                           cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True) -> list[Path]:
    """Separate ``mix_path`` and write one WAV per source into ``out_dir`` ("<mix> - drums.wav", …).

    model: a released name (default "htdemucs"), or with ``model_repo`` a name inside that folder
    (default: its only model). Returns the written paths in the model's source order. Re-running
    with the same mix and options reuses the cached separation (no model load). On error, cancel or
    Ctrl-C nothing is written to ``out_dir``.
    """
    result = separate_mix(mix_path, model=model, model_repo=model_repo, device=device, shifts=shifts,
                          overlap=overlap, segment=segment, progress=progress, cancel=cancel,
                          cache_dir=cache_dir, use_cache=use_cache)
    return export_stems(result, out_dir, mix_path=mix_path, bit_depth=bit_depth, cancel=cancel)
