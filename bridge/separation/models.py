"""Which Demucs model, and its weights loaded safely: offline-first lookup, download, allow-listed loading.

Steps 2 and 3 of a separation (see :mod:`bridge.separation.demucs_runner`): find the weights
*locally* (``--model-repo DIR``, the Hugging Face cache, the torch hub cache), download them only
when missing and the network answers within a few seconds (else :class:`ModelNotAvailable` says
which model, where we looked and the two ways out), and load ``.th`` packages with
``torch.load(weights_only=True)`` and ``.safetensors`` files, both against an allow-list of the three
Demucs model classes. Also the package's errors, and the environment checks (torch/demucs present,
which device). torch and demucs are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError, MissingDependency
from bridge.separation.cache import file_digest_memo

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

