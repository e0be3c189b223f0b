"""Load stems as float32 (channels, samples) at the project rate, checked for the ways files go bad.

Decoding goes through pedalboard.io (WAV/AIFF/FLAC/MP3/OGG; its seek is sample-exact in all of
them). What it cannot open on this platform goes to libsndfile (``soundfile``: CAF, Wave64, Opus;
also sample-exact), then to FFmpeg (PyAV: M4A with AAC or Apple Lossless, decoded whole into
memory; :func:`_open_fallback`). Resampling goes through libsoxr (``soxr``, 'VHQ') in fixed tiles
anchored at the file's first sample (:func:`resample_tiled`), so a span of a stem
(:func:`load_audio` with ``start_sample``) is bit for bit the same samples as that span of the whole
stem. Every failure becomes an :class:`~bridge.errors.AudioError` that names the file, the
problem and the fix — never a traceback from inside a decoder.

Documented normalisations (not errors): any sample rate is resampled to the project rate; mono is
kept as one channel (the mixdown upmixes it, analysis downmixes everything to mono); stems of
different lengths are padded with silence to the song length; ``offset_seconds`` shifts a stem in
song time (negative offsets cut its beginning).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.errors import AudioError

MAX_CHANNELS = 8
#: Below this peak (dBFS) a stem is considered silent (a muted track bounced by mistake).
SILENCE_PEAK_DBFS = -90.0
#: What DAWs bounce stems as: WAV/RF64 and AIFF everywhere, FLAC, MP3, OGG; CAF and M4A (AAC or
#: Apple Lossless) from Logic Pro and GarageBand; Wave64 from Cubase, Nuendo and REAPER (files over
#: 4 GB); Opus from REAPER and Bitwig.
AUDIO_EXTENSIONS = (".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".mp3", ".ogg", ".oga", ".m4a",
                    ".caf", ".w64", ".opus")

_REEXPORT = "Re-export it from your DAW as WAV, AIFF or FLAC"


class SilentAudioError(AudioError):
    """The file decodes but holds only silence."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    num_channels: int
    num_frames: int

    @property
    def duration_seconds(self) -> float:
        return self.num_frames / self.sample_rate


def _open(path: Path):
    from pedalboard.io import AudioFile  # pedalboard's import is fast but keep bridge import lean

    if not path.exists():
        raise AudioError(f"{path}: file not found. Check the path, or re-add the stem from where it lives now.")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file. Pass a file, or use --stems for a folder.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes). {_REEXPORT}.")
    try:
        f = AudioFile(str(path))
    except (ValueError, RuntimeError, OSError) as e:
        fallback = _open_fallback(path)
        if fallback is None:
            raise AudioError(
                f"{path}: could not be decoded as audio ({_short(e)}). Is it an audio file? {_REEXPORT}."
            ) from None
        return fallback
    gap = _mp3_gapless(path) if path.suffix.lower() == ".mp3" else None
    if gap is not None and int(f.frames) - sum(gap) > 0:
        return _Trimmed(f, skip=gap[0], frames=int(f.frames) - sum(gap))
    return f


#: Samples an MP3 decoder puts before the first encoded one (528 + 1, as LAME, mpg123 and FFmpeg count).
MP3_DECODER_DELAY = 529


def _mp3_gapless(path: Path) -> tuple[int, int] | None:
    """(samples to skip at the start, samples to cut at the end) from the LAME header of an MP3
    (the encoder's delay and padding, plus the decoder's delay), None without one. Read by hand:
    pedalboard does not apply it, and mutagen (which reads it) is one more GPL dependency for 20 lines."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        pos = 0
        if head[:3] == b"ID3" and len(head) == 10:  # an ID3v2 tag first: its size is 'syncsafe'
            pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
            pos += 10 if head[5] & 0x10 else 0
        fh.seek(pos)
        data = fh.read(4096)
    i = next((k for k in range(len(data) - 4) if data[k] == 0xFF and data[k + 1] & 0xE0 == 0xE0), None)
    if i is None or (data[i + 1] >> 1) & 3 != 1:  # no frame, or not Layer III
        return None
    mpeg1, mono = (data[i + 1] >> 3) & 3 == 3, (data[i + 3] >> 6) & 3 == 3
    xing = i + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))
    if data[xing:xing + 4] not in (b"Xing", b"Info"):
        return None
    flags = int.from_bytes(data[xing + 4:xing + 8], "big")
    lame = xing + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    tag = data[lame:lame + 24]
    if len(tag) < 24 or not all(32 <= b < 127 for b in tag[:4]):  # no LAME extension (encoder name)
        return None
    delay, padding = (tag[21] << 4) | (tag[22] >> 4), ((tag[22] & 0x0F) << 8) | tag[23]
    return delay + MP3_DECODER_DELAY, max(0, padding - MP3_DECODER_DELAY)


class _Reader:
    """What the loaders use of pedalboard's ``AudioFile``: ``samplerate``, ``num_channels``,
    ``frames``, ``seek(n)``, ``read(n)`` → float32 (channels, ≤ n), ``close()``, ``with``."""

    samplerate: float
    num_channels: int
    frames: int

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class _Trimmed(_Reader):
    """An MP3 reader without the encoder's and decoder's delay at the start and the padding at the
    end, as FFmpeg and players decode it: pedalboard hands back every decoded sample, so an MP3 stem
    sounded (and was analysed) 1105 samples — 25 ms at 44.1 kHz — late against the other stems."""

    def __init__(self, raw, *, skip: int, frames: int) -> None:
        self._raw, self._skip, self.frames, self._pos = raw, skip, frames, 0
        self.samplerate, self.num_channels = raw.samplerate, raw.num_channels
        raw.seek(skip)

    def seek(self, n: int) -> None:
        self._pos = max(0, min(int(n), self.frames))
        self._raw.seek(self._skip + self._pos)

    def read(self, n: int) -> np.ndarray:
        n = max(0, min(int(n), self.frames - self._pos))
        if n == 0:  # (pedalboard reads 0 as 'the whole file')
            return np.zeros((self.num_channels, 0), dtype=np.float32)
        block = self._raw.read(n)
        self._pos += block.shape[1] if block.ndim == 2 else 0
        return block

    def close(self) -> None:
        self._raw.close()


def _open_fallback(path: Path):
    """A reader for a file pedalboard cannot open here, or None when no decoder can.

    pedalboard reads CAF and M4A only through macOS's CoreAudio, and Wave64 nowhere, so on Linux
    and Windows a Logic Pro bounce (CAF, M4A) or a Cubase/REAPER Wave64 was refused (M4A) or, not
    being a listed type, silently left out of the stems folder (CAF, Wave64). libsndfile reads CAF
    (PCM and Apple Lossless) and Wave64 with sample-exact seeks; FFmpeg (PyAV, already there for
    the video) decodes the rest."""
    import soundfile as sf

    try:
        return _SoundFileReader(sf.SoundFile(str(path)))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        pass
    return _DecodedReader.open(path)


class _SoundFileReader(_Reader):
    """A libsndfile file (CAF, Wave64, …) as a reader."""

    def __init__(self, f) -> None:
        self._f = f
        self.samplerate, self.num_channels, self.frames = float(f.samplerate), int(f.channels), int(f.frames)

    def seek(self, n: int) -> None:
        self._f.seek(max(0, min(int(n), self.frames)))

    def read(self, n: int) -> np.ndarray:
        return self._f.read(max(0, int(n)), dtype="float32", always_2d=True).T

    def close(self) -> None:
        self._f.close()


class _DecodedReader(_Reader):
    """A compressed file decoded whole by FFmpeg (PyAV): M4A (AAC, Apple Lossless), … .

    Whole, because these formats seek to packets, not samples, and the loaders' promise is that a
    span is bit for bit that span of the whole stem. FFmpeg drops the encoder's priming samples (the
    MP4 edit list); the padding after the last sample is cut to the stream's stated duration."""

    def __init__(self, audio: np.ndarray, sample_rate: int) -> None:
        self._audio, self._pos = audio, 0
        self.samplerate, self.num_channels, self.frames = float(sample_rate), int(audio.shape[0]), int(audio.shape[1])

    @classmethod
    def open(cls, path: Path) -> _DecodedReader | None:
        try:
            import av
        except ImportError:  # pragma: no cover - PyAV is a core dependency
            return None
        try:
            with av.open(str(path)) as container:
                stream = next((s for s in container.streams if s.type == "audio"), None)
                if stream is None or not stream.rate:
                    return None
                resampler = av.AudioResampler(format="fltp")  # planar float, same layout and rate
                blocks = [out.to_ndarray() for frame in container.decode(stream)
                          for out in resampler.resample(frame)]
                blocks += [out.to_ndarray() for out in resampler.resample(None)]
                rate = int(stream.rate)
                stated = None
                if stream.duration is not None and stream.time_base is not None:
                    stated = int(round(float(stream.duration * stream.time_base) * rate))
        except (av.FFmpegError, ValueError, RuntimeError, OSError):
            return None
        if not blocks:
            return None
        audio = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
        if stated is not None and 0 < stated < audio.shape[1]:
            audio = audio[:, :stated]
        return cls(np.ascontiguousarray(audio), rate)

    def seek(self, n: int) -> None:
        self._pos = max(0, min(int(n), self.frames))

    def read(self, n: int) -> np.ndarray:
        block = self._audio[:, self._pos : self._pos + max(0, int(n))]
        self._pos += block.shape[1]
        return block


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _declared_vs_actual_data_bytes(path: Path) -> tuple[int, int] | None:
    """For WAV/AIFF: (bytes the header declares for the sample data, bytes actually present).

    Decoders (JUCE inside pedalboard, libsndfile) silently clamp a truncated data chunk and hand back
    a shorter file, so a bounce that was cut off — or is still being written — would pass unnoticed.
    Walking the RIFF/AIFF chunk list is a few lines and no library exposes it; hence by hand.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12:
            return None
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            fmt, target = "<I", b"data"
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            fmt, target = ">I", b"SSND"
        else:
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            cid, (clen,) = chunk[:4], struct.unpack(fmt, chunk[4:8])
            if cid == target:
                if clen == 0xFFFFFFFF:  # RF64 / streaming writers: size unknown, nothing to compare
                    return None
                return clen, size - (pos + 8)
            pos += 8 + clen + (clen & 1)
    return None


def _decode_problem(path: Path) -> str | None:
    """libsndfile's complaint when it decodes ``path`` to the end (e.g. "flac decoder lost sync"),
    None when it reads cleanly or cannot open the format at all (then the first decoder's word
    stands). Read in blocks: only a file that already looked silent pays for this second pass."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            while len(f.read(1 << 16, dtype="float32", always_2d=True)):
                pass
    except sf.LibsndfileError as e:
        return _short(e)
    except (RuntimeError, TypeError, ValueError, OSError):
        return None
    return None


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Rate, channels and length from the header, without decoding the samples."""
    path = Path(path)
    with _open(path) as f:
        info = AudioInfo(path, int(round(f.samplerate)), int(f.num_channels), int(f.frames))
    _check_header(info)
    return info


def _check_header(info: AudioInfo) -> None:
    if info.num_frames <= 0:
        raise AudioError(f"{info.path}: the file holds no audio (0 samples). {_REEXPORT}.")
    if info.num_channels > MAX_CHANNELS:
        raise AudioError(
            f"{info.path}: has {info.num_channels} channels; stembridge reads stems with at most "
            f"{MAX_CHANNELS}. Export it from your DAW as stereo (or split the surround bus into stems)."
        )
    if not 1000 <= info.sample_rate <= 768000:
        raise AudioError(f"{info.path}: sample rate {info.sample_rate} Hz is not plausible. {_REEXPORT}.")
    sizes = _declared_vs_actual_data_bytes(info.path)
    if sizes is not None and sizes[1] < sizes[0]:
        raise AudioError(
            f"{info.path}: the file is truncated: its header declares {sizes[0]} bytes of audio but only "
            f"{sizes[1]} are there (the bounce was cut off or is still being written). "
            f"Wait for the export to finish, or {_REEXPORT[0].lower() + _REEXPORT[1:]}."
        )


#: libsoxr's quality for every resample: 'VHQ' (passband to ~91 % of Nyquist, stopband ≥ 170 dB).
#: Measured on a 1 kHz / 15 kHz sine at 44.1 → 48 kHz against the exact sine at 48 kHz: 151 / 103 dB
#: SNR; pedalboard's streaming resampler (used before) 27 / 4 dB there (its output lags ~1/3 sample)
#: and took 2.6 s instead of 0.08 s for a 39-s stereo stem (tests/test_stems.py checks the SNR).
RESAMPLE_QUALITY = "VHQ"
#: Resampling tile: about this many output samples, plus this many input samples of context on each
#: side (soxr VHQ's filter is far shorter: a tiled resample equals a one-shot one to ~6e-8).
_TILE_OUT_SAMPLES = 1 << 18
_TILE_MARGIN_IN_SAMPLES = 1 << 13

#: Frames decoded per block (~6 s at 44.1 kHz): a long silent or broken file is judged block by
#: block, so it is rejected holding one block, not the whole decoded file, in memory.
BLOCK_FRAMES = 1 << 18


def resampled_length(n_samples: int, rate_in: int, rate_out: int) -> int:
    """Samples at ``rate_out`` of ``n_samples`` at ``rate_in`` (what :func:`load_audio` returns)."""
    return int(round(n_samples * rate_out / rate_in))


def _tiling(rate_in: int, rate_out: int) -> tuple[int, int, int]:
    """(output samples per tile, input samples per tile, input margin): tile edges and margins fall
    on instants that are whole samples at both rates, so each tile resamples from an exact phase."""
    g = math.gcd(rate_in, rate_out)
    unit_in, unit_out = rate_in // g, rate_out // g
    tile_out = unit_out * max(1, round(_TILE_OUT_SAMPLES / unit_out))
    margin_in = unit_in * math.ceil(_TILE_MARGIN_IN_SAMPLES / unit_in)
    return tile_out, tile_out // unit_out * unit_in, margin_in


def resample_tiled(read: Callable[[int, int], np.ndarray], n_in: int, *, rate_in: int, rate_out: int,
                   start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples ``start … stop`` (at ``rate_out``) of a signal of ``n_in`` samples at ``rate_in``.

    ``read(a, b)``: the input's samples ``a … b`` (0 ≤ a ≤ b ≤ n_in), float32 (channels, b − a).
    Before the first and after the last sample the signal is silence (as a stem is in the song).

    The output is cut into fixed tiles counted from the first sample; each is resampled by libsoxr
    on its own with :data:`_TILE_MARGIN_IN_SAMPLES` of context each side. Written by hand around
    soxr because a span resampled on its own would start its filter at another phase and differ
    in the last bits: with fixed tiles any span is the same samples as that span of the whole, so a
    range export hears (and its shader inputs see) exactly what a full export does.

    Returns
    -------
    np.ndarray
        float32, shape (channels, stop − start); ``stop`` defaults to the whole length
        (:func:`resampled_length`).
    """
    import soxr

    total = resampled_length(n_in, rate_in, rate_out)
    stop = total if stop is None else min(int(stop), total)
    start = max(0, min(int(start), stop))
    tile_out, tile_in, margin = _tiling(rate_in, rate_out)
    margin_out = margin * rate_out // rate_in
    out: np.ndarray | None = None
    for k in range(start // tile_out, -(-stop // tile_out)):
        a, b = k * tile_in - margin, (k + 1) * tile_in + margin
        lo, hi = max(a, 0), min(b, n_in)
        chunk = read(lo, hi)
        if out is None:
            out = np.empty((chunk.shape[0], stop - start), dtype=np.float32)
        seg = np.zeros((b - a, chunk.shape[0]), dtype=np.float32)  # soxr's layout: (samples, channels)
        seg[lo - a:hi - a] = chunk.T
        tile = soxr.resample(seg, rate_in, rate_out, quality=RESAMPLE_QUALITY)
        first = k * tile_out  # the tile's first output sample
        keep_a, keep_b = max(start, first), min(stop, first + tile_out)
        out[:, keep_a - start:keep_b - start] = tile[margin_out + keep_a - first:margin_out + keep_b - first].T
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def load_audio(
    path: str | os.PathLike[str], *, sample_rate: int, mono: bool = False, allow_silent: bool = False,
    start_sample: int | None = None, stop_sample: int | None = None,
) -> np.ndarray:
    """Decode ``path`` to float32 (channels, samples) at ``sample_rate`` (resampling if needed).

    mono: average the channels → shape (1, samples).
    Raises AudioError (missing, empty, not audio, truncated, >8 channels, NaN/Inf) and
    SilentAudioError (peak below -90 dBFS) unless ``allow_silent``.

    ``start_sample`` / ``stop_sample`` (at ``sample_rate``): only that span of the stem, bit for bit
    the same samples as the whole load's ``[:, start:stop]`` (cut to the file's length), decoded
    from a seek (a range export reads only what it plays). A span is judged on its own: NaN/Inf or a
    cut-off file in it is an error; silence is not (a quiet intro is no fault of the file).

    Decoded in blocks of :data:`BLOCK_FRAMES`: NaN/Inf stops at the first bad block, and leading
    digital silence is only counted (the output is allocated at the first block with sound), so a
    one-hour silent bounce is rejected in constant memory.
    """
    path = Path(path)
    if start_sample is not None or stop_sample is not None:
        return _load_span(path, sample_rate=sample_rate, mono=mono, start=int(start_sample or 0),
                          stop=stop_sample)
    threshold = 10 ** (SILENCE_PEAK_DBFS / 20)
    with _open(path) as f:
        info = AudioInfo(path, int(round(f.samplerate)), int(f.num_channels), int(f.frames))
        _check_header(info)
        try:
            audio, n_read, peak = _read_blocks(f, path, info.num_channels, info.num_frames, info.sample_rate,
                                               keep_silent=allow_silent, threshold=threshold)
        except (ValueError, RuntimeError, OSError) as e:
            raise AudioError(
                f"{path}: decoding failed part-way ({_short(e)}); the file looks truncated or corrupt. "
                f"{_REEXPORT}."
            ) from None
    # A header that promises more samples than the file holds: the render was cut off.
    expected = info.num_frames
    if n_read < expected - max(64, expected // 1000):
        raise AudioError(
            f"{path}: the file is truncated: its header promises {info.duration_seconds:.2f} s but only "
            f"{n_read / info.sample_rate:.2f} s could be read. {_REEXPORT} (let the bounce finish)."
        )
    if not allow_silent and peak <= threshold:
        problem = _decode_problem(path)
        if problem:
            # JUCE's FLAC reader hands back zeros for a file cut off mid-stream; libsndfile says why.
            raise AudioError(
                f"{path}: the file is truncated or corrupt ({problem}): it decodes to silence. "
                f"{_REEXPORT} (let the bounce finish)."
            )
        raise SilentAudioError(
            f"{path}: is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS). Was the track muted when it "
            "was bounced? Re-export it, or remove it from the project."
        )
    if audio is None:  # silent and allowed: n_read zeros
        audio = np.zeros((info.num_channels, n_read), dtype=np.float32)
    if info.sample_rate != sample_rate:
        decoded = audio
        audio = resample_tiled(lambda a, b: decoded[:, a:b], n_read, rate_in=info.sample_rate,
                               rate_out=sample_rate)
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(audio)


def _load_span(path: Path, *, sample_rate: int, mono: bool, start: int, stop: int | None) -> np.ndarray:
    """:func:`load_audio` of samples ``start … stop`` only (see there)."""
    with _open(path) as f:
        info = AudioInfo(path, int(round(f.samplerate)), int(f.num_channels), int(f.frames))
        _check_header(info)

        def read(a: int, b: int) -> np.ndarray:  # input samples a … b, checked
            try:
                f.seek(a)
                block = np.asarray(f.read(b - a), dtype=np.float32)
            except (ValueError, RuntimeError, OSError) as e:
                raise AudioError(f"{path}: decoding failed part-way ({_short(e)}); the file looks truncated "
                                 f"or corrupt. {_REEXPORT}.") from None
            got = block.shape[1] if block.ndim == 2 else 0
            if got < b - a:
                # as the whole load: a few samples fewer than the header says are tolerated (silence)
                if a + got < info.num_frames - max(64, info.num_frames // 1000):
                    raise AudioError(
                        f"{path}: the file is truncated: its header promises {info.duration_seconds:.2f} s "
                        f"but only {(a + got) / info.sample_rate:.2f} s could be read. {_REEXPORT} (let the "
                        "bounce finish).")
                padded = np.zeros((info.num_channels, b - a), dtype=np.float32)
                padded[:, :got] = block[:, :got] if got else 0.0
                block = padded
            if not np.isfinite(block).all():
                first = a + int(np.argmin(np.isfinite(block).all(axis=0)))
                raise AudioError(
                    f"{path}: contains NaN/Inf samples (the first at {first / info.sample_rate:.2f} s; a "
                    "broken plug-in or render). Re-bounce the stem after fixing the track, or bounce it "
                    "with a limiter on the track.")
            return block

        if info.sample_rate == sample_rate:
            stop = info.num_frames if stop is None else min(int(stop), info.num_frames)
            start = max(0, min(start, stop))
            audio = read(start, stop)
        else:
            audio = resample_tiled(read, info.num_frames, rate_in=info.sample_rate, rate_out=sample_rate,
                                   start=start, stop=stop)
    if audio.shape[0] != info.num_channels:  # an empty span
        audio = np.zeros((info.num_channels, 0), dtype=np.float32)
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(audio)


def _read_blocks(reader, path: Path, channels: int, expected: int, sample_rate: int, *,
                 keep_silent: bool, threshold: float) -> tuple[np.ndarray | None, int, float]:
    """Read ``reader`` to the end in blocks → (audio or None, frames read, peak).

    audio is None while every block was at or below ``threshold`` and ``keep_silent`` is False:
    quiet blocks that are not exact zeros are kept aside (so the samples returned are exact), blocks
    of exact zeros are only counted.
    """
    out: np.ndarray | None = None
    quiet: list[tuple[int, np.ndarray]] = []  # (position, block) of non-zero blocks below threshold
    pos, peak = 0, 0.0
    while True:
        block = np.asarray(reader.read(BLOCK_FRAMES), dtype=np.float32)
        n = block.shape[1] if block.ndim == 2 else 0
        if n == 0:
            break
        finite = np.isfinite(block)
        if not finite.all():
            first = pos + int(np.argmin(finite.all(axis=0)))
            raise AudioError(
                f"{path}: contains NaN/Inf samples (the first at {first / sample_rate:.2f} s; a broken "
                "plug-in or render). Re-bounce the stem after fixing the track, or bounce it with a "
                "limiter on the track."
            )
        block_peak = float(np.max(np.abs(block)))
        peak = max(peak, block_peak)
        if out is None and (keep_silent or block_peak > threshold):
            out = np.zeros((channels, max(expected, pos + n)), dtype=np.float32)
            for at, q in quiet:
                out[:, at:at + q.shape[1]] = q
            quiet.clear()
        if out is not None:
            if pos + n > out.shape[1]:  # the decoder gave more than the header said
                out = np.concatenate([out, np.zeros((channels, pos + n - out.shape[1]), np.float32)], axis=1)
            out[:, pos:pos + n] = block
        elif block_peak > 0.0:
            quiet.append((pos, block.copy()))
        pos += n
    return (out[:, :pos] if out is not None else None), pos, peak


def place_in_song(audio: np.ndarray, *, offset_seconds: float, sample_rate: int, total_samples: int) -> np.ndarray:
    """Shift a (channels, samples) stem to song time and pad/cut it to ``total_samples``."""
    offset = int(round(offset_seconds * sample_rate))
    out = np.zeros((audio.shape[0], total_samples), dtype=np.float32)
    src_start = max(0, -offset)
    dst_start = max(0, offset)
    n = min(audio.shape[1] - src_start, total_samples - dst_start)
    if n > 0:
        out[:, dst_start:dst_start + n] = audio[:, src_start:src_start + n]
    return out


def file_digest(path: str | os.PathLike[str]) -> str:
    """Content hash of a file (blake2b, hex): caches key on content, not on names or mtimes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
