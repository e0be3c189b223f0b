"""The demo song: a deterministic ~35 s electronic track in four stems, with its ground truth.

124 BPM in 4/4 (a bar is 1.935 s, so bars never land on round seconds), A minor, Am–F–C–G with one
chord per bar. Bars 1–8 "intro": pad with an opening filter, closed hats, a sparse bass, a hummed
"oo" line from bar 5 and a snare build in bar 8. Bars 9–16 "drop": four-on-the-floor kick, snare+clap
on 2 and 4, 16th hats with open hats on the off-beats, off-beat pluck bass, a pumping pad and the
sung lead. Bars 17–18 "outro": one last hit, and the chord ringing out.

The score (every time in the ground truth) does not depend on ``seed``; the seed only changes noise
and the small velocity variations, so tests may rely on the timeline for any seed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from bridge.demo.synth import DrumHit, Note, render_bass, render_drums, render_lead, render_pad
from bridge.errors import AudioError, RenderError

__all__ = [
    "DEMO_BEATS_PER_BAR",
    "DEMO_TEMPO_BPM",
    "STEM_FILE_WORDS",
    "STEM_NAMES",
    "DemoSong",
    "demo_stem_filename",
    "generate_demo_song",
    "ground_truth_dict",
    "write_demo_stems",
    "write_ground_truth",
]

DEMO_TEMPO_BPM = 124.0
DEMO_BEATS_PER_BAR = 4
_INTRO_BARS = 8
_DROP_BARS = 8
_OUTRO_BARS = 2  # one last hit, then a bar for the tails to ring out
_N_BARS = _INTRO_BARS + _DROP_BARS + _OUTRO_BARS

#: Stem keys, in the order they are written.
STEM_NAMES = ("drums", "bass", "other", "vocals")
#: The track word Ableton puts after the song name when exporting each stem.
STEM_FILE_WORDS = {"drums": "Drums", "bass": "Bass", "other": "Other", "vocals": "Vocals"}

#: Peak level each stem is normalised to (dBFS): all within −6…−3 dBFS, balanced by ear-by-numbers
#: (RMS in the drop: drums loudest, then bass, vocals, pad).
_PEAK_DBFS = {"drums": -4.0, "bass": -6.0, "other": -6.0, "vocals": -6.0}
#: Fader automation: the bass sits this much lower in the intro (its notes are long there).
_INTRO_BASS_DB = -5.0
_FADE_IN_S = 0.005
_FADE_OUT_S = 0.05

# i – VI – III – VII in A minor. (name, bass root MIDI pitch, pad voicing MIDI pitches)
_PROGRESSION = (
    ("Am", 33, (57, 60, 64, 67)),  # A1 root; Am7 voicing A3 C4 E4 G4
    ("F", 29, (53, 57, 60, 64)),   # F1; Fmaj7 F3 A3 C4 E4
    ("C", 36, (55, 60, 64, 67)),   # C2; C G3 C4 E4 G4
    ("G", 31, (55, 59, 62, 67)),   # G1; G G3 B3 D4 G4
)
_FINAL_CHORD = ("Am", 33, (57, 60, 64, 69))

_SECTION_PROMPTS = {
    "intro": "neon tunnel, deep blue, slow drifting fog, soft glow",
    "drop": "exploding magenta light, strobing neon city at night, fast motion",
    "outro": "fading violet embers, dark haze, stillness",
}

# The sung lead: (bar from 1, beat in bar from 0, length in beats, MIDI pitch, vowel, legato).
_LEAD_INTRO = (  # a hummed "oo" answer to the pad, bars 5–8
    (5, 0.0, 3.0, 76, "u", False), (6, 0.0, 3.0, 72, "u", False),
    (7, 0.0, 2.0, 76, "o", False), (7, 2.0, 1.5, 79, "o", True),
    (8, 0.0, 2.5, 74, "u", False),
)
_LEAD_DROP = (
    # phrase 1, bars 9–12
    (9, 0.0, 1.0, 69, "a", False), (9, 1.0, 0.5, 72, "e", True), (9, 1.5, 0.5, 74, "e", True),
    (9, 2.0, 1.5, 76, "a", True),
    (10, 0.0, 0.5, 76, "o", False), (10, 0.5, 0.5, 74, "e", True), (10, 1.0, 1.5, 72, "a", True),
    (10, 2.5, 1.0, 69, "o", True),
    (11, 0.0, 1.0, 72, "a", False), (11, 1.0, 0.5, 74, "e", True), (11, 1.5, 1.0, 76, "i", True),
    (11, 2.5, 1.0, 79, "a", True),
    (12, 0.0, 2.0, 74, "o", False), (12, 2.0, 1.0, 71, "u", True),
    # phrase 2, bars 13–16
    (13, 0.5, 0.5, 69, "a", False), (13, 1.0, 0.5, 72, "e", True), (13, 1.5, 0.5, 76, "e", True),
    (13, 2.0, 1.5, 81, "a", True),
    (14, 0.0, 0.5, 79, "o", False), (14, 0.5, 0.5, 77, "e", True), (14, 1.0, 1.0, 76, "a", True),
    (14, 2.0, 1.5, 72, "o", True),
    (15, 0.0, 1.0, 76, "a", False), (15, 1.0, 0.5, 74, "e", True), (15, 1.5, 0.5, 72, "e", True),
    (15, 2.0, 1.0, 74, "o", True), (15, 3.0, 1.0, 76, "a", True),
    (16, 0.0, 1.5, 74, "o", False), (16, 1.5, 0.5, 71, "e", True),
    (17, 0.0, 3.0, 69, "a", False),
)

#: General-MIDI drum numbers, for the ground truth's note lists.
_GM_DRUM = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "crash": 49}
#: Drum kinds → ground-truth class (same class names as ../shared/data/songs/*/ground_truth.json).
_DRUM_CLASS = {"kick": "kick", "snare": "snare", "hat": "hihat", "open_hat": "hihat", "crash": "cymbal"}


@dataclass(frozen=True, eq=False)
class DemoSong:
    """The demo song's audio and everything known about it (the ground truth many tests use).

    stems: "drums", "bass", "other", "vocals" → float32, shape (2, n_samples), all the same length.
    beats_s, downbeats_s: every beat / first beat of every bar, seconds, shape (n,), sorted.
    onsets_s: stem → note/hit start times in seconds, sorted, unique, shape (n,).
    drum_onsets_s: "kick", "snare", "hihat" (closed + open), "cymbal" → hit times in seconds.
    notes: stem → array (n_notes, 4) of [start_s, end_s, midi_pitch, velocity 1..127]; drums use
        General-MIDI drum numbers (36 kick, 38 snare, 42/46 closed/open hat, 49 crash).
    sections: (start_s, end_s, name), contiguous, covering the whole song.
    chords: (start_s, end_s, chord name such as "Am" or "F"), one per bar.
    section_prompts: section name → a short visual prompt (for the diffusion engine).
    """

    stems: dict[str, np.ndarray]
    sample_rate: int
    tempo_bpm: float
    beats_per_bar: int
    duration_seconds: float
    beats_s: np.ndarray
    downbeats_s: np.ndarray
    onsets_s: dict[str, np.ndarray]
    drum_onsets_s: dict[str, np.ndarray]
    notes: dict[str, np.ndarray]
    sections: list[tuple[float, float, str]]
    chords: list[tuple[float, float, str]]
    section_prompts: dict[str, str] = field(default_factory=dict)
    seed: int = 7
    key: str = "A minor"

    @property
    def n_samples(self) -> int:
        return int(self.stems["drums"].shape[-1])

    @property
    def kick_s(self) -> np.ndarray:
        return self.drum_onsets_s["kick"]

    @property
    def snare_s(self) -> np.ndarray:
        return self.drum_onsets_s["snare"]

    @property
    def hat_s(self) -> np.ndarray:
        return self.drum_onsets_s["hihat"]

    def mix(self) -> np.ndarray:
        """Plain sum of the stems, float32 (2, n_samples) (no limiter: the exporter has one)."""
        return np.sum([self.stems[k] for k in STEM_NAMES], axis=0, dtype=np.float64).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the score (pure: no audio, no randomness)


@dataclass(frozen=True)
class _Score:
    drums: list[DrumHit]
    bass: list[Note]
    bass_cutoff: list[float]
    pad: list[list[Note]]
    lead: list[Note]


def _beat_s(bar: int, beat: float, *, beat_len_s: float) -> float:
    """Time of ``beat`` (from 0) in ``bar`` (from 1)."""
    return ((bar - 1) * DEMO_BEATS_PER_BAR + beat) * beat_len_s


def _chord_of_bar(bar: int) -> tuple[str, int, tuple[int, ...]]:
    return _FINAL_CHORD if bar > _INTRO_BARS + _DROP_BARS else _PROGRESSION[(bar - 1) % len(_PROGRESSION)]


def _score(tempo_bpm: float) -> _Score:
    b = 60.0 / tempo_bpm
    swing_s = 0.1 * b / 4  # the off 16ths come 10 % of a 16th late: a light house shuffle
    drop0, outro = _INTRO_BARS + 1, _INTRO_BARS + _DROP_BARS + 1
    drums: list[DrumHit] = []
    for bar in range(1, outro):
        in_drop = bar >= drop0
        for sixteenth in range(16):
            beat = sixteenth / 4
            t = _beat_s(bar, beat, beat_len_s=b) + (swing_s if sixteenth % 2 else 0.0)
            on_beat, off_eighth = sixteenth % 4 == 0, sixteenth % 4 == 2
            if in_drop:
                if on_beat:
                    drums.append(DrumHit(t, "kick", 1.0))
                if sixteenth in (4, 12):
                    drums.append(DrumHit(t, "snare", 1.0))
                if off_eighth:
                    drums.append(DrumHit(t, "open_hat", 0.9))
                else:
                    drums.append(DrumHit(t, "hat", 0.85 if on_beat else 0.5))
            else:
                if sixteenth % 2 == 0:  # 8ths, accents on the beat so the pulse is clear before the kick
                    drums.append(DrumHit(t, "hat", 0.5 if off_eighth else 0.8))
                elif bar > 4:  # ghost 16ths join in the second half of the intro
                    drums.append(DrumHit(t, "hat", 0.22))
                if bar == _INTRO_BARS and sixteenth >= 8:  # snare build into the drop
                    drums.append(DrumHit(t, "snare", 0.2 + 0.6 * (sixteenth - 8) / 7))
                elif bar == _INTRO_BARS and sixteenth in (4, 6):
                    drums.append(DrumHit(t, "snare", 0.15))
    drums.append(DrumHit(_beat_s(drop0, 0, beat_len_s=b), "crash", 1.0))
    drums.append(DrumHit(_beat_s(outro, 0, beat_len_s=b), "kick", 0.85))
    drums.append(DrumHit(_beat_s(outro, 0, beat_len_s=b), "crash", 1.0))
    drums.sort(key=lambda h: (h.time_s, h.kind))

    bass: list[Note] = []
    cutoff: list[float] = []
    for bar in range(1, outro + 1):
        _, root, _ = _chord_of_bar(bar)
        if bar == outro:
            bass.append(Note(_beat_s(bar, 0, beat_len_s=b), 3.0 * b, root, 0.8))
            cutoff.append(0.5)
        elif bar < drop0:  # sparse: a long root on 1, a short one on the "and" of 3
            bass.append(Note(_beat_s(bar, 0, beat_len_s=b), 1.5 * b, root, 0.6))
            bass.append(Note(_beat_s(bar, 2.5, beat_len_s=b), 0.9 * b, root, 0.45))
            cutoff += [0.15 + 0.05 * (bar - 1) / 7, 0.1]
        else:  # off-beat 8ths locking between the kicks, an octave pickup at the end of each phrase
            for k in range(4):
                pitch = root + 12 if (bar % 4 == 0 and k == 3) else root
                bass.append(Note(_beat_s(bar, k + 0.5, beat_len_s=b), 0.4 * b, pitch, 1.0))
                cutoff.append(0.55 if k % 2 else 0.4)

    pad: list[list[Note]] = []
    for bar in range(1, outro + 1):
        _, _, voicing = _chord_of_bar(bar)
        # the last chord is held 3 beats and released, so it has died away before the file ends
        length = (3.0 if bar == outro else DEMO_BEATS_PER_BAR) * b
        vel = 0.9 if bar < drop0 else 1.0
        pad.append([Note(_beat_s(bar, 0, beat_len_s=b), length, p, vel) for p in voicing])

    lead: list[Note] = []
    for bar, beat, length, pitch, vowel, legato in _LEAD_INTRO + _LEAD_DROP:
        vel = 0.4 if bar < drop0 else 1.0
        lead.append(Note(_beat_s(bar, beat, beat_len_s=b), length * b, pitch, vel, vowel, legato))
    return _Score(drums, bass, cutoff, pad, lead)


# --------------------------------------------------------------------------------------------
# generation


def _db(x: float) -> float:
    return 10.0 ** (x / 20.0)


def _master_stem(x: np.ndarray, sample_rate: int, peak_dbfs: float) -> np.ndarray:
    """Remove DC (20 Hz high-pass), fade the very ends, normalise to ``peak_dbfs``; float32."""
    x = signal.sosfilt(signal.butter(2, 20.0, btype="highpass", fs=sample_rate, output="sos"), x, axis=-1)
    n = x.shape[-1]
    fade_in = int(_FADE_IN_S * sample_rate)
    fade_out = int(_FADE_OUT_S * sample_rate)
    x[:, :fade_in] *= np.linspace(0.0, 1.0, fade_in, endpoint=False)
    x[:, n - fade_out:] *= np.linspace(1.0, 0.0, fade_out)
    peak = float(np.max(np.abs(x)))
    if peak > 0.0:
        x *= _db(peak_dbfs) / peak
    return x.astype(np.float32)


def _duck_curve(beats_s: np.ndarray, start_s: float, end_s: float, n: int, sample_rate: int) -> np.ndarray:
    """Side-chain pump for the pad: −8 dB dip on every beat of the drop, back up over ~0.3 beat."""
    gain = np.ones(n)
    depth = 1.0 - _db(-8.0)
    beat_len = float(beats_s[1] - beats_s[0])
    for t in beats_s[(beats_s >= start_s - 1e-9) & (beats_s < end_s - 1e-9)]:
        s = int(round(t * sample_rate))
        m = min(int(0.6 * beat_len * sample_rate), n - s)
        u = np.arange(m) / sample_rate
        attack = np.clip(u / 0.004, 0.0, 1.0)  # 4 ms into the dip: no click
        recover = np.clip(u / (0.45 * beat_len), 0.0, 1.0)
        dip = depth * attack * (0.5 + 0.5 * np.cos(np.pi * recover))
        gain[s:s + m] = np.minimum(gain[s:s + m], 1.0 - dip)
    return gain


def _times(values: list[float]) -> np.ndarray:
    return np.unique(np.round(np.asarray(values, dtype=np.float64), 9))


def generate_demo_song(*, sample_rate: int = 44100, seed: int = 7) -> DemoSong:
    """Render the demo song.

    Deterministic: the same ``sample_rate`` and ``seed`` give the same bytes on every run (a seeded
    ``numpy.random.default_rng`` is the only source of randomness, pedalboard effects start fresh).
    The timeline (beats, onsets, sections, chords) is the same for every seed.

    Parameters
    ----------
    sample_rate : int
        Output rate in Hz, 22050…192000.
    seed : int
        Seed for noise and velocity variations (≥ 0).

    Returns
    -------
    DemoSong
        Four float32 stereo stems of shape (2, n_samples), ~34.8 s, and their ground truth.

    Raises
    ------
    AudioError
        ``sample_rate`` or ``seed`` out of range.
    """
    if not isinstance(sample_rate, (int, np.integer)) or not 22050 <= int(sample_rate) <= 192000:
        raise AudioError(
            f"sample_rate {sample_rate!r} is not usable for the demo song: hi-hats need content up to "
            "~10 kHz; use an integer rate between 22050 and 192000 Hz, e.g. 44100 or 48000"
        )
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AudioError(f"seed {seed!r} must be a non-negative integer, e.g. 7")
    sample_rate = int(sample_rate)
    rng = np.random.default_rng(int(seed))

    tempo = DEMO_TEMPO_BPM
    beat_len = 60.0 / tempo
    bar_len = beat_len * DEMO_BEATS_PER_BAR
    duration = _N_BARS * bar_len
    n = int(round(duration * sample_rate))
    beats = np.arange(_N_BARS * DEMO_BEATS_PER_BAR) * beat_len
    downbeats = beats[::DEMO_BEATS_PER_BAR].copy()
    drop_s, outro_s = _INTRO_BARS * bar_len, (_INTRO_BARS + _DROP_BARS) * bar_len

    score = _score(tempo)
    # a little life in the velocities; timing stays on the grid
    hits = [DrumHit(h.time_s, h.kind, h.velocity * (1.0 if h.kind in ("kick", "crash") else
                                                    float(rng.uniform(0.88, 1.0))))
            for h in score.drums]

    drums = render_drums(hits, n, sample_rate, rng)
    bass = render_bass(score.bass, n, sample_rate, cutoff_hz=score.bass_cutoff)
    t = np.arange(n) / sample_rate
    # intro: the pad's filter opens from 500 Hz to 3.2 kHz (exponentially), then stays open
    cutoff = np.where(t < drop_s, 500.0 * (3200.0 / 500.0) ** np.clip(t / drop_s, 0.0, 1.0), 3200.0)
    duck = _duck_curve(beats, drop_s, outro_s, n, sample_rate)
    pad = render_pad(score.pad, n, sample_rate, cutoff_hz=cutoff, duck_gain=duck, rng=rng)
    lead = render_lead(score.lead, n, sample_rate, rng, tempo_bpm=tempo)

    # the intro's last bass note ends a beat before the drop, so this step never cuts a note
    bass *= np.where(t < drop_s - beat_len / 2, _db(_INTRO_BASS_DB), 1.0)
    raw = {"drums": drums, "bass": bass, "other": pad, "vocals": lead}
    stems = {k: _master_stem(raw[k], sample_rate, _PEAK_DBFS[k]) for k in STEM_NAMES}

    drum_onsets: dict[str, list[float]] = {"kick": [], "snare": [], "hihat": [], "cymbal": []}
    for h in score.drums:
        drum_onsets[_DRUM_CLASS[h.kind]].append(h.time_s)
    drum_notes = np.array([[h.time_s, h.time_s + 0.1, _GM_DRUM[h.kind], round(127 * v.velocity)]
                           for h, v in zip(score.drums, hits, strict=True)], dtype=np.float64)

    def note_array(notes: list[Note]) -> np.ndarray:
        return np.array([[x.start_s, x.start_s + x.duration_s, x.pitch, round(127 * x.velocity)]
                         for x in notes], dtype=np.float64).reshape(-1, 4)

    pad_notes = [x for chord in score.pad for x in chord]
    notes = {"drums": drum_notes, "bass": note_array(score.bass), "other": note_array(pad_notes),
             "vocals": note_array(score.lead)}
    onsets = {k: _times(list(v[:, 0])) for k, v in notes.items()}
    end_s = n / sample_rate  # the file's length (the grid's end rounded to a whole sample)
    sections = [(0.0, drop_s, "intro"), (drop_s, outro_s, "drop"), (outro_s, end_s, "outro")]
    chords = [(float(downbeats[i]), float(min(downbeats[i] + bar_len, end_s)), _chord_of_bar(i + 1)[0])
              for i in range(_N_BARS)]
    return DemoSong(
        stems=stems, sample_rate=sample_rate, tempo_bpm=tempo, beats_per_bar=DEMO_BEATS_PER_BAR,
        duration_seconds=end_s, beats_s=beats, downbeats_s=downbeats, onsets_s=onsets,
        drum_onsets_s={k: _times(v) for k, v in drum_onsets.items()}, notes=notes,
        sections=sections, chords=chords, section_prompts=dict(_SECTION_PROMPTS), seed=int(seed),
    )


# --------------------------------------------------------------------------------------------
# writing


def demo_stem_filename(stem: str, *, song_name: str = "Demo Song") -> str:
    """The file name Ableton gives an exported stem: "Demo Song Drums.wav"."""
    return f"{song_name} {STEM_FILE_WORDS[stem]}.wav"


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write via a temp file in the same folder, then rename: a reader never sees half a file.

    The temp file is created by ``write`` itself (not mkstemp, which would make it owner-only),
    so the result gets the user's usual permissions.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_demo_stems(song: DemoSong, out_dir: Path, *, song_name: str = "Demo Song") -> list[Path]:
    """Write one 24-bit PCM WAV per stem, named as Ableton exports them ("Demo Song Drums.wav").

    Files are written atomically (temp name, then rename). ``out_dir`` is created if needed.
    Returns the paths in :data:`STEM_NAMES` order.

    Raises
    ------
    RenderError
        A file could not be written (the message names it and the OS error).
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stem in STEM_NAMES:
            path = out_dir / demo_stem_filename(stem, song_name=song_name)
            audio = np.clip(song.stems[stem], -1.0, 1.0).T
            _atomic_write(path, lambda p, a=audio: sf.write(p, a, song.sample_rate, subtype="PCM_24",
                                                          format="WAV"))
            paths.append(path)
    except OSError as exc:
        raise RenderError(
            f"could not write the demo stems to {str(out_dir)!r}: {exc}; choose a folder you can write "
            "to with enough free space (~25 MB)"
        ) from exc
    return paths


def _r(x: float) -> float:
    return round(float(x), 6)


def ground_truth_dict(song: DemoSong, *, song_name: str = "Demo Song") -> dict:
    """The ground truth as a JSON-ready dict, in the key style of ../shared/data/songs/*/ground_truth.json."""
    stems: dict[str, dict] = {}
    for stem in STEM_NAMES:
        x = song.stems[stem].astype(np.float64)
        entry: dict = {
            "file": demo_stem_filename(stem, song_name=song_name),
            "onsets": [_r(t) for t in song.onsets_s[stem]],
            "n_notes": int(len(song.notes[stem])),
            "notes": [[_r(a), _r(b), int(p), int(v)] for a, b, p, v in song.notes[stem]],
            "rms_dbfs": round(float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)), 2),
            "peak_dbfs": round(float(20 * np.log10(np.max(np.abs(x)) + 1e-12)), 2),
        }
        if stem == "drums":
            entry["onsets_by_class"] = {k: [_r(t) for t in v] for k, v in song.drum_onsets_s.items()}
        stems[stem] = entry
    n_beats = len(song.beats_s)
    return {
        "song_id": "stembridge_demo",
        "title": song_name,
        "description": (f"stembridge's synthesized demo song (seed {song.seed}): {song.key}, "
                        f"{song.tempo_bpm:g} BPM, intro / drop / outro."),
        "duration_s": _r(song.duration_seconds),
        "n_samples": song.n_samples,
        "sample_rate": song.sample_rate,
        "channels": 2,
        "bit_depth": 24,
        "tempo_map": [[0.0, float(song.tempo_bpm)]],
        "time_signatures": [[0.0, song.beats_per_bar, 4]],
        "beats": [_r(t) for t in song.beats_s],
        "beat_in_bar": [int(i % song.beats_per_bar) + 1 for i in range(n_beats)],
        "downbeats": [_r(t) for t in song.downbeats_s],
        "onsets_all": [_r(t) for t in np.unique(np.concatenate([song.onsets_s[k] for k in STEM_NAMES]))],
        "stems": stems,
        "sections": [[_r(a), _r(b), name] for a, b, name in song.sections],
        "section_prompts": dict(song.section_prompts),
        "chords": [[_r(a), _r(b), name] for a, b, name in song.chords],
        "key": song.key,
        "time_base": ("audio: seconds from the first sample of each stem file; an event at time t "
                      "starts at sample round(t * sample_rate); beats are exactly 60/tempo apart"),
        "render": {"generator": "bridge.demo.generate_demo_song", "seed": song.seed,
                   "fade_in_s": _FADE_IN_S, "fade_out_s": _FADE_OUT_S},
    }


def write_ground_truth(song: DemoSong, path: Path, *, song_name: str = "Demo Song") -> Path:
    """Write the ground truth JSON (beats, downbeats, onsets per stem, sections, tempo) atomically.

    Raises
    ------
    RenderError
        The file could not be written.
    """
    path = Path(path)
    text = json.dumps(ground_truth_dict(song, song_name=song_name), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    except OSError as exc:
        raise RenderError(
            f"could not write the demo ground truth {str(path)!r}: {exc}; choose a writable folder"
        ) from exc
    return path
