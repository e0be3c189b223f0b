"""The demo song's instruments: small deterministic synthesizers rendering note lists to audio.

Each ``render_*`` function takes events in seconds and returns float32 stereo, shape (2, n_samples),
un-normalised (``song.py`` sets the final levels). Randomness (noise, velocity jitter) comes only from
the ``numpy.random.Generator`` passed in, so a fixed seed gives the same bytes on every run.

Hand-written parts and why: band-limited oscillators (scipy.signal.sawtooth aliases badly and no
installed library offers PolyBLEP oscillators), per-hit drum envelopes (a drum machine is a handful of
envelopes; nothing to borrow), and the vowel filter bank (parallel scipy resonators). Effects that
exist as well-kept code come from pedalboard (LadderFilter, Reverb, Chorus, Delay, Compressor).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pedalboard
from scipy import ndimage, signal

__all__ = [
    "DrumHit",
    "Note",
    "midi_to_hz",
    "render_bass",
    "render_drums",
    "render_lead",
    "render_pad",
]


@dataclass(frozen=True)
class Note:
    """One pitched note. ``velocity`` in (0, 1]; ``vowel`` only matters to the lead ("a","e","i","o","u");
    ``legato`` glides into this note from the previous one (lead only)."""

    start_s: float
    duration_s: float
    pitch: int
    velocity: float = 1.0
    vowel: str = "a"
    legato: bool = False


@dataclass(frozen=True)
class DrumHit:
    """One drum hit: ``kind`` is "kick", "snare", "hat", "open_hat" or "crash"; velocity in (0, 1]."""

    time_s: float
    kind: str
    velocity: float = 1.0


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


# --------------------------------------------------------------------------------------------
# building blocks


def _polyblep_saw(freq_hz: np.ndarray | float, n: int, sample_rate: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth in [-1, 1], shape (n,), float64.

    PolyBLEP (a 2-sample polynomial correction at each wrap) removes most aliasing at the cost of a
    few vector operations; ``freq_hz`` may be a scalar or a per-sample array (vibrato, glides).
    """
    inc = np.broadcast_to(np.asarray(freq_hz, dtype=np.float64) / sample_rate, (n,))
    phase = np.mod(phase0 + np.cumsum(inc) - inc[0], 1.0)
    out = 2.0 * phase - 1.0
    # just after a wrap: t in [0, dt)
    m = phase < inc
    t = phase[m] / inc[m]
    out[m] -= t + t - t * t - 1.0
    # just before a wrap: t in (1 - dt, 1)
    m = phase > 1.0 - inc
    t = (phase[m] - 1.0) / inc[m]
    out[m] -= t * t + t + t + 1.0
    return out


def _envelope(n: int, sample_rate: int, *, attack_s: float, hold_s: float, release_s: float,
              decay_s: float = 0.0, sustain: float = 1.0) -> np.ndarray:
    """Attack / decay-to-sustain / release envelope, shape (n,), float64.

    The gate is open for ``hold_s`` seconds from the start; the release is a raised-cosine fade so
    note ends never click. Attack is a raised cosine too (a linear ramp from 0 is also click-free, but
    the cosine sounds softer on pads).
    """
    t = np.arange(n) / sample_rate
    a = max(attack_s, 1.0 / sample_rate)
    env = np.where(t < a, 0.5 - 0.5 * np.cos(np.pi * np.clip(t / a, 0.0, 1.0)), 1.0)
    if decay_s > 0.0:
        env = np.where(t >= a, sustain + (1.0 - sustain) * np.exp(-(t - a) / decay_s), env)
    gate_end = max(hold_s, a)
    level_at_release = np.interp(gate_end, t, env) if n else 1.0
    r = max(release_s, 1.0 / sample_rate)
    rel = np.clip((t - gate_end) / r, 0.0, 1.0)
    env = np.where(t >= gate_end, level_at_release * (0.5 + 0.5 * np.cos(np.pi * rel)), env)
    return env


def _exp_decay(n: int, sample_rate: int, tau_s: float, *, attack_s: float = 0.0005) -> np.ndarray:
    """Percussive envelope: a very short linear attack (no click), then exp(-t/tau), shape (n,)."""
    t = np.arange(n) / sample_rate
    return np.minimum(t / attack_s, 1.0) * np.exp(-t / tau_s)


def _add(buf: np.ndarray, start: int, x: np.ndarray) -> None:
    """Mix ``x`` (…, m) into ``buf`` (…, n) at sample ``start``, cropping at the buffer's end."""
    n = buf.shape[-1]
    if start >= n:
        return
    m = min(x.shape[-1], n - start)
    buf[..., start:start + m] += x[..., :m]


@functools.lru_cache(maxsize=64)
def _sos(kind: str, cutoff_hz: float | tuple[float, float], sample_rate: int, order: int = 2) -> np.ndarray:
    nyq = 0.5 * sample_rate
    if isinstance(cutoff_hz, tuple):
        wn = [min(c, 0.95 * nyq) / nyq for c in cutoff_hz]
    else:
        wn = min(cutoff_hz, 0.95 * nyq) / nyq
    return signal.butter(order, wn, btype=kind, output="sos")


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan, ``pan`` in [-1 (left), 1 (right)] → shape (2, n)."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def _fx(audio: np.ndarray, sample_rate: int, *plugins: pedalboard.Plugin) -> np.ndarray:
    """Run float audio (2, n) through a fresh pedalboard chain (fresh = no state between songs)."""
    board = pedalboard.Pedalboard(list(plugins))
    return board(np.ascontiguousarray(audio, dtype=np.float32), sample_rate).astype(np.float64)


# --------------------------------------------------------------------------------------------
# drums


def _kick(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A four-on-the-floor kick: sine swept 160 → 48 Hz, ~0.35 s body, 4 ms noise click. (n,)."""
    n = int(0.45 * sample_rate)
    t = np.arange(n) / sample_rate
    freq = 48.0 + 112.0 * np.exp(-t / 0.035)
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate
    body = np.sin(phase - phase[0]) * _exp_decay(n, sample_rate, 0.16, attack_s=0.001)
    body *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t - 0.30) / 0.15, 0.0, 1.0))  # end at exactly 0
    click = signal.sosfilt(_sos("bandpass", (1500.0, 6000.0), sample_rate), rng.standard_normal(n))
    click *= _exp_decay(n, sample_rate, 0.004)
    return np.tanh(1.6 * (body + 0.35 * click)) / np.tanh(1.6)


def _snare(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Snare + clap layer: 230/385 Hz tone body, high-passed noise, three clap bursts. (n,)."""
    n = int(0.35 * sample_rate)
    t = np.arange(n) / sample_rate
    tone = (np.sin(2 * np.pi * 230.0 * t) + 0.5 * np.sin(2 * np.pi * 385.0 * t)) * _exp_decay(n, sample_rate, 0.045)
    noise = signal.sosfilt(_sos("bandpass", (900.0, 9000.0), sample_rate), rng.standard_normal(n))
    snare = 0.55 * tone + 0.9 * noise * _exp_decay(n, sample_rate, 0.09)
    clap_noise = signal.sosfilt(_sos("bandpass", (900.0, 2600.0), sample_rate), rng.standard_normal(n))
    clap_env = np.zeros(n)
    for k, delay_s in enumerate((0.0, 0.011, 0.022)):
        d = int(delay_s * sample_rate)
        clap_env[d:] += _exp_decay(n - d, sample_rate, 0.006 if k < 2 else 0.07)
    snare += 0.8 * clap_noise * clap_env
    snare *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t - 0.25) / 0.1, 0.0, 1.0))
    # noise has a ~14 dB crest factor: saturate it (as a drum machine's output stage would) so the
    # snare's peaks stay under the kick's while it still sounds as loud
    snare /= np.max(np.abs(snare))
    snare = np.tanh(2.5 * snare) / np.tanh(2.5)
    # saturated noise has a low-frequency floor; cut it, as on any mixed snare, so the low end
    # belongs to the kick alone
    snare = signal.sosfilt(_sos("highpass", 170.0, sample_rate, order=4), snare)
    return snare / np.max(np.abs(snare))


def _hat(sample_rate: int, rng: np.random.Generator, *, decay_s: float) -> np.ndarray:
    """Hi-hat: noise plus six inharmonic square partials (the classic 808 metal), high-passed. (n,)."""
    n = int((decay_s * 6.0 + 0.01) * sample_rate)
    t = np.arange(n) / sample_rate
    metal = sum(np.sign(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)))
                for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    raw = 0.6 * rng.standard_normal(n) + 0.25 * metal
    hat = signal.sosfilt(_sos("highpass", 7000.0, sample_rate, order=4), raw)
    env = _exp_decay(n, sample_rate, decay_s)
    env *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t - decay_s * 5.0) / (decay_s + 0.01), 0.0, 1.0))
    hat *= env
    return hat / np.max(np.abs(hat))


def _crash(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Crash cymbal, stereo (independent noise per side): 1.4 s decay. (2, n)."""
    n = int(2.2 * sample_rate)
    t = np.arange(n) / sample_rate
    sos = _sos("highpass", 4500.0, sample_rate, order=4)
    env = _exp_decay(n, sample_rate, 0.55, attack_s=0.002)
    env *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t - 1.8) / 0.4, 0.0, 1.0))
    crash = np.stack([signal.sosfilt(sos, rng.standard_normal(n)) * env for _ in range(2)])
    return crash / np.max(np.abs(crash))


#: Peak of each drum sound relative to the kick's (≈ 1.0), chosen by short-term (50 ms) RMS:
#: snare ~5 dB under the kick, hats ~16 dB under, crash ~12 dB under.
SNARE_PEAK, HAT_PEAK, OPEN_HAT_PEAK, CRASH_PEAK = 0.65, 0.3, 0.24, 0.3


def render_drums(hits: Sequence[DrumHit], n_samples: int, sample_rate: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Render drum hits into a stereo drum bus, shape (2, n_samples), float64.

    Kick and snare sit in the centre, closed hats slightly left, open hats slightly right, crash
    wide. The snare gets a short room reverb; the whole bus a gentle glue compressor.
    """
    kick = _kick(sample_rate, rng)
    # a few variants of each noisy sound, picked at random per hit: enough variety to avoid a
    # machine-gun effect, far cheaper than synthesising every hit
    snares = [_snare(sample_rate, rng) for _ in range(4)]
    hats = [_hat(sample_rate, rng, decay_s=0.028) for _ in range(6)]
    open_hats = [_hat(sample_rate, rng, decay_s=0.11) for _ in range(4)]
    dry = np.zeros((2, n_samples))
    snare_bus = np.zeros((2, n_samples))
    for hit in hits:
        start = int(round(hit.time_s * sample_rate))
        v = hit.velocity
        if hit.kind == "kick":
            _add(dry, start, _pan(kick * v, 0.0))
        elif hit.kind == "snare":
            _add(snare_bus, start, _pan(snares[rng.integers(len(snares))] * v * SNARE_PEAK, 0.0))
        elif hit.kind == "hat":
            _add(dry, start, _pan(hats[rng.integers(len(hats))] * v * HAT_PEAK, -0.25))
        elif hit.kind == "open_hat":
            _add(dry, start, _pan(open_hats[rng.integers(len(open_hats))] * v * OPEN_HAT_PEAK, 0.3))
        elif hit.kind == "crash":
            _add(dry, start, _crash(sample_rate, rng) * v * CRASH_PEAK)
        else:  # pragma: no cover - the score is ours
            raise ValueError(f"unknown drum kind {hit.kind!r}")
    snare_bus = _fx(snare_bus, sample_rate,
                    pedalboard.Reverb(room_size=0.25, damping=0.6, wet_level=0.18, dry_level=1.0, width=0.8))
    bus = _fx(dry + snare_bus, sample_rate,
              pedalboard.Compressor(threshold_db=-10.0, ratio=2.5, attack_ms=8.0, release_ms=120.0))
    # soft-clip the bus, as producers clip drums: kick+snare coincide on 2 and 4 and would otherwise
    # set the peak ~5 dB above the lone kicks, leaving the drum stem quiet next to the others
    bus /= np.max(np.abs(bus))
    return np.tanh(2.0 * bus) / np.tanh(2.0)


# --------------------------------------------------------------------------------------------
# bass


def render_bass(notes: Sequence[Note], n_samples: int, sample_rate: int, *,
                cutoff_hz: Sequence[float] | None = None) -> np.ndarray:
    """Synth bass: saw + detuned square + sine sub through a ladder low-pass with a pluck envelope.

    ``cutoff_hz`` (one per note) is the filter's peak opening for that note. A per-sample filter
    envelope would need a hand-written recursive filter; instead two ladder-filtered renders (closed,
    open) are crossfaded by each note's decaying envelope, which sounds the same for a pluck.
    Returns shape (2, n_samples), mono in the centre.
    """
    # Free-running oscillators (phase carries on from note to note, as on an analog mono synth):
    # the frequency is held from one note's start to the next one's, and the amplitude envelope
    # gates it. Restarting the phase per note would also put a comb of 1/(note spacing) into the
    # spectrum and pull its peak off the note's pitch.
    starts = np.array([int(round(x.start_s * sample_rate)) for x in notes] or [0])
    pitches = np.array([x.pitch for x in notes] or [33], dtype=np.float64)
    held = np.clip(np.searchsorted(starts, np.arange(n_samples), side="right") - 1, 0, None)
    freq = midi_to_hz(pitches[held])
    amp = np.zeros(n_samples)
    mod = np.zeros(n_samples)  # 0 = filter closed, 1 = filter fully open
    for i, note in enumerate(notes):
        start = int(starts[i])
        n = int((note.duration_s + 0.03) * sample_rate)
        env = _envelope(n, sample_rate, attack_s=0.003, hold_s=note.duration_s, release_s=0.03,
                        decay_s=0.25, sustain=0.75)
        _add(amp, start, env * note.velocity)
        opening = 1.0 if cutoff_hz is None else float(cutoff_hz[i])
        _add(mod, start, opening * _exp_decay(n, sample_rate, 0.09, attack_s=0.002))
    saw = _polyblep_saw(freq, n_samples, sample_rate)
    square = (_polyblep_saw(freq * 1.003, n_samples, sample_rate)
              - _polyblep_saw(freq * 1.003, n_samples, sample_rate, 0.5))
    sub = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    osc = (0.5 * saw + 0.25 * square + 0.8 * sub) * amp
    mono2 = np.stack([osc, osc]).astype(np.float32)
    closed = _fx(mono2, sample_rate, pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF24,
                                                             cutoff_hz=180.0, resonance=0.2))
    opened = _fx(mono2, sample_rate, pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF24,
                                                             cutoff_hz=1400.0, resonance=0.35))
    mix = np.clip(mod, 0.0, 1.0)
    out = closed * (1.0 - mix) + opened * mix
    out = np.tanh(1.4 * out) / 1.4  # a little drive, as a bass amp would add
    return _fx(out, sample_rate, pedalboard.Compressor(threshold_db=-14.0, ratio=3.0, attack_ms=5.0,
                                                       release_ms=80.0))


# --------------------------------------------------------------------------------------------
# pad


def render_pad(chords: Sequence[Sequence[Note]], n_samples: int, sample_rate: int, *,
               cutoff_hz: np.ndarray, duck_gain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Warm pad: three detuned saws per chord tone, spread left/right, slow attack and release.

    ``cutoff_hz`` (n_samples,) automates a ladder low-pass (the intro's slowly opening filter);
    it is applied per 256-sample block with pedalboard keeping the filter state between blocks.
    ``duck_gain`` (n_samples,) is the side-chain pump applied after the chorus and reverb.
    Returns shape (2, n_samples).
    """
    out = np.zeros((2, n_samples))
    detune_cents = (-9.0, 0.0, 8.0)
    pans = (-0.7, 0.0, 0.7)
    for chord in chords:
        for note in chord:
            start = int(round(note.start_s * sample_rate))
            n = int((note.duration_s + 0.9) * sample_rate)
            env = _envelope(n, sample_rate, attack_s=0.35, hold_s=note.duration_s, release_s=0.8)
            f0 = float(midi_to_hz(note.pitch))
            for cents, pan in zip(detune_cents, pans, strict=True):
                saw = _polyblep_saw(f0 * 2.0 ** (cents / 1200.0), n, sample_rate, rng.uniform())
                _add(out, start, _pan(saw * env * note.velocity, pan))
    # automated filter, block by block
    lpf = pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF12, cutoff_hz=1000.0, resonance=0.15)
    block = 256
    x = np.ascontiguousarray(out, dtype=np.float32)
    filtered = np.empty_like(x)
    for b0 in range(0, n_samples, block):
        lpf.cutoff_hz = float(cutoff_hz[b0])
        filtered[:, b0:b0 + block] = lpf.process(x[:, b0:b0 + block], sample_rate, reset=(b0 == 0))
    wet = _fx(filtered, sample_rate,
              pedalboard.Chorus(rate_hz=0.35, depth=0.25, centre_delay_ms=9.0, feedback=0.0, mix=0.4),
              pedalboard.Reverb(room_size=0.8, damping=0.5, wet_level=0.35, dry_level=0.75, width=1.0))
    return wet * duck_gain


# --------------------------------------------------------------------------------------------
# lead "vocal"

# Soprano vowel formants (centre Hz, level dB), after the classic Csound formant tables; bandwidths
# are widened ×2 so a high voice (few harmonics under each formant) still sounds vowel-like.
_VOWELS: dict[str, tuple[tuple[float, float], ...]] = {
    "a": ((800.0, 0.0), (1150.0, -6.0), (2900.0, -20.0), (3900.0, -24.0)),
    "e": ((350.0, 0.0), (2000.0, -14.0), (2800.0, -15.0), (3600.0, -30.0)),
    "i": ((270.0, 0.0), (2140.0, -12.0), (2950.0, -20.0), (3900.0, -26.0)),
    "o": ((450.0, 0.0), (800.0, -8.0), (2830.0, -22.0), (3800.0, -26.0)),
    "u": ((325.0, 0.0), (700.0, -12.0), (2700.0, -28.0), (3800.0, -34.0)),
}


def render_lead(notes: Sequence[Note], n_samples: int, sample_rate: int,
                rng: np.random.Generator, *, tempo_bpm: float) -> np.ndarray:
    """A voice-like monophonic lead: glottal-ish saw with delayed vibrato and legato glides, shaped
    by a parallel vowel (formant) filter bank, a breath of noise, then compression, a dotted-eighth
    delay and a hall reverb. Returns shape (2, n_samples).
    """
    t = np.arange(n_samples) / sample_rate
    pitch = np.full(n_samples, float(notes[0].pitch) if notes else 69.0)
    amp = np.zeros(n_samples)
    vowel_w = {v: np.zeros(n_samples) for v in _VOWELS}
    vib_depth = np.zeros(n_samples)
    glide_s = 0.06
    prev_pitch = None
    for note in notes:
        s = int(round(note.start_s * sample_rate))
        n = int((note.duration_s + 0.12) * sample_rate)
        e = min(s + n, n_samples)
        seg = np.arange(e - s) / sample_rate
        if note.legato and prev_pitch is not None:
            k = np.clip(seg / glide_s, 0.0, 1.0)
            p = prev_pitch + (note.pitch - prev_pitch) * (0.5 - 0.5 * np.cos(np.pi * k))
        else:
            p = np.full(e - s, float(note.pitch))
        pitch[s:e] = p
        # short notes get no vibrato; long ones bloom into it after 180 ms, as singers do
        vib_depth[s:e] = np.clip((seg - 0.18) / 0.3, 0.0, 1.0) * (0.3 if note.duration_s > 0.4 else 0.0)
        env = _envelope(e - s, sample_rate, attack_s=0.02 if not note.legato else 0.008,
                        hold_s=note.duration_s - 0.02, release_s=0.09, decay_s=0.4, sustain=0.85)
        amp[s:e] = np.maximum(amp[s:e], env * note.velocity)
        vowel_w[note.vowel][s:e] = 1.0
        for v in vowel_w:
            if v != note.vowel:
                vowel_w[v][s:e] = 0.0
        prev_pitch = float(note.pitch)
    # smooth vowel changes over ~40 ms so the formants glide like a mouth, not a switch
    size = int(0.02 * sample_rate) | 1
    for v in vowel_w:  # two 20 ms box filters = a 40 ms triangle
        vowel_w[v] = ndimage.uniform_filter1d(ndimage.uniform_filter1d(vowel_w[v], size), size)
    vibrato_semitones = vib_depth * np.sin(2 * np.pi * 5.4 * t)
    freq = midi_to_hz(pitch + vibrato_semitones)
    src = _polyblep_saw(freq, n_samples, sample_rate)
    # extra spectral tilt: a glottal pulse falls ~12 dB/octave, a saw only 6
    src = signal.sosfilt(_sos("lowpass", 1800.0, sample_rate, order=1), src)
    breath = signal.sosfilt(_sos("bandpass", (1500.0, 7000.0), sample_rate), rng.standard_normal(n_samples))
    excitation = (src + 0.05 * breath) * amp
    voice = 0.12 * excitation  # a little of the raw source keeps the fundamental present
    for v, formants in _VOWELS.items():
        w = vowel_w[v]
        if not np.any(w > 1e-4):
            continue
        band = np.zeros(n_samples)
        for fc, level_db in formants:
            b, a = signal.iirpeak(fc, fc / 140.0 if fc < 1000 else 6.0, fs=sample_rate)
            band += 10.0 ** (level_db / 20.0) * signal.lfilter(b, a, excitation)
        voice += w * band
    beat_s = 60.0 / tempo_bpm
    return _fx(np.stack([voice, voice]), sample_rate,
               pedalboard.Compressor(threshold_db=-18.0, ratio=3.0, attack_ms=6.0, release_ms=90.0),
               pedalboard.Delay(delay_seconds=0.75 * beat_s, feedback=0.25, mix=0.14),
               pedalboard.Reverb(room_size=0.7, damping=0.55, wet_level=0.22, dry_level=0.85, width=1.0))
