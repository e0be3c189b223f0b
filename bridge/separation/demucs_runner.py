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
Model lookup and loading (2, 3) live in :mod:`bridge.separation.models`, reading and cutting the
mix (4) in :mod:`bridge.separation.blocks`; this module runs the model and writes the stems.

5. Stems are written as float32 WAVs into a temporary cache folder that is renamed into place only
   when complete: Ctrl-C or cancel leaves nothing behind.
"""


from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import AudioError
from bridge.jobs import CancelToken, ProgressCallback
from bridge.separation.blocks import (  # noqa: F401 - re-exported: the package's names
    BLOCK_CROSSFADE_SECONDS,
    DEFAULT_MAX_BLOCK_SECONDS,
    BlockPlan,
    _fit_length,
    _PreparedMix,
    available_memory_bytes,
    check_memory,
    estimate_block_bytes,
    plan_blocks,
)
from bridge.separation.cache import CacheEntry, SeparationCache, default_cache_dir
from bridge.separation.models import (  # noqa: F401 - re-exported: the package's names
    DEFAULT_MODEL,
    DEMUCS_SAMPLE_RATE,
    MODEL_CHOICES,
    TEST_MODEL,
    ModelNotAvailable,
    ModelSpec,
    SeparationError,
    demucs_version,
    load_model,
    model_identity,
    network_reachable,
    pick_device,
    require_ai_packages,
    resolve_model_spec,
    save_model_to_repo,
)

log = logging.getLogger(__name__)

#: Separation shorter than this is refused: nothing to drive visuals with, and usually a wrong file.
MIN_DURATION_SECONDS = 0.1
#: Seed for demucs's random time shifts: same inputs → same stems (the cache relies on it).
SHIFT_SEED = 0
#: Bump when this module's output changes for the same inputs (invalidates cached stems).
SEPARATION_CODE_VERSION = 1


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
