"""A third held-out set: Hydrogen's demo drum-machine songs rendered headless, ground truth from the song file.

Freedoom (:mod:`freedoom_songs`) is General MIDI through one SoundFont; LMMS (:mod:`lmms_songs`) is
full productions. Neither is a sampled acoustic kit played by a drum machine with swing and
humanize, which is what Hydrogen (GPL-2+) makes. Debian's ``hydrogen-data`` ships its demo songs
(``/usr/share/hydrogen/data/demo_songs/*.h2song``, with the GMRockKit and TR808EmulationKit
kits) and ``h2cli -s SONG -o OUT.wav`` exports a song without a display. With no sound card h2cli
would spend 12 s per export trying to start a JACK server; ``-d alsa`` fails fast and the export
(which never needs a device) runs in well under a second.

Ground truth from the song's XML: ``<bpm>`` (no ``<BPMTimeLine>`` entries: tempo markers make a
song skipped), and the ``<patternSequence>``: one ``<group>`` per column, played for the longest of
its patterns (``<size>`` in ticks, 48 to the quarter note: a 4/4 bar is 192, Hydrogen's
``MAX_NOTES``), starting at tick 0. Beats are every ``192 / <denominator>`` ticks from each
column's start (all demo patterns are /4: quarters); a column that is a whole 2/4, 3/4 or 4/4 bar
(size / beat ∈ {2, 3, 4}) starts a bar. When every column is one bar of the same signature the song
has that meter and downbeats at column starts; otherwise beats only, as lmms does for odd
signatures. Checked by rendering: ``hydrogen_songs.py --verify`` renders a song of our own (kick on every
quarter: 4/4 at 137 BPM, the same with swing 0.5, 144-tick 3/4 columns at 96 BPM) and every demo
song's kicks alone (humanize off, swing kept), and measures each kick notated on a beat against
the computed beat: all within 0.02 ms (220 kicks over the 7 songs).

Hydrogen's swing delays the off-beat 16ths and its humanize jitters every note's time (a few ms)
and velocity at render time; the notated grid stays the truth and the item's name carries the swing
("-sw23": swing factor 0.23).

Stems, as producers export a kit: ``kit`` (the song as Hydrogen renders it, one drums stem) and,
for the ``-kit`` items, one stem per part of the kit (kick, snare, hats, toms, cymbals, perc: the
instruments by name), each rendered alone by muting the other instruments in a copy of the song.
Humanize is random per render, so the parts are a few ms apart, as re-recorded stems would be.

Excerpts: up to ``EXCERPTS`` × 30 s per song at seeded starts inside its first ``RENDER_S``
seconds (later columns removed before rendering), or the whole render if shorter. Split: dev or
held by the first byte of the SHA-1 of the song's file name (even: dev). Needs ``apt-get install
hydrogen hydrogen-data`` (not a project dependency); without them :func:`build` returns [] and says
why. Nothing here is used by the test suite.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

SONGS = Path("/usr/share/hydrogen/data/demo_songs")
DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
CACHE = Path.home() / ".cache" / "stembridge-bench" / "hydrogen"
EXCERPT_S = 30.0
RENDER_S = 75.0
EXCERPTS = 3
GENERATOR_VERSION = "1"
TICKS_PER_QUARTER = 48  # Hydrogen: MAX_NOTES = 192 ticks in a 4/4 bar
RENDER_RATE = 44100
#: An onset for --verify: the first sample above this fraction of the hit's peak (the previous
#: kick's tail stays below it at 137 BPM; 1 % did not).
ONSET_LEVEL = 0.2
#: Parts of the kit for the per-instrument stems, by the first keyword in the instrument's name.
PARTS = (("kick", ("kick",)), ("snare", ("snare", "stick", "clap", "rim")), ("hats", ("hat",)),
         ("toms", ("tom",)), ("cymbals", ("ride", "crash", "splash", "cymbal", "china")))


def missing() -> str | None:
    """Why the set cannot be built here, or None."""
    if shutil.which("h2cli") is None:
        return "h2cli is not installed (apt-get install hydrogen hydrogen-data)"
    if not SONGS.is_dir():
        return f"no Hydrogen demo songs at {SONGS} (apt-get install hydrogen-data)"
    return None


def split_of(name: str) -> str:
    return "dev" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "held"


def part_of(instrument_name: str) -> str:
    low = instrument_name.lower()
    return next((part for part, keys in PARTS if any(k in low for k in keys)), "perc")


def song_info(root: ET.Element) -> dict:
    """Tempo, swing, humanize, the columns (start tick, length in ticks, beat in ticks) and whether
    tempo markers are present."""
    patterns = {p.findtext("name"): (int(p.findtext("size")), int(p.findtext("denominator") or 4))
                for p in root.find("patternList")}
    columns, tick = [], 0
    for group in root.find("patternSequence"):
        used = [patterns[g.text] for g in group.findall("patternID") if g.text in patterns]
        if not used:
            continue
        size = max(s for s, _ in used)
        den = next(d for s, d in used if s == size)
        columns.append((tick, size, den))
        tick += size
    timeline = root.find("BPMTimeLine")
    return {"tempo_bpm": float(root.findtext("bpm")), "swing": float(root.findtext("swing_factor") or 0),
            "humanize_time": float(root.findtext("humanize_time") or 0),
            "columns": columns, "automated": timeline is not None and len(timeline) > 0}


def ground_truth(info: dict) -> dict:
    """Beats (s), which of them start a bar, and the meter label (None when columns are not whole
    bars of one signature)."""
    tick_s = 60.0 / info["tempo_bpm"] / TICKS_PER_QUARTER
    beats, first, labels = [], [], set()
    for start, size, den in info["columns"]:
        beat = 4 * TICKS_PER_QUARTER // den
        n = size / beat
        labels.add(f"{int(n)}/{den}" if n in (2, 3, 4) else None)
        for k in range(int(np.ceil(n))):
            beats.append((start + k * beat) * tick_s)
            first.append(k == 0)
    meter = labels.pop() if len(labels) == 1 else None
    return {"beats": np.asarray(beats), "is_downbeat": np.asarray(first, bool), "meter": meter}


def truncated(root: ET.Element, end_tick: float) -> ET.Element:
    """A copy without the columns starting at or after end_tick."""
    out = copy.deepcopy(root)
    sizes = {p.findtext("name"): int(p.findtext("size")) for p in out.find("patternList")}
    seq, tick = out.find("patternSequence"), 0
    for group in list(seq):
        if tick >= end_tick:
            seq.remove(group)
        else:
            tick += max((sizes.get(g.text, 0) for g in group.findall("patternID")), default=0)
    return out


def _run_h2cli(song: ET.Element, tmp: Path, tag: str) -> np.ndarray | None:
    """Export a song (XML) to mono float32 at RENDER_RATE; None when h2cli fails or writes nothing."""
    import soundfile as sf

    src, wav = tmp / f"{tag}.h2song", tmp / f"{tag}.wav"
    src.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(song))
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    cmd = ["h2cli", "-d", "alsa", "-s", str(src), "-o", str(wav), "-r", str(RENDER_RATE)]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    if not wav.exists():
        return None
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    if rate != RENDER_RATE:
        raise RuntimeError(f"h2cli wrote {rate} Hz, asked for {RENDER_RATE}")
    return audio.mean(axis=1)


def _used_instruments(root: ET.Element) -> set[str]:
    ids = {n.findtext("instrument") for p in root.find("patternList") for n in p.iter("note")}
    return {i.findtext("id") for i in root.find("instrumentList")} & ids


def render_song(root: ET.Element, progress=print) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(the whole kit, part → stem) at RENDER_RATE."""
    used = _used_instruments(root)
    parts: dict[str, set[str]] = {}
    for inst in root.find("instrumentList"):
        if inst.findtext("id") in used and inst.findtext("isMuted") != "true":
            parts.setdefault(part_of(inst.findtext("name") or ""), set()).add(inst.findtext("id"))
    stems = {}
    with tempfile.TemporaryDirectory() as tmp:
        kit = _run_h2cli(root, Path(tmp), "kit")
        for part, ids in parts.items():
            solo = copy.deepcopy(root)
            for inst in solo.find("instrumentList"):
                inst.find("isMuted").text = "false" if inst.findtext("id") in ids else "true"
            audio = _run_h2cli(solo, Path(tmp), part)
            if audio is None:
                progress(f"  part {part} failed to render")
                continue
            stems[part] = audio
    return kit, stems


def _lead_s(instrument: ET.Element, velocity: float) -> float:
    """Seconds from the start of the sample Hydrogen plays at this velocity to ONSET_LEVEL of its peak."""
    import soundfile as sf

    layer = next(la for la in instrument.iter("layer")
                 if float(la.findtext("min")) < velocity <= float(la.findtext("max")) or velocity == 0 == float(la.findtext("min")))
    hit, rate = sf.read(str(DRUMKITS / instrument.findtext("drumkit") / layer.findtext("filename")), always_2d=True)
    hit = np.abs(hit.mean(axis=1))
    return int(np.argmax(hit > ONSET_LEVEL * hit.max())) / rate


def kick_errors_ms(song: ET.Element, min_gap_s: float = 0.3) -> np.ndarray:
    """Render the song's kicks alone with humanize off (its swing kept: it moves off-beat 16ths only) and return, for every kick notated on
    a beat of the ground truth with no kick in the ``min_gap_s`` before it, the distance in ms between
    its onset (first sample above ONSET_LEVEL of the hit's peak, less the sample's own lead to that
    level) and that beat."""
    song = copy.deepcopy(song)
    for key in ("humanize_time", "humanize_velocity"):
        song.find(key).text = "0"
    instruments = {i.findtext("id"): i for i in song.find("instrumentList")}
    kicks = {k for k, i in instruments.items() if part_of(i.findtext("name") or "") == "kick"}
    for k, inst in instruments.items():
        inst.find("isMuted").text = "false" if k in kicks else "true"
    info = song_info(song)
    tick_s = 60.0 / info["tempo_bpm"] / TICKS_PER_QUARTER
    patterns = {p.findtext("name"): p for p in song.find("patternList")}
    groups = [[g.text for g in grp.findall("patternID") if g.text in patterns] for grp in song.find("patternSequence")]
    hits = []  # (time s, instrument, velocity)
    for (start, _, _), names in zip(info["columns"], [g for g in groups if g], strict=True):
        for name in names:
            hits += [((start + int(n.findtext("position"))) * tick_s, instruments[n.findtext("instrument")],
                      float(n.findtext("velocity"))) for n in patterns[name].iter("note") if n.findtext("instrument") in kicks]
    with tempfile.TemporaryDirectory() as tmp:
        audio = _run_h2cli(song, Path(tmp), "kicks")
    if audio is None:
        raise RuntimeError("h2cli failed to render the kicks")
    beats = ground_truth(info)["beats"]
    times = np.array(sorted({t for t, _, _ in hits}))
    errors = []
    for t, inst, vel in hits:
        on_beat = np.min(np.abs(beats - t)) < 1e-6
        if not on_beat or np.any((times < t - 1e-6) & (times > t - min_gap_s)) or t + 0.1 > audio.shape[0] / RENDER_RATE:
            continue
        a = int(max(0.0, t - 0.05) * RENDER_RATE)
        seg = np.abs(audio[a:a + int(0.15 * RENDER_RATE)])
        onset = (a + int(np.argmax(seg > ONSET_LEVEL * seg.max()))) / RENDER_RATE - _lead_s(inst, vel)
        errors.append(abs(onset - t) * 1000.0)
    return np.asarray(errors)


def verify_alignment(tempo_bpm: float = 137.0, size: int = 192, swing: float = 0.0) -> float:
    """Render a song of our own (GMRockKit's kick on every quarter of 16 columns of ``size`` ticks)
    and return the largest kick error in ms (:func:`kick_errors_ms`)."""
    root = ET.parse(SONGS / "GM_kit_demo1.h2song").getroot()
    root.find("bpm").text, root.find("swing_factor").text = f"{tempo_bpm:g}", f"{swing:g}"
    notes = "".join(f"<note><position>{q}</position><leadlag>0</leadlag><velocity>1</velocity><pan>0</pan>"
                    f"<pitch>0</pitch><probability>1</probability><key>C0</key><length>-1</length>"
                    f"<instrument>0</instrument><note_off>false</note_off></note>"
                    for q in range(0, size, TICKS_PER_QUARTER))
    plist, seq = root.find("patternList"), root.find("patternSequence")
    plist.clear()
    plist.append(ET.fromstring(f"<pattern><name>q</name><category/><size>{size}</size><denominator>4"
                               f"</denominator><info/><noteList>{notes}</noteList></pattern>"))
    seq.clear()
    for _ in range(16):
        ET.SubElement(ET.SubElement(seq, "group"), "patternID").text = "q"
    return float(kick_errors_ms(root, min_gap_s=0.0).max())


def build(sample_rate: int, *, only: tuple[str, ...] = (), progress=print) -> list[dict]:
    """Render (or load from the cache) every excerpt; each a dict with name, split, stems, beats…
    Two items per excerpt: ``…#k`` (the kit on one stem) and ``…-kit#k`` (one stem per part)."""
    import librosa

    reason = missing()
    if reason:
        progress(f"hydrogen set skipped: {reason}")
        return []
    CACHE.mkdir(parents=True, exist_ok=True)
    items = []
    for path in sorted(SONGS.glob("*.h2song")):
        name = path.stem
        if only and not any(o in name for o in only):
            continue
        key = hashlib.sha1(path.read_bytes() + f"{sample_rate}/{GENERATOR_VERSION}/{RENDER_S}".encode()).hexdigest()[:12]
        cached, skip = CACHE / f"{name}-{key}.npz", CACHE / f"{name}-{key}.skip"
        if skip.exists():
            progress(f"hydrogen: {name} skipped: {skip.read_text().strip()}")
            continue
        if not cached.exists():
            root = ET.parse(path).getroot()
            info = song_info(root)
            if info["automated"]:
                skip.write_text("tempo markers in the BPM timeline\n")
                continue
            progress(f"rendering {name} ({info['tempo_bpm']:g} BPM, swing {info['swing']:g})")
            end_tick = RENDER_S * info["tempo_bpm"] / 60.0 * TICKS_PER_QUARTER
            song = truncated(root, end_tick)
            kit, parts = render_song(song, progress)
            if kit is None or float(np.abs(kit).max()) < 1e-4:
                skip.write_text("h2cli failed to render it\n" if kit is None else "renders silent\n")
                progress(f"hydrogen: {name} skipped: {skip.read_text().strip()}")
                continue

            def prep(x: np.ndarray) -> np.ndarray:
                return librosa.resample(x[:int(RENDER_S * RENDER_RATE)], orig_sr=RENDER_RATE, target_sr=sample_rate)

            tracks = {"kit": prep(kit), **{p: prep(x) for p, x in parts.items()}}
            length = max(x.shape[0] for x in tracks.values())
            tracks = {p: np.pad(x, (0, length - x.shape[0])) for p, x in tracks.items()}
            gt = ground_truth(song_info(song))
            duration = length / sample_rate
            rng = np.random.default_rng(int(key, 16) % 2**32)
            latest = duration - EXCERPT_S
            starts = np.sort(rng.uniform(0.0, latest, EXCERPTS)) if latest > 0 else np.zeros(1)
            arrays = {}
            for k, start in enumerate(starts):
                a, b = int(start * sample_rate), int((start + EXCERPT_S) * sample_rate)
                sel = (gt["beats"] >= start) & (gt["beats"] < start + EXCERPT_S)
                arrays.update({f"x{k}_{p}": x[a:b].astype(np.float32) for p, x in tracks.items()})
                arrays.update({f"x{k}_beats": gt["beats"][sel] - start, f"x{k}_down": gt["is_downbeat"][sel]})
            np.savez_compressed(cached, parts=list(parts), n_excerpts=len(starts), starts_s=starts,
                                meter=str(gt["meter"]), tempo_bpm=info["tempo_bpm"], swing=info["swing"], **arrays)
        z = np.load(cached, allow_pickle=False)
        meter = None if str(z["meter"]) == "None" else str(z["meter"])
        swing = float(z["swing"])
        label = f"h2:{name}" + (f"-sw{round(swing * 100):02d}" if swing > 0 else "")
        for k in range(int(z["n_excerpts"])):
            beats = z[f"x{k}_beats"]
            common = {"split": split_of(path.name), "beats": beats, "meter": meter, "tempo_bpm": float(z["tempo_bpm"]),
                      "downbeats": beats[z[f"x{k}_down"]] if meter else None, "mix": z[f"x{k}_kit"]}
            parts = [(p, "drums", z[f"x{k}_{p}"]) for p in z["parts"] if float(np.abs(z[f"x{k}_{p}"]).max()) > 1e-4]
            items.append({"name": f"{label}#{k + 1}", "stems": [("kit", "drums", z[f"x{k}_kit"])], **common})
            items.append({"name": f"{label}-kit#{k + 1}", "stems": parts, **common})
    return items


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE

    if sys.argv[1:] == ["--verify"]:
        for bpm, size, swing in ((137.0, 192, 0.0), (137.0, 192, 0.5), (96.0, 144, 0.0)):
            print(f"{size}-tick columns at {bpm:g} BPM, swing {swing:g}: kick onsets within "
                  f"{verify_alignment(bpm, size, swing):.3f} ms of the computed beats")
        for path in sorted(SONGS.glob("*.h2song")):
            err = kick_errors_ms(ET.parse(path).getroot())
            print(f"{path.stem}: {err.shape[0]} kicks on beats, within {err.max():.3f} ms (median {np.median(err):.3f})")
        raise SystemExit(0)
    got = build(ANALYSIS_SAMPLE_RATE, only=tuple(sys.argv[1:]))
    for it in got:
        print(f"{it['name']:40s} {it['split']:4s} {it['tempo_bpm']:5.0f} BPM {it['meter']} {len(it['beats']):3d} beats "
              f"stems {' '.join(n for n, _, _ in it['stems'])}")
