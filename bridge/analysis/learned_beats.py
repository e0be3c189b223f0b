"""Optional learned beat tracker: *Beat This!* (Foscarin, Schlüter, Widmer, ISMIR 2024; code MIT,
https://github.com/CPJKU/beat_this), used by ``stembridge analyze PROJECT --beat-model NAME_OR_PATH``.
The DSP tracker (:mod:`bridge.analysis.beats`) stays the default; this one is never required.

Why only part of the ``beat-this`` package is used: ``beat_this.inference`` (and the
``preprocessing`` module it imports) import ``torchaudio`` at the top, for audio loading and the mel
spectrogram, and the torchaudio wheels pip can install here pin a torch other than the project's
(pip would swap torch 2.13.0 for another multi-GB build). The model class
(``beat_this.model.beat_tracker.BeatThis``) and the post-processing
(``beat_this.model.postprocessor.Postprocessor``) need only torch, einops and rotary-embedding-torch.
So the ``beatthis`` extra installs those, ``beat-this`` itself goes in with ``pip install --no-deps``,
and the two pieces that used torchaudio are re-implemented here: the log-mel front end (the
``torchaudio.transforms.MelSpectrogram`` the package configures, checked against librosa in the
tests) and the chunked inference (split / predict / aggregate, as ``beat_this.inference`` does it).

Checkpoints are not in the wheel: ``stembridge models pull beat-this[:NAME]`` downloads one from the
authors' server into the user cache, once. Analysis never downloads: without the file it fails at
once with the fix.
"""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridge.analysis.types import BeatGrid
from bridge.errors import AnalysisError, BridgeError

#: Where the authors publish the checkpoints (``<URL>/<name>.ckpt``; beat_this.inference.CHECKPOINT_URL).
CHECKPOINT_URL = "https://cloud.cp.jku.at/public.php/dav/files/7ik4RrBKTS273gp"
#: The published checkpoints and their sizes (the package's README).
CHECKPOINTS = {
    **{f"final{i}": "main model, all training data except GTZAN (~78 MB)" for i in range(3)},
    **{f"small{i}": "smaller model, same data (~8 MB)" for i in range(3)},
    **{f"single_final{i}": "main model, single split (~78 MB)" for i in range(3)},
    **{f"fold{i}": "main model, 8-fold cross-validation (~78 MB)" for i in range(8)},
}
DEFAULT_CHECKPOINT = "final0"
#: The model's input: mono 22.05 kHz, 128 log-mel bands, 50 frames/s (hop 441).
SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 441
N_MELS = 128
F_MIN_HZ, F_MAX_HZ = 30.0, 11000.0
LOG_MULTIPLIER = 1000.0
FPS = SAMPLE_RATE // HOP
#: Frames per model call and frames dropped at each chunk edge (beat_this.inference defaults).
CHUNK_FRAMES = 1500
BORDER_FRAMES = 6
PREFIX = "beat-this"
_INSTALL = ('pip install "stembridge[beatthis]" && pip install --no-deps beat-this==1.1.0 '
            "(--no-deps: its torchaudio requirement would replace stembridge's torch)")


def checkpoint_dir() -> Path:
    """Where pulled checkpoints live: $STEMBRIDGE_BEAT_MODEL_DIR, else the user cache."""
    env = os.environ.get("STEMBRIDGE_BEAT_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("stembridge")) / "beat_this"


def _name(ref: str) -> str:
    name = ref.strip()
    for prefix in (f"{PREFIX}:", "beat_this:"):
        name = name.removeprefix(prefix)
    return DEFAULT_CHECKPOINT if name in (PREFIX, "beat_this", "") else name


def looks_like_path(ref: str) -> bool:
    return any(c in ref for c in "/\\") or ref.endswith((".ckpt", ".pt", ".pth")) or ref.startswith("~")


def resolve_checkpoint(ref: str) -> Path:
    """A checkpoint file from a name ("final0", "beat-this:small0") or a path. Never downloads:
    AnalysisError with the fix when the file is not here."""
    if looks_like_path(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise AnalysisError(f"beat model {str(path)!r} is not a file; pass a Beat This! checkpoint (.ckpt) "
                                f"or a name such as {DEFAULT_CHECKPOINT} (stembridge models pull beat-this:NAME)")
        return path.resolve()
    name = _name(ref)
    if name not in CHECKPOINTS:
        raise AnalysisError(f"beat model {ref!r} is neither a file nor a Beat This! checkpoint name; use one of "
                            f"{', '.join(CHECKPOINTS)} or a path to a .ckpt file")
    path = checkpoint_dir() / f"beat_this-{name}.ckpt"
    if not path.is_file():
        raise AnalysisError(
            f"the Beat This! checkpoint {name!r} is not on this computer (looked for {path}); analysis never "
            f"downloads: run `stembridge models pull beat-this:{name}` once with internet access, or download "
            f"{CHECKPOINT_URL}/{name}.ckpt yourself and pass --beat-model /path/to/{name}.ckpt"
        )
    return path


def pull_checkpoint(ref: str = DEFAULT_CHECKPOINT, *, timeout_s: float = 30.0,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Download a published checkpoint once (the only download of this backend); returns its path."""
    name = _name(ref)
    if name not in CHECKPOINTS:
        raise BridgeError(f"{ref!r} is not a Beat This! checkpoint; use beat-this:NAME with NAME one of "
                          f"{', '.join(CHECKPOINTS)}")
    target = checkpoint_dir() / f"beat_this-{name}.ckpt"
    if target.is_file():
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("STEMBRIDGE_OFFLINE") == "1":
        raise BridgeError(f"offline mode (HF_HUB_OFFLINE / STEMBRIDGE_OFFLINE) forbids downloading {name!r}; unset "
                          f"it, or copy {CHECKPOINT_URL}/{name}.ckpt to {target}")
    base = os.environ.get("STEMBRIDGE_BEAT_MODEL_URL", CHECKPOINT_URL)  # a mirror (or file:// in tests)
    url = f"{base}/{name}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        _read_checkpoint(Path(tmp))  # a truncated or HTML error page is not kept
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise BridgeError(f"could not download the Beat This! checkpoint {name!r} from {url}: {e}; check the internet "
                          f"connection, or download it yourself and pass --beat-model /path/to/{name}.ckpt") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def require_beat_this():
    """The beat-this model and post-processor classes (and torch), or a clear install message."""
    try:
        import torch
        from beat_this.model.beat_tracker import BeatThis
        from beat_this.model.postprocessor import Postprocessor
    except ImportError as e:
        raise BridgeError(f"the learned beat tracker (--beat-model) needs {e.name or 'beat-this'}, which is not "
                          f"installed; install it with: {_INSTALL}") from None
    return torch, BeatThis, Postprocessor


def _read_checkpoint(path: Path) -> dict:
    torch, _, _ = require_beat_this()
    try:
        # weights_only: the file is data, never code (as beat_this.inference.load_checkpoint loads it)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
            raise ValueError("it has no 'state_dict' and 'hyper_parameters'")
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise AnalysisError(f"{path} is not a Beat This! checkpoint ({e}); pull it again with "
                            "`stembridge models pull beat-this:NAME` or pass another --beat-model") from None
    return ckpt


@functools.lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, device: str):
    torch, BeatThis, _ = require_beat_this()
    ckpt = _read_checkpoint(Path(path))
    # as beat_this.inference.load_model: the model's own hyper-parameters (it may be the small one);
    # the Lightning module's state dict holds the model under "model."
    allowed = set(inspect.signature(BeatThis).parameters)
    model = BeatThis(**{k: v for k, v in ckpt["hyper_parameters"].items() if k in allowed})
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AnalysisError(f"{path} does not fit the Beat This! model ({str(e).splitlines()[0]}); pass a "
                            "checkpoint made for beat-this 1.x") from None
    return model.to(device).eval()


def load_model(ref: str, *, device: str = "cpu"):
    """The BeatThis model of a checkpoint name or path (cached while the file is unchanged)."""
    path = resolve_checkpoint(ref)
    return _load(str(path), path.stat().st_mtime_ns, device)


# --- front end (torchaudio.transforms.MelSpectrogram, re-implemented) ----------------------------

def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(n_freqs, n_mels) triangular Slaney-scale filters without area normalisation — torchaudio's
    ``melscale_fbanks(norm=None, mel_scale="slaney")`` with the model's parameters."""
    all_freqs = np.linspace(0.0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    m_pts = np.linspace(_hz_to_mel_slaney(F_MIN_HZ), _hz_to_mel_slaney(F_MAX_HZ), N_MELS + 2)
    f_pts = _mel_to_hz_slaney(m_pts)
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def log_mel(signal, *, torch=None):
    """(frames, 128) log-mel spectrogram of a mono 22.05 kHz signal, as the model was trained on:
    magnitude STFT (Hann 1024, hop 441, centred, reflect-padded) / sqrt(1024), Slaney mel,
    log1p(1000·x)."""
    torch = torch or require_beat_this()[0]
    x = torch.as_tensor(np.asarray(signal, dtype=np.float32))
    window = torch.hann_window(N_FFT)
    # normalized="frame_length" in torchaudio is torch.stft(normalized=True): × frame_length^-0.5
    # (not the window norm, which is its normalized="window")
    spec = torch.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=True,
                      pad_mode="reflect", normalized=True, onesided=True, return_complex=True).abs()
    mel = torch.as_tensor(mel_filterbank()).T @ spec  # (n_mels, frames)
    return torch.log1p(LOG_MULTIPLIER * mel).T


# --- inference (as beat_this.inference.split_predict_aggregate) ---------------------------------

def predict_frames(model, spect, *, chunk_frames: int = CHUNK_FRAMES, border_frames: int = BORDER_FRAMES,
                   cancel=None):
    """Framewise beat and downbeat logits, each shape (frames,), for a (frames, 128) spectrogram of
    any length: chunks of ``chunk_frames`` overlapping by ``border_frames`` on each side (the model
    was not trained on its input's edges), the earlier chunk winning where they overlap."""
    torch = require_beat_this()[0]
    n = spect.shape[0]
    step = chunk_frames - 2 * border_frames
    starts = np.arange(-border_frames, n - border_frames, step)
    if n > step:
        starts[-1] = n - (chunk_frames - border_frames)  # the last chunk ends at the piece's end
    beat = torch.full((n,), -1000.0)
    downbeat = torch.full((n,), -1000.0)
    with torch.inference_mode():
        for start in starts[::-1]:  # reversed: earlier chunks overwrite later ones ("keep_first")
            if cancel is not None:
                cancel.raise_if_cancelled("the beat model")
            lo, hi = max(start, 0), min(start + chunk_frames, n)
            chunk = torch.nn.functional.pad(
                spect[lo:hi], (0, 0, max(0, -start), max(0, min(border_frames, start + chunk_frames - n))))
            out = model(chunk.unsqueeze(0))
            b = out["beat"][0][border_frames:-border_frames]
            d = out["downbeat"][0][border_frames:-border_frames]
            a = start + border_frames
            beat[a:a + b.shape[0]] = b[: n - a]
            downbeat[a:a + d.shape[0]] = d[: n - a]
    return beat.float(), downbeat.float()


def grid_from_logits(beat_logits, downbeat_logits, *, duration_seconds: float) -> BeatGrid:
    """Beat times with the package's own post-processing (peaks above p = 0.5 within ±70 ms,
    downbeats moved to the nearest beat), then tempo (median beat interval) and meter (the most
    common number of beats between downbeats)."""
    _, _, Postprocessor = require_beat_this()
    beats_s, downbeats_s = Postprocessor(type="minimal", fps=FPS)(beat_logits, downbeat_logits)
    beats_s = np.asarray(beats_s, dtype=np.float64)
    downbeats_s = np.asarray(downbeats_s, dtype=np.float64)
    beats_s = beats_s[(beats_s >= 0) & (beats_s <= duration_seconds)]
    downbeats_s = downbeats_s[np.isin(downbeats_s, beats_s)]
    tempo_bpm = 60.0 / float(np.median(np.diff(beats_s))) if beats_s.shape[0] >= 2 else 120.0
    beats_per_bar = 4
    if downbeats_s.shape[0] >= 2:
        counts = np.diff(np.searchsorted(beats_s, downbeats_s))
        counts = counts[(counts >= 1) & (counts <= 16)]
        if counts.size:
            beats_per_bar = int(np.bincount(counts).argmax())
    return BeatGrid(tempo_bpm=float(tempo_bpm), beats_s=beats_s, downbeats_s=downbeats_s,
                    beats_per_bar=beats_per_bar, source="beat-this")


def track_beats_learned(mix, *, sample_rate: int, duration_seconds: float, checkpoint: str,
                        device: str = "auto", cancel=None) -> BeatGrid:
    """The BeatGrid Beat This! finds in a mono ``mix`` (float, any rate; resampled to 22.05 kHz).
    ``device`` "auto": CUDA when torch sees one, else the CPU."""
    if device == "auto":
        device = "cuda" if require_beat_this()[0].cuda.is_available() else "cpu"
    model = load_model(checkpoint, device=device)
    mix = np.asarray(mix, dtype=np.float32)
    if mix.ndim != 1:
        raise AnalysisError(f"the beat model takes a mono mix; got an array of shape {mix.shape}")
    if sample_rate != SAMPLE_RATE:
        import soxr

        mix = soxr.resample(mix, sample_rate, SAMPLE_RATE).astype(np.float32)
    spect = log_mel(mix).to(device)
    beat, downbeat = predict_frames(model, spect, cancel=cancel)
    return grid_from_logits(beat.cpu(), downbeat.cpu(), duration_seconds=duration_seconds)


def project_mix(project, project_dir: Path, *, duration_seconds: float) -> np.ndarray:
    """The project's stems summed to mono at 22.05 kHz (gains applied, muted stems left out)."""
    from bridge.project.store import resolve_stem_path
    from bridge.stems.load import load_audio, place_in_song

    total = max(1, int(round(duration_seconds * SAMPLE_RATE)))
    mix = np.zeros(total, dtype=np.float32)
    for s in project.stems:
        if s.muted:
            continue
        audio = load_audio(resolve_stem_path(s.path, project_dir), sample_rate=SAMPLE_RATE, mono=True)
        placed = place_in_song(audio, offset_seconds=s.offset_seconds, sample_rate=SAMPLE_RATE, total_samples=total)
        mix += placed[0] * np.float32(10.0 ** (s.gain_db / 20.0))
    return mix

