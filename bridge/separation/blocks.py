"""The mix as the model reads it: decoded and checked, normalised, and cut into blocks.

Step 4's input side (see :mod:`bridge.separation.demucs_runner`): a mix up to
:data:`DEFAULT_MAX_BLOCK_SECONDS` is decoded whole (the stem loader's checks); a longer one is
measured and then streamed block by block, each block repeating the previous one's last
:data:`BLOCK_CROSSFADE_SECONDS`, so a 3-hour DJ set needs the memory of a 5-minute song; a block
that would not fit in the free RAM is refused before anything starts.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.jobs import CancelToken
from bridge.separation.models import SeparationError

#: Mixes longer than this are streamed in blocks (~1.5 GB of RAM for a 4-stem model at 44.1 kHz).
DEFAULT_MAX_BLOCK_SECONDS = 300.0
#: Crossfade between streamed blocks (a bit more than one htdemucs segment, 7.8 s).
BLOCK_CROSSFADE_SECONDS = 10.0


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
        from bridge.stems.load import resampled_length

        num_samples = resampled_length(info.num_frames, info.sample_rate, sample_rate)  # as load_audio gives
        plan = plan_blocks(num_samples, sample_rate=sample_rate, max_block_seconds=max_block_seconds)
        return cls(path, sample_rate, num_samples, info.num_channels, mean, std, plan, None)

    def blocks(self, channels: int) -> Iterator[np.ndarray]:
        if self.audio is not None:
            yield _to_model_channels(self.audio, channels)
            return
        for block in _stream_blocks(self.path, self.plan, self.sample_rate):
            yield _to_model_channels(block, channels)


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


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.concatenate([x, np.zeros((*x.shape[:-1], n - x.shape[-1]), dtype=x.dtype)], axis=-1)


# --- streaming long mixes ------------------------------------------------------------------------

def _read_chunks(path: Path, sample_rate: int, chunk: int) -> Iterator[np.ndarray]:
    """The mix at ``sample_rate`` in spans of ``chunk`` samples: :func:`load_audio`'s spans (its
    resampler and checks), so the streamed mix is bit for bit the one a whole load gives."""
    from bridge.stems.load import load_audio, probe_audio, resampled_length

    info = probe_audio(path)
    total = resampled_length(info.num_frames, info.sample_rate, sample_rate)
    for start in range(0, total, chunk):
        yield load_audio(path, sample_rate=sample_rate, start_sample=start, stop_sample=min(start + chunk, total))


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
    reader = _read_chunks(path, sample_rate, 60 * sample_rate)  # whole resampling tiles, mostly
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

