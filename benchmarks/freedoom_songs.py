"""A larger held-out test set: Freedoom's MIDI songs rendered to stems with FluidSynth, ground truth from the MIDI.

The shared songs are eight excerpts; tuning on them and checking on them cannot tell a tracker that
generalises from one that fits eight songs. Debian ships Freedoom (``freedoom``: 67 MIDI songs in
``freedoom1.wad`` / ``freedoom2.wad``, BSD-3-Clause), FluidSynth and a General MIDI SoundFont
(``fluid-soundfont-gm``, MIT). From them this module builds, once, a cached set of excerpts:

- stems by General MIDI rule, as the shared songs were made: channel 10 → ``drums``, programs
  32–39 → ``bass``, everything else → ``other``; each stem rendered by FluidSynth on its own;
- beats and downbeats from the MIDI's own tempo map and time signatures (x/8 with a numerator
  divisible by 3 counts dotted quarters, as the shared ground truth does for 6/8 and 12/8);
- one 30-second excerpt per song, starting at a seeded random time inside its first minute (not
  at a bar line: a tracker must not rely on where a file starts).

Songs already among the shared songs (E1M4, E1M7, E2M6 and MAP15's D_RUNNI2) are left out.
Split: ``freedoom1`` songs are ``dev`` (looked at while developing), ``freedoom2`` songs ``held``
(only ever checked).

Needs ``apt-get install freedoom fluidsynth fluid-soundfont-gm``; without them :func:`freedoom_items`
returns [] and says why. Nothing here is used by the test suite.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WADS = (Path("/usr/share/games/doom/freedoom1.wad"), Path("/usr/share/games/doom/freedoom2.wad"))
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CACHE = Path.home() / ".cache" / "stembridge-bench" / "freedoom"
#: Lumps that are (versions of) songs in ../shared/data/songs.
SHARED = {"freedoom1_D_E1M4", "freedoom1_D_E1M7", "freedoom1_D_E2M6", "freedoom2_D_RUNNI2"}
EXCERPT_S = 30.0
RENDER_S = 95.0
GENERATOR_VERSION = "1"


def missing() -> str | None:
    """Why the set cannot be built here, or None."""
    if not all(w.exists() for w in WADS):
        return "Freedoom's WADs are not installed (apt-get install freedoom)"
    if shutil.which("fluidsynth") is None:
        return "fluidsynth is not installed (apt-get install fluidsynth)"
    if not SOUNDFONT.exists():
        return f"no General MIDI SoundFont at {SOUNDFONT} (apt-get install fluid-soundfont-gm)"
    return None


def midi_lumps() -> dict[str, bytes]:
    """name → Standard MIDI File bytes of every music lump (D_*) in the WADs (the WAD directory format)."""
    out = {}
    for wad in WADS:
        data = wad.read_bytes()
        _, n, table = struct.unpack("<4sii", data[:12])
        for i in range(n):
            pos, size, raw = struct.unpack("<ii8s", data[table + 16 * i: table + 16 * i + 16])
            name = raw.rstrip(b"\0").decode("ascii", "replace")
            lump = data[pos:pos + size]
            if name.startswith("D_") and lump[:4] == b"MThd":
                out[f"{wad.stem}_{name}"] = lump
    return out


def _tick_seconds(mid) -> tuple[np.ndarray, np.ndarray]:
    """(tempo-change ticks, seconds at those ticks, tempo µs/beat) as a piecewise-linear map."""
    changes = [(0, 500000)]
    for tick, msg in _merged(mid):
        if msg.type == "set_tempo":
            if tick == changes[-1][0]:
                changes[-1] = (tick, msg.tempo)
            else:
                changes.append((tick, msg.tempo))
    ticks = np.array([t for t, _ in changes], float)
    tempi = np.array([v for _, v in changes], float)
    secs = np.zeros_like(ticks)
    for i in range(1, len(ticks)):
        secs[i] = secs[i - 1] + (ticks[i] - ticks[i - 1]) * tempi[i - 1] / 1e6 / mid.ticks_per_beat
    return ticks, secs, tempi


def _merged(mid):
    """(absolute tick, message) over all tracks, in time order."""
    events = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            events.append((tick, msg))
    events.sort(key=lambda e: e[0])
    return events


def ground_truth(mid, end_s: float) -> dict:
    """Beats (s), beat-in-bar and meter label from the MIDI's tempo map and time signatures."""
    ticks, secs, tempi = _tick_seconds(mid)
    tpb = mid.ticks_per_beat

    def to_s(tick: float) -> float:
        i = int(np.searchsorted(ticks, tick, side="right") - 1)
        return float(secs[i] + (tick - ticks[i]) * tempi[i] / 1e6 / tpb)

    sigs = [(0, 4, 4)]
    for tick, msg in _merged(mid):
        if msg.type == "time_signature":
            entry = (tick, msg.numerator, msg.denominator)
            if tick == sigs[-1][0]:
                sigs[-1] = entry
            else:
                sigs.append(entry)
    beats, in_bar, labels = [], [], set()
    for k, (start, num, den) in enumerate(sigs):
        stop = sigs[k + 1][0] if k + 1 < len(sigs) else float("inf")
        compound = den == 8 and num % 3 == 0 and num > 3
        beat_ticks = tpb * 4 / den * (3 if compound else 1)
        per_bar = num // 3 if compound else num
        labels.add(f"{num}/{den}")
        tick, j = float(start), 0
        while tick < stop:
            t = to_s(tick)
            if t > end_s:
                break
            beats.append(t)
            in_bar.append(j % per_bar + 1)
            j += 1
            tick += beat_ticks
    return {"beats": np.array(beats), "beat_in_bar": np.array(in_bar),
            "meter": next(iter(labels)) if len(labels) == 1 else None}


def split_stems(mid) -> dict[str, object]:
    """role → a MidiFile with the tempo/meter track and that role's channels (GM program rule)."""
    import mido

    program = {}
    for _, msg in _merged(mid):
        if msg.type == "program_change" and msg.channel not in program:
            program[msg.channel] = msg.program

    def role(channel: int) -> str:
        if channel == 9:
            return "drums"
        return "bass" if 32 <= program.get(channel, 0) <= 39 else "other"

    out = {}
    for name in ("drums", "bass", "other"):
        stem = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
        has_notes = False
        for track in mid.tracks:
            new = mido.MidiTrack()
            pending = 0
            for msg in track:
                pending += msg.time
                keep = msg.is_meta or not hasattr(msg, "channel") or role(msg.channel) == name
                if keep:
                    new.append(msg.copy(time=pending))
                    pending = 0
                    has_notes |= msg.type == "note_on" and getattr(msg, "velocity", 0) > 0 and not msg.is_meta
            stem.tracks.append(new)
        if has_notes:
            out[name] = stem
    return out


def _render(stem_mid, wav: Path, sample_rate: int) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stem.mid"
        stem_mid.save(path)
        subprocess.run(["fluidsynth", "-ni", "-g", "0.5", "-F", str(wav),
                        "-r", str(sample_rate), str(SOUNDFONT), str(path)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return audio.mean(axis=1)


def build(sample_rate: int, *, limit: int | None = None, progress=print) -> list[dict]:
    """Render (or load from the cache) every excerpt; each a dict with name, split, stems, beats…"""
    import mido

    reason = missing()
    if reason:
        progress(f"freedoom set skipped: {reason}")
        return []
    CACHE.mkdir(parents=True, exist_ok=True)
    items = []
    lumps = {k: v for k, v in sorted(midi_lumps().items()) if k not in SHARED}
    for n, (name, data) in enumerate(lumps.items()):
        if limit is not None and len(items) >= limit:
            break
        key = hashlib.sha1(data + f"{sample_rate}/{GENERATOR_VERSION}".encode()).hexdigest()[:12]
        path = CACHE / f"{name}-{key}.npz"
        if not path.exists():
            progress(f"rendering {name} ({n + 1}/{len(lumps)})")
            mid = mido.MidiFile(file=__import__("io").BytesIO(data))
            stems = {}
            with tempfile.TemporaryDirectory() as tmp:
                for role, stem_mid in split_stems(mid).items():
                    stems[role] = _render(stem_mid, Path(tmp) / f"{role}.wav", sample_rate)
            length = max((a.shape[0] for a in stems.values()), default=0)
            duration = min(length / sample_rate, RENDER_S)
            gt = ground_truth(mid, duration)
            rng = np.random.default_rng(int(key, 16) % 2**32)
            latest = max(0.0, min(60.0, duration - EXCERPT_S))
            start = float(rng.uniform(0.0, latest)) if latest > 0 else 0.0
            a, b = int(start * sample_rate), int((start + EXCERPT_S) * sample_rate)
            cut = {r: np.pad(x, (0, max(0, length - x.shape[0])))[a:b].astype(np.float32) for r, x in stems.items()}
            sel = (gt["beats"] >= start) & (gt["beats"] < start + EXCERPT_S)
            np.savez_compressed(path, roles=list(cut), **{f"stem_{r}": x for r, x in cut.items()},
                                beats=gt["beats"][sel] - start, in_bar=gt["beat_in_bar"][sel],
                                meter=str(gt["meter"]), start_s=start)
        z = np.load(path, allow_pickle=False)
        roles = [str(r) for r in z["roles"]]
        beats = z["beats"]
        items.append({
            "name": f"fd:{name.split('_', 1)[1]}", "split": "dev" if name.startswith("freedoom1") else "held",
            "stems": [(r, r, z[f"stem_{r}"]) for r in roles],
            "beats": beats, "downbeats": beats[z["in_bar"] == 1],
            "meter": None if str(z["meter"]) == "None" else str(z["meter"]),
            "has_drums": "drums" in roles and float(np.abs(z["stem_drums"]).max()) > 1e-3,
        })
    return items


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE

    got = build(ANALYSIS_SAMPLE_RATE)
    for it in got:
        print(it["name"], it["split"], it["meter"], len(it["beats"]), "drums" if it["has_drums"] else "no drums")
