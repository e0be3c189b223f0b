"""A larger held-out test set: Freedoom's MIDI songs rendered to stems with FluidSynth, ground truth from the MIDI.

The shared songs are eight excerpts; tuning on them and checking on them cannot tell a tracker that
generalises from one that fits eight songs. Debian ships Freedoom (``freedoom``: 67 MIDI songs in
``freedoom1.wad`` / ``freedoom2.wad``, BSD-3-Clause), FluidSynth and a General MIDI SoundFont
(``fluid-soundfont-gm``, MIT). From them this module builds, once, a cached set of excerpts:

- stems by General MIDI rule, as the shared songs were made: channel 10 → ``drums``, programs
  32–39 → ``bass``, everything else → ``other``; each stem rendered by FluidSynth on its own;
- beats and downbeats from the MIDI's own tempo map and time signatures (x/8 with a numerator
  divisible by 3 counts dotted quarters, as the shared ground truth does for 6/8 and 12/8);
- ``EXCERPTS`` 30-second excerpts per song, starting at seeded random times inside its first
  ``RENDER_S`` seconds (not at bar lines: a tracker must not rely on where a file starts). One
  excerpt per song is too noisy to compare trackers: the same song passes from one start and
  fails from another.

Some lumps were converted from Doom's MUS format, whose MIDI carries no bar structure (a fixed
95 BPM at 89 ticks per beat): there fewer than ``MIN_GRID_SHARE`` of the drum notes fall on the
notated 16th grid (25–32 % against ≥ 40 % for every other song), so the "ground truth" is not the
music's beat. :func:`build` marks them ``has_grid=False`` and the benchmark leaves them out.

Songs already among the shared songs (E1M4, E1M7, E2M6 and MAP15's D_RUNNI2) are left out.
Split: ``freedoom1`` songs are ``dev`` (looked at while developing), ``freedoom2`` songs ``held``
(only ever checked).

Needs ``apt-get install freedoom fluidsynth fluid-soundfont-gm``; without them :func:`freedoom_items`
returns [] and says why. Nothing here is used by the test suite.

The same pipeline builds a second, wholly held-out collection (``build(..., collection="openmsx")``):
OpenTTD's OpenMSX music set (``apt-get install openttd-openmsx``: 32 hand-sequenced General MIDI
songs by several composers, GPL-2.0, see ``/usr/share/doc/openttd-openmsx/copyright``), written
for a different game, in other styles (boogie, blues, swing, marches, 5/4 and 6/4 bars, tempo
ramps). It was added to check the tracker, never to tune it: every excerpt is ``held``. Its
``midnight_snow_run`` is left out, because it is among the songs kept aside to check this project
(``../shared/data/songs/PROVENANCE.txt``, song 04).
"""

from __future__ import annotations

import hashlib
import io
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
OPENMSX = Path("/usr/share/games/openttd/baseset/openmsx")
#: OpenMSX songs named in ../shared/data/songs/PROVENANCE.txt (kept aside to check the project).
OPENMSX_SHARED = {"openmsx_midnight_snow_run"}
EXCERPT_S = 30.0
RENDER_S = 95.0
GENERATOR_VERSION = "3"
EXCERPTS = 3
MIN_GRID_SHARE = 0.35


def missing(collection: str = "freedoom") -> str | None:
    """Why the set cannot be built here, or None."""
    if collection == "freedoom" and not all(w.exists() for w in WADS):
        return "Freedoom's WADs are not installed (apt-get install freedoom)"
    if collection == "openmsx" and not any(OPENMSX.glob("*.mid")):
        return f"no OpenMSX songs in {OPENMSX} (apt-get install openttd-openmsx)"
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


def openmsx_songs() -> dict[str, bytes]:
    """name → Standard MIDI File bytes of every OpenMSX song but the ones kept aside."""
    songs = {f"openmsx_{p.stem}": p.read_bytes() for p in sorted(OPENMSX.glob("*.mid"))}
    return {k: v for k, v in songs.items() if k not in OPENMSX_SHARED}


def _tick_seconds(mid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tempo-change ticks, seconds at those ticks, tempo in µs per beat): a piecewise-linear map."""
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


def grid_share(mid, beats: np.ndarray) -> float:
    """Share of the drum notes (channel 10) within 20 ms of the notated 16th grid, up to the last beat."""
    ticks, secs, tempi = _tick_seconds(mid)
    onsets = []
    for tick, msg in _merged(mid):
        if msg.type == "note_on" and msg.velocity > 0 and msg.channel == 9:
            i = int(np.searchsorted(ticks, tick, side="right") - 1)
            onsets.append(secs[i] + (tick - ticks[i]) * tempi[i] / 1e6 / mid.ticks_per_beat)
    on = np.array(onsets)
    if beats.shape[0] < 4 or on.size == 0:
        return 0.0
    on = on[on <= beats[-1]]
    grid = np.concatenate([beats[:-1] + f * np.diff(beats) for f in (0.0, 0.25, 0.5, 0.75)])
    return float(np.mean(np.min(np.abs(on[:, None] - grid[None, :]), axis=1) < 0.02)) if on.size else 0.0


def split_stems(mid, end_s: float = float("inf")) -> dict[str, object]:
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

    ticks, secs, tempi = _tick_seconds(mid)
    # the tick where end_s falls: later notes are not rendered (saves FluidSynth most of a song)
    i = int(np.searchsorted(secs, end_s, side="right") - 1) if np.isfinite(end_s) else -1
    end_tick = (ticks[i] + (end_s - secs[i]) * 1e6 * mid.ticks_per_beat / tempi[i]) if i >= 0 else float("inf")
    out = {}
    for name in ("drums", "bass", "other"):
        stem = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
        has_notes = False
        for track in mid.tracks:
            new = mido.MidiTrack()
            pending, tick = 0, 0
            for msg in track:
                pending += msg.time
                tick += msg.time
                if tick > end_tick and msg.type == "note_on" and msg.velocity > 0:
                    continue
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


def build(sample_rate: int, *, only: tuple[str, ...] = (), progress=print,
          collection: str = "freedoom") -> list[dict]:
    """Render (or load from the cache) every excerpt; each a dict with name, split, stems, beats…

    ``collection``: "freedoom" (dev and held) or "openmsx" (held only; module docstring).
    """
    import mido

    reason = missing(collection)
    if reason:
        progress(f"{collection} set skipped: {reason}")
        return []
    cache = CACHE if collection == "freedoom" else CACHE.parent / collection
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    if collection == "freedoom":
        lumps = {k: v for k, v in sorted(midi_lumps().items()) if k not in SHARED}
    else:
        lumps = openmsx_songs()
    for n, (name, data) in enumerate(lumps.items()):
        if only and not any(o in name for o in only):
            continue
        key = hashlib.sha1(data + f"{sample_rate}/{GENERATOR_VERSION}".encode()).hexdigest()[:12]
        path = cache / f"{name}-{key}.npz"
        if not path.exists():
            progress(f"rendering {name} ({n + 1}/{len(lumps)})")
            mid = mido.MidiFile(file=io.BytesIO(data))
            stems = {}
            with tempfile.TemporaryDirectory() as tmp:
                for role, stem_mid in split_stems(mid, RENDER_S).items():
                    stems[role] = _render(stem_mid, Path(tmp) / f"{role}.wav", sample_rate)
            length = max((a.shape[0] for a in stems.values()), default=0)
            duration = min(length / sample_rate, RENDER_S)
            gt = ground_truth(mid, duration)
            rng = np.random.default_rng(int(key, 16) % 2**32)
            latest = max(0.0, duration - EXCERPT_S)
            starts = np.sort(rng.uniform(0.0, latest, EXCERPTS)) if latest > 0 else np.zeros(1)
            padded = {r: np.pad(x, (0, max(0, length - x.shape[0]))) for r, x in stems.items()}
            arrays = {}
            for k, start in enumerate(starts):
                a, b = int(start * sample_rate), int((start + EXCERPT_S) * sample_rate)
                sel = (gt["beats"] >= start) & (gt["beats"] < start + EXCERPT_S)
                arrays.update({f"x{k}_stem_{r}": x[a:b].astype(np.float32) for r, x in padded.items()})
                arrays.update({f"x{k}_beats": gt["beats"][sel] - start, f"x{k}_in_bar": gt["beat_in_bar"][sel]})
            np.savez_compressed(path, roles=list(stems), n_excerpts=len(starts), starts_s=starts,
                                meter=str(gt["meter"]), grid_share=grid_share(mid, gt["beats"]), **arrays)
        z = np.load(path, allow_pickle=False)
        roles = [str(r) for r in z["roles"]]
        for k in range(int(z["n_excerpts"])):
            beats = z[f"x{k}_beats"]
            drums = z[f"x{k}_stem_drums"] if "drums" in roles else np.zeros(1)
            items.append({
                "name": f"{'fd' if collection == 'freedoom' else 'msx'}:{name.split('_', 1)[1]}#{k + 1}",
                "split": "dev" if collection == "freedoom" and name.startswith("freedoom1") else "held",
                "stems": [(r, r, z[f"x{k}_stem_{r}"]) for r in roles],
                "beats": beats, "downbeats": beats[z[f"x{k}_in_bar"] == 1],
                "meter": None if str(z["meter"]) == "None" else str(z["meter"]),
                "has_drums": float(np.abs(drums).max()) > 1e-3,
                "has_grid": float(z["grid_share"]) >= MIN_GRID_SHARE,
            })
    return items


#: Tempo rewrites of the Freedoom songs (``build_warped``): (name, bars of drums before the change).
WARPS = (("step", 6), ("ramp", 2))
WARP_VERSION = "1"


def _with_tempi(mid, points: list[tuple[float, float]]):
    """A copy of ``mid`` whose tempo map is only ``points`` ((beat, BPM) set_tempo events)."""
    import mido

    tpb = mid.ticks_per_beat
    out = mido.MidiFile(type=1, ticks_per_beat=tpb)
    for k, track in enumerate(mid.tracks):
        events, tick = [], 0
        for msg in track:
            tick += msg.time
            if msg.type != "set_tempo":
                events.append((tick, 1, msg))
        if k == 0:
            events += [(int(round(b * tpb)), 0, mido.MetaMessage("set_tempo", tempo=int(mido.bpm2tempo(bpm))))
                       for b, bpm in points]
        events.sort(key=lambda e: (e[0], e[1]))
        new, last = mido.MidiTrack(), 0
        for tick, _, msg in events:
            new.append(msg.copy(time=tick - last))
            last = tick
        out.tracks.append(new)
    return out


def build_warped(sample_rate: int, progress=print) -> list[dict]:
    """Freedoom's 4/4 songs with drums, their tempo map rewritten, one 30-s excerpt each (cached).

    The hidden-song kinds "the tempo doubles" and "the tempo ramps" on realistic material (the
    synthetic band songs of ``rhythm_accuracy`` are the only other tempo changes there):

    - ``step``: six bars of drums at the song's tempo (halved when above 100 BPM), then twice as
      fast from that bar line on; the excerpt has the change at 15 s;
    - ``ramp``: the song's tempo for two bars of drums, then a linear ramp to 1.25 × over 16 bars;
      the excerpt starts 5 s before the ramp.

    Ground truth is the rewritten MIDI's (``ground_truth``). Split as the source song: Freedoom 1
    dev, Freedoom 2 held.
    """
    import mido

    reason = missing("freedoom")
    if reason:
        progress(f"warped set skipped: {reason}")
        return []
    cache = CACHE.parent / "freedoom-warped"
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    for name, data in sorted(midi_lumps().items()):
        if name in SHARED:
            continue
        mid = mido.MidiFile(file=io.BytesIO(data))
        events = _merged(mid)
        if any((m.numerator, m.denominator) != (4, 4) for _, m in events if m.type == "time_signature"):
            continue
        drum_ticks = [t for t, m in events if m.type == "note_on" and m.velocity > 0 and m.channel == 9]
        if not drum_ticks:
            continue
        tempi = [mido.tempo2bpm(m.tempo) for _, m in events if m.type == "set_tempo"] or [120.0]
        bpm = float(tempi[0])
        first_bar = int(drum_ticks[0] / mid.ticks_per_beat // 4) * 4
        for kind, bars in WARPS:
            change = first_bar + 4 * bars
            if kind == "step":
                slow = bpm if bpm <= 100.0 else bpm / 2.0
                points = [(0.0, slow), (float(change), 2.0 * slow)]
                lead_s = 15.0
            else:
                points = [(0.0, bpm)] + [(float(b), bpm * (1.0 + 0.25 * (b - change) / 64.0))
                                         for b in range(change, change + 65)]
                lead_s = 5.0
            key = hashlib.sha1(data + f"{kind}/{sample_rate}/{WARP_VERSION}".encode()).hexdigest()[:12]
            path = cache / f"{name}-{kind}-{key}.npz"
            if not path.exists():
                progress(f"rendering {name} ({kind})")
                warped = _with_tempi(mid, points)
                gt = ground_truth(warped, 400.0)
                if change >= gt["beats"].shape[0]:
                    continue
                start = max(0.0, float(gt["beats"][change]) - lead_s)
                stop = start + EXCERPT_S
                with tempfile.TemporaryDirectory() as tmp:
                    stems = {r: _render(m, Path(tmp) / f"{r}.wav", sample_rate)
                             for r, m in split_stems(warped, stop + 2.0).items()}
                a, b = int(start * sample_rate), int(stop * sample_rate)
                sel = (gt["beats"] >= start) & (gt["beats"] < stop)
                np.savez_compressed(
                    path, roles=list(stems), beats=gt["beats"][sel] - start, in_bar=gt["beat_in_bar"][sel],
                    grid_share=grid_share(warped, gt["beats"]),
                    **{f"stem_{r}": np.pad(x, (0, max(0, b - x.shape[0])))[a:b].astype(np.float32)
                       for r, x in stems.items()})
            z = np.load(path, allow_pickle=False)
            roles = [str(r) for r in z["roles"]]
            drums = z["stem_drums"] if "drums" in roles else np.zeros(1)
            items.append({
                "name": f"warp:{kind}:{name.split('_', 1)[1]}",
                "split": "dev" if name.startswith("freedoom1") else "held",
                "stems": [(r, r, z[f"stem_{r}"]) for r in roles],
                "beats": z["beats"], "downbeats": z["beats"][z["in_bar"] == 1], "meter": "4/4",
                "has_drums": float(np.abs(drums).max()) > 1e-3,
                "has_grid": float(z["grid_share"]) >= MIN_GRID_SHARE,
            })
    return items

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE

    got = build(ANALYSIS_SAMPLE_RATE, collection=sys.argv[1] if len(sys.argv) > 1 else "freedoom")
    for it in got:
        print(it["name"], it["split"], it["meter"], len(it["beats"]), "drums" if it["has_drums"] else "no drums",
              "" if it["has_grid"] else "NO GRID")
