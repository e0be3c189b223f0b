"""A second held-out set from real productions: LMMS's demo projects rendered headless, ground truth from the project.

Everything else we evaluate on is either one of the shared songs or a MIDI file played by FluidSynth's
General MIDI SoundFont (:mod:`freedoom_songs`). Real productions sound different: synthesisers,
samples, effects, sidechain pumping, dense mixes. Debian's ``lmms-common`` ships the demo songs
of LMMS (``/usr/share/lmms/projects/{demos,shorties}``, 25 projects by 20-odd producers; GPL-2+,
Artistic-2, BSD-2-Clause, CC-BY-SA-3.0/4.0 per ``/usr/share/doc/lmms-common/copyright``) and
``lmms`` renders them without a display (``lmms render``). From them this module builds, once, a
cached set of excerpts:

- the mix as LMMS renders it (``lmms render``, master effects included);
- stems by role: every instrument/sample track (song editor and beat/bassline editor) gets the
  role :func:`bridge.stems.guess_role` gives its name ("Kick_2.ds" → drums, "Default preset" →
  other), and each role present is rendered on its own by muting the other tracks in a copy of the
  project (what ``lmms rendertracks`` does per track; one render per role instead of per track, as
  per-track rendering took 12 minutes for one 2-minute song on our shared CPUs);
- beats from the project's own ``<head bpm=… timesig_numerator=… timesig_denominator=…>``: LMMS
  counts ``bpm`` in quarter notes (48 ticks) whatever the signature, and a render starts at tick 0,
  so beat k is at ``k · 60 / bpm`` s (checked: a project of our own with a kick on every quarter at
  137 BPM in 4/4, 1/1, 8/4 and 6/8 renders every kick onset within 0.02 ms of that:
  ``lmms_songs.py --verify``). A bar is
  ``192 · num / den`` ticks and starts at tick 0. x/8 signatures with a numerator divisible by 3
  count dotted quarters, as the other sets do. Signatures the tracker cannot name (1/1, 8/4: no
  listener counts a bar of one whole note or of eight quarters) keep their beats but have no meter
  and no downbeats to score;
- ``EXCERPTS`` 30-second excerpts per project at seeded starts inside its first ``RENDER_S`` seconds
  (the project is cut there before rendering: clips starting later are removed).

Skipped, with the reason printed: projects whose tempo is automated (none of LMMS 1.2's demos; LMMS
1.2 has no time-signature changes), projects that fail to render or render silent, the tutorial
and the templates (not songs).

Split: ``dev`` or ``held`` by the first byte of the SHA-1 of the project's file name (even: dev),
stable across machines and versions; :func:`split_of`.

Needs ``apt-get install lmms lmms-common`` (Debian/Ubuntu); without them :func:`build` returns []
and says why. Nothing here is used by the test suite.
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
import zlib
from pathlib import Path

import numpy as np

PROJECTS = Path("/usr/share/lmms/projects")
PROJECT_DIRS = ("demos", "shorties")
CACHE = Path.home() / ".cache" / "stembridge-bench" / "lmms"
EXCERPT_S = 30.0
RENDER_S = 75.0
EXCERPTS = 3
GENERATOR_VERSION = "2"  # 2: roles from the fixed guess_role (snare07.ogg is drums)
TICKS_PER_QUARTER = 48  # LMMS: 192 ticks per 4/4 bar
RENDER_RATE = 44100
#: Signatures the tracker can name (BeatGrid.meter_label): others keep beats only.
NAMEABLE = {"2/4", "3/4", "4/4", "5/4", "6/4", "7/4", "6/8", "9/8", "12/8"}
#: Track types in LMMS project files.
INSTRUMENT, BB, SAMPLE, AUTOMATION = "0", "1", "2", "5"


def missing() -> str | None:
    """Why the set cannot be built here, or None."""
    if shutil.which("lmms") is None:
        return "lmms is not installed (apt-get install lmms lmms-common)"
    if not PROJECTS.is_dir():
        return f"no LMMS demo projects at {PROJECTS} (apt-get install lmms-common)"
    return None


def project_files() -> list[Path]:
    return sorted(p for d in PROJECT_DIRS for p in (PROJECTS / d).rglob("*.mmp*") if p.suffix in (".mmp", ".mmpz"))


def load_project(path: Path) -> ET.Element:
    """The project's XML root (.mmpz is Qt's qCompress: a 4-byte big-endian length, then zlib)."""
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        data = zlib.decompress(data[4:])
    return ET.fromstring(data)


def split_of(name: str) -> str:
    return "dev" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "held"


def _song_tracks(root: ET.Element) -> list[ET.Element]:
    return root.find("song").find("trackcontainer").findall("track")


def _sound_tracks(root: ET.Element) -> list[ET.Element]:
    """Instrument and sample tracks of the song editor and of every beat/bassline."""
    out = []
    for track in _song_tracks(root):
        if track.get("type") in (INSTRUMENT, SAMPLE):
            out.append(track)
        elif track.get("type") == BB:
            inner = track.find("bbtrack/trackcontainer")
            if inner is not None:
                out += [t for t in inner.findall("track") if t.get("type") in (INSTRUMENT, SAMPLE)]
    return out


def head_info(root: ET.Element) -> dict:
    """Tempo, signature and whether the tempo or signature is automated (a head attribute becomes a
    child element with an id when it is automated or controlled)."""
    head = root.find("head")

    def value(key: str) -> float:
        if key in head.attrib:
            return float(head.get(key))
        return float(head.find(key).get("value"))

    ids = {c.get("id") for c in head if c.tag in ("bpm", "timesig_numerator", "timesig_denominator") and c.get("id")}
    automated = any(o.get("id") in ids for o in root.iter("object")) or any(
        c.find("connection") is not None for c in head if c.tag == "bpm")
    return {"tempo_bpm": value("bpm"), "num": int(value("timesig_numerator")),
            "den": int(value("timesig_denominator")), "automated": bool(automated)}


def truncated(root: ET.Element, end_tick: float) -> ET.Element:
    """A copy without the song editor's clips that start at or after end_tick (shortens the render)."""
    out = copy.deepcopy(root)
    for track in _song_tracks(out):
        for clip in list(track):
            if clip.tag in ("pattern", "bbtco", "sampletco", "automationpattern") and float(clip.get("pos", 0)) >= end_tick:
                track.remove(clip)
    return out


def role_of(track: ET.Element) -> str:
    from bridge.stems.roles import guess_role

    return guess_role((track.get("name") or "").replace("/", " ") or "other")


def ground_truth(info: dict, end_s: float) -> dict:
    """Beats (s), beat-in-bar and meter label from the project's tempo and signature."""
    num, den, tempo = info["num"], info["den"], info["tempo_bpm"]
    compound = den == 8 and num % 3 == 0 and num > 3
    if compound:
        beat_ticks = 3 * TICKS_PER_QUARTER / 2  # a dotted quarter
    elif den > 4:
        beat_ticks = 4 * TICKS_PER_QUARTER / den  # 5/8, 7/8: the eighth
    else:
        beat_ticks = TICKS_PER_QUARTER  # x/4, and 1/1 or 2/2: LMMS's tempo counts quarters
    bar_ticks = 4 * TICKS_PER_QUARTER * num / den
    per_bar = bar_ticks / beat_ticks
    label = f"{num}/{den}"
    tick_s = 60.0 / tempo / TICKS_PER_QUARTER
    n = int(np.floor(end_s / (beat_ticks * tick_s))) + 1
    k = np.arange(n)
    beats = k * beat_ticks * tick_s
    in_bar = (np.mod(k, per_bar) + 1).astype(int) if float(per_bar).is_integer() else np.zeros(n, int)
    return {"beats": beats, "beat_in_bar": in_bar, "meter": label if label in NAMEABLE else None}


def _run_lmms(project: ET.Element, wav: Path, tmp: Path) -> np.ndarray | None:
    """Render a project (XML) to mono float32 at RENDER_RATE; None when LMMS fails or writes nothing."""
    import soundfile as sf

    src = tmp / "project.mmp"
    src.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE lmms-project>\n' + ET.tostring(project))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = ["lmms", "render", str(src), "-o", str(wav), "-f", "wav", "-s", str(RENDER_RATE)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allowroot")
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    if not wav.exists():
        return None
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    return audio.mean(axis=1)


def render_project(root: ET.Element, progress=print) -> tuple[np.ndarray | None, dict[str, np.ndarray], dict[str, list[str]]]:
    """(mix, role → stem, role → track names), each at RENDER_RATE, for a (truncated) project."""
    tracks = _sound_tracks(root)
    roles: dict[str, list[str]] = {}
    for t in tracks:
        if t.get("muted", "0") == "0":
            roles.setdefault(role_of(t), []).append(t.get("name") or "")
    stems = {}
    with tempfile.TemporaryDirectory() as tmp:
        mix = _run_lmms(root, Path(tmp) / "mix.wav", Path(tmp))
        if mix is None or len(roles) < 2:
            return mix, ({"other": mix} if mix is not None else {}), roles
        for role in roles:
            solo = copy.deepcopy(root)
            for t in _sound_tracks(solo):
                if role_of(t) != role:
                    t.set("muted", "1")
            audio = _run_lmms(solo, Path(tmp) / f"{role}.wav", Path(tmp))
            if audio is None:
                progress(f"  stem {role} failed to render")
                continue
            stems[role] = audio
    return mix, stems, roles


def verify_alignment(tempo_bpm: float = 137.0, signature: tuple[int, int] = (4, 4)) -> float:
    """Render a project of our own (a kick sample on every quarter, 64 of them) and return the largest
    distance, in ms, between a kick's onset (first sample above 1 % of the hit's peak) and k·60/bpm."""
    import soundfile as sf

    sample = PROJECTS.parent / "samples" / "drums" / "kick01.ogg"
    notes = "".join(f'<note len="12" key="57" vol="100" pos="{TICKS_PER_QUARTER * k}" pan="0"/>' for k in range(64))
    xml = (f'<lmms-project creator="LMMS" version="1.0" type="song" creatorversion="1.2.0">'
           f'<head timesig_numerator="{signature[0]}" bpm="{tempo_bpm:g}" timesig_denominator="{signature[1]}" '
           f'mastervol="100" masterpitch="0"/><song><trackcontainer type="song">'
           f'<track muted="0" name="Kick" solo="0" type="0"><instrumenttrack pitch="0" fxch="0" basenote="57" '
           f'usemasterpitch="1" pitchrange="1" vol="100" pan="0"><instrument name="audiofileprocessor">'
           f'<audiofileprocessor stutter="0" interp="1" reversed="0" looped="0" sframe="0" lframe="0" '
           f'src="drums/kick01.ogg" eframe="1" amp="100"/></instrument><fxchain enabled="0" numofeffects="0"/>'
           f'</instrumenttrack><pattern len="{TICKS_PER_QUARTER * 64}" muted="0" name="k" steps="16" pos="0" '
           f'type="1">{notes}</pattern></track></trackcontainer></song></lmms-project>')
    kick, kick_rate = sf.read(str(sample), always_2d=True)
    lead_s = int(np.argmax(np.abs(kick.mean(axis=1)) > 1e-3)) / kick_rate  # the sample's own silence
    with tempfile.TemporaryDirectory() as tmp:
        audio = _run_lmms(ET.fromstring(xml), Path(tmp) / "kick.wav", Path(tmp))
    if audio is None:
        raise RuntimeError("LMMS failed to render the alignment project")
    errors = []
    for k in range(64):
        beat = k * 60.0 / tempo_bpm
        a = int(max(0.0, beat - 0.1) * RENDER_RATE)
        seg = np.abs(audio[a:a + int(0.2 * RENDER_RATE)])
        onset = (a + int(np.argmax(seg > 0.01 * seg.max()))) / RENDER_RATE - lead_s
        errors.append(abs(onset - beat) * 1000.0)
    return float(max(errors))


def beat_contrast(mix: np.ndarray, sample_rate: int, beats: np.ndarray) -> float:
    """Pulse at the true beat period: the autocorrelation of librosa's onset strength at one beat
    period over its mean across lags from a quarter beat to two beats (a peak there: > 1; a drone
    or free-time texture: ≤ 1). Independent of our tracker and of the beat's phase (8th-note hats
    and strong off-beats make a phase test useless); used to mark excerpts without rhythm."""
    import librosa

    hop = 512
    env = librosa.onset.onset_strength(y=mix, sr=sample_rate, hop_length=hop)
    if beats.shape[0] < 4 or env.std() <= 0:
        return 0.0
    env = env - env.mean()
    period = float(np.median(np.diff(beats))) * sample_rate / hop
    acf = np.correlate(env, env, mode="full")[env.shape[0] - 1:]
    acf /= np.arange(env.shape[0], 0, -1)  # unbiased: each lag over its own overlap
    lo, hi = max(1, int(period / 4)), min(int(2 * period) + 1, acf.shape[0] - 1)
    at = float(np.max(acf[int(np.floor(period)):int(np.ceil(period)) + 1]))
    return at / max(float(np.mean(np.abs(acf[lo:hi]))), 1e-12)


#: Below this beat contrast an excerpt has no rhythm to track (set from the printed values: see README).
MIN_BEAT_CONTRAST = 1.2


def build(sample_rate: int, *, only: tuple[str, ...] = (), progress=print) -> list[dict]:
    """Render (or load from the cache) every excerpt; each a dict with name, split, stems, mix, beats…"""
    import librosa

    reason = missing()
    if reason:
        progress(f"lmms set skipped: {reason}")
        return []
    CACHE.mkdir(parents=True, exist_ok=True)
    items = []
    files = project_files()
    for n, path in enumerate(files):
        name = path.name.split(".mmp")[0]
        if only and not any(o in name for o in only):
            continue
        key = hashlib.sha1(path.read_bytes() + f"{sample_rate}/{GENERATOR_VERSION}/{RENDER_S}".encode()).hexdigest()[:12]
        cached = CACHE / f"{name}-{key}.npz"
        skip = CACHE / f"{name}-{key}.skip"
        if skip.exists():
            progress(f"lmms: {name} skipped: {skip.read_text().strip()}")
            continue
        if not cached.exists():
            root = load_project(path)
            info = head_info(root)
            if info["automated"]:
                skip.write_text("tempo or time signature automated\n")
                continue
            progress(f"rendering {name} ({n + 1}/{len(files)}, {info['tempo_bpm']:g} BPM {info['num']}/{info['den']})")
            end_tick = RENDER_S / (60.0 / info["tempo_bpm"] / TICKS_PER_QUARTER)
            mix, stems, roles = render_project(truncated(root, end_tick), progress)
            if mix is None or float(np.abs(mix).max()) < 1e-4:
                skip.write_text("LMMS failed to render it\n" if mix is None else "renders silent\n")
                progress(f"lmms: {name} skipped: {skip.read_text().strip()}")
                continue

            def prep(x: np.ndarray) -> np.ndarray:
                return librosa.resample(x[:int(RENDER_S * RENDER_RATE)], orig_sr=RENDER_RATE, target_sr=sample_rate)

            mix = prep(mix)
            stems = {r: prep(x) for r, x in stems.items()}
            length = max([mix.shape[0]] + [x.shape[0] for x in stems.values()])
            duration = min(length / sample_rate, RENDER_S)
            gt = ground_truth(info, duration)
            rng = np.random.default_rng(int(key, 16) % 2**32)
            latest = max(0.0, duration - EXCERPT_S)
            starts = np.sort(rng.uniform(0.0, latest, EXCERPTS)) if latest > 0 else np.zeros(1)
            padded = {r: np.pad(x, (0, max(0, length - x.shape[0]))) for r, x in stems.items()}
            mix = np.pad(mix, (0, length - mix.shape[0]))
            arrays = {}
            for k, start in enumerate(starts):
                a, b = int(start * sample_rate), int((start + EXCERPT_S) * sample_rate)
                sel = (gt["beats"] >= start) & (gt["beats"] < start + EXCERPT_S)
                arrays.update({f"x{k}_stem_{r}": x[a:b].astype(np.float32) for r, x in padded.items()})
                arrays[f"x{k}_mix"] = mix[a:b].astype(np.float32)
                arrays.update({f"x{k}_beats": gt["beats"][sel] - start, f"x{k}_in_bar": gt["beat_in_bar"][sel]})
            np.savez_compressed(cached, roles=list(stems), n_excerpts=len(starts), starts_s=starts,
                                meter=str(gt["meter"]), tempo_bpm=info["tempo_bpm"],
                                signature=f"{info['num']}/{info['den']}",
                                tracks=[f"{r}: {', '.join(v)}" for r, v in roles.items()], **arrays)
        z = np.load(cached, allow_pickle=False)
        roles = [str(r) for r in z["roles"]]
        for k in range(int(z["n_excerpts"])):
            beats = z[f"x{k}_beats"]
            stems = [(r, r, z[f"x{k}_stem_{r}"]) for r in roles if float(np.abs(z[f"x{k}_stem_{r}"]).max()) > 1e-4]
            meter = None if str(z["meter"]) == "None" else str(z["meter"])
            contrast = beat_contrast(z[f"x{k}_mix"], sample_rate, beats)
            items.append({
                "name": f"lmms:{name}#{k + 1}",
                "split": split_of(name),
                "stems": stems or [("mix", "other", z[f"x{k}_mix"])],
                "mix": z[f"x{k}_mix"],
                "beats": beats, "downbeats": beats[z[f"x{k}_in_bar"] == 1] if meter else None,
                "meter": meter, "signature": str(z["signature"]), "tempo_bpm": float(z["tempo_bpm"]),
                "has_drums": "drums" in [r for r, _, _ in stems],
                "beat_contrast": contrast,
                "has_rhythm": contrast >= MIN_BEAT_CONTRAST,
            })
    return items


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bridge.analysis.types import ANALYSIS_SAMPLE_RATE

    if sys.argv[1:] == ["--verify"]:
        for sig in ((4, 4), (1, 1), (8, 4), (6, 8)):
            print(f"{sig[0]}/{sig[1]} at 137 BPM: kick onsets within {verify_alignment(137.0, sig):.3f} ms of k·60/bpm")
        raise SystemExit(0)
    got = build(ANALYSIS_SAMPLE_RATE, only=tuple(sys.argv[1:]))
    for split in ("dev", "held"):
        names = sorted({it["name"].split("#")[0] for it in got if it["split"] == split})
        print(f"{split}: {len(names)} projects: {' '.join(n.split(':', 1)[1] for n in names)}")
    for it in got:
        print(f"{it['name']:52s} {it['split']:4s} {it['tempo_bpm']:5.0f} BPM {it['signature']:5s} {len(it['beats']):3d} beats "
              f"contrast {it['beat_contrast']:.2f} {'' if it['has_rhythm'] else 'NO RHYTHM '}"
              f"stems {' '.join(r for r, _, _ in it['stems'])}")
