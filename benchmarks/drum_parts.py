"""Kick / snare / hats inside one drums stem (``bridge.analysis.drum_parts``) against known hits.

Each part curve (the mapping sources ``drums.kick``, ``drums.snare``, ``drums.hats``) should rise
at that part's hits and stay low at the others'. Per item and part: the AUC of the curve's peak
(±2 frames) at every hit of the part (alone or struck with others: a hat on a kick is a hat)
against its peak at the other parts' hits where the part does not play (none within 30 ms),
1.0 = perfectly apart, 0.5 = blind. Beside it, in the same run, the band-limited
onsets a single drums stem had before (``onset_low`` / ``onset_mid`` / ``onset_high``: < 150 Hz,
150–2000 Hz, > 2 kHz).

Material, with exact truth and none of it used to shape the templates:

- ``fluidsynth``: the Freedoom excerpts of ``rhythm_accuracy.py --freedoom`` (FluidR3 GM kit),
  hits from the MIDI notes (kick 35/36, snare 37–40, hats 42/44/46 and cymbals); dev = Freedoom 1,
  held = Freedoom 2.
- ``samples``: 20-s loops (rock, drive, half-time, four-on-the-floor, broken) built from LMMS's and
  Hydrogen's drum samples (acoustic, electronic, 808; claps and rimshots as snares; shakers and
  rides as hats), random levels, tempi 70–190 BPM; dev seed 777 (looked at while choosing the
  kick's width), held seed 778.

    python benchmarks/drum_parts.py [--split dev|held|all] [--json]

Needs the benchmark-only packages ``freedoom fluidsynth fluid-soundfont-gm lmms-common hydrogen``
(each set is skipped with the reason when its files are missing).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridge.analysis.features import compute_stem_features  # noqa: E402
from bridge.analysis.types import ANALYSIS_HOP, ANALYSIS_SAMPLE_RATE  # noqa: E402

SR = ANALYSIS_SAMPLE_RATE
FRAME_RATE_HZ = SR / ANALYSIS_HOP
PARTS = ("kick", "snare", "hats")
BASELINE = {"kick": "onset_low", "snare": "onset_mid", "hats": "onset_high"}
GM_NOTES = {"kick": (35, 36), "snare": (37, 38, 39, 40),
            "hats": (42, 44, 46, 49, 51, 52, 53, 55, 57, 59)}
ALONE_S = 0.03
LMMS = Path("/usr/share/lmms/samples/drums")
HYDROGEN = Path("/usr/share/hydrogen/data/drumkits")
KIT_SEEDS = {"dev": 777, "held": 778}
LOOPS = 30


def fluidsynth_items(split: str) -> list[dict]:
    import freedoom_songs as F
    import mido

    reason = F.missing("freedoom")
    if reason:
        print(f"fluidsynth set skipped: {reason}")
        return []
    F.build(SR, progress=lambda *_: None)  # renders what the cache lacks
    items = []
    for name, data in sorted(F.midi_lumps().items()):
        if name in F.SHARED:
            continue
        item_split = "dev" if name.startswith("freedoom1") else "held"
        if split not in ("all", item_split):
            continue
        key = hashlib.sha1(data + f"{SR}/{F.GENERATOR_VERSION}".encode()).hexdigest()[:12]
        path = F.CACHE / f"{name}-{key}.npz"
        if not path.exists():
            continue
        z = np.load(path)
        if "drums" not in [str(r) for r in z["roles"]]:
            continue
        mid = mido.MidiFile(file=io.BytesIO(data))
        ticks, secs, tempi = F._tick_seconds(mid)
        hits: dict[str, list[float]] = {p: [] for p in PARTS}
        for tick, msg in F._merged(mid):
            if msg.type == "note_on" and msg.velocity > 0 and msg.channel == 9:
                i = int(np.searchsorted(ticks, tick, side="right") - 1)
                t = secs[i] + (tick - ticks[i]) * tempi[i] / 1e6 / mid.ticks_per_beat
                for part, notes in GM_NOTES.items():
                    if msg.note in notes:
                        hits[part].append(t)
        for k in range(int(z["n_excerpts"])):
            start = float(z["starts_s"][k])
            audio = z[f"x{k}_stem_drums"].astype(np.float32)
            truth = {p: np.array([t - start for t in ts if 0.0 <= t - start < audio.shape[0] / SR])
                     for p, ts in hits.items()}
            if np.abs(audio).max() > 1e-3 and len(truth["kick"]) + len(truth["snare"]) >= 10:
                items.append({"name": f"fd:{name.split('_', 1)[1]}#{k + 1}", "set": "fluidsynth",
                              "split": item_split, "audio": audio, "truth": truth})
    return items


def _samples(patterns: list[str]) -> list[Path]:
    import soundfile as sf

    out = []
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            try:
                sf.info(p)
                out.append(Path(p))
            except Exception:  # noqa: BLE001 - a sample libsndfile cannot read (LMMS's kick04) is skipped
                continue
    return out


def sample_items(split: str) -> list[dict]:
    import librosa

    if not LMMS.exists() or not HYDROGEN.exists():
        print("samples set skipped: install lmms-common and hydrogen (their drum samples)")
        return []
    kits = {
        "kick": _samples([f"{LMMS}/bassdrum*", f"{LMMS}/kick*", f"{HYDROGEN}/GMRockKit/Kick-*",
                          f"{HYDROGEN}/TR808*/808_Kick*"]),
        "snare": _samples([f"{LMMS}/snare*", f"{LMMS}/clap*", f"{HYDROGEN}/GMRockKit/Snare*",
                           f"{HYDROGEN}/TR808*/808_Snare*", f"{HYDROGEN}/GMRockKit/HandClap.wav"]),
        "hats": _samples([f"{LMMS}/hihat*", f"{LMMS}/shaker*", f"{LMMS}/ride*", f"{HYDROGEN}/GMRockKit/Hat*",
                          f"{HYDROGEN}/GMRockKit/Ride-*", f"{HYDROGEN}/TR808*/808_Hat*"]),
    }
    cache: dict[Path, np.ndarray] = {}

    def load(p: Path) -> np.ndarray:
        if p not in cache:
            y, _ = librosa.load(str(p), sr=SR, mono=True)
            cache[p] = y[: 2 * SR].astype(np.float32)
        return cache[p]

    items = []
    for item_split, seed in KIT_SEEDS.items():
        if split not in ("all", item_split):
            continue
        rng = np.random.default_rng(seed)
        for n in range(LOOPS):
            chosen = {p: kits[p][rng.integers(len(kits[p]))] for p in PARTS}
            bpm = float(rng.uniform(70, 190))
            beat, seconds, t0 = 60.0 / bpm, 20.0, 0.3
            style = str(rng.choice(["rock", "drive", "half", "four", "break"]))
            sub = 2 if rng.random() < 0.6 else 4
            hits: dict[str, list[tuple[float, float]]] = {p: [] for p in PARTS}
            for b in range(int(seconds / beat) - 1):
                at, pos = t0 + b * beat, b % 4
                for j in range(sub):
                    if rng.random() < 0.9:
                        hits["hats"].append((at + j * beat / sub + rng.normal(0, 0.004), rng.uniform(0.3, 0.7)))
                if style == "rock":
                    if pos in (0, 2) or rng.random() < 0.15:
                        hits["kick"].append((at, rng.uniform(0.8, 1.0)))
                    if pos in (1, 3):
                        hits["snare"].append((at, rng.uniform(0.8, 1.0)))
                elif style == "drive":
                    if pos == 0:
                        hits["kick"].append((at, 1.0))
                    if pos in (1, 3):
                        hits["kick"].append((at + beat / 2, 0.9))
                        hits["snare"].append((at, 0.9))
                elif style == "half":
                    if pos == 0 or (pos == 3 and rng.random() < 0.4):
                        hits["kick"].append((at + (beat / 2 if pos == 3 else 0.0), 1.0))
                    if pos == 2:
                        hits["snare"].append((at, 1.0))
                elif style == "four":
                    hits["kick"].append((at, 1.0))
                    if pos in (1, 3):
                        hits["snare"].append((at, 0.8))
                else:
                    for j in range(4):
                        if rng.random() < 0.3:
                            hits[("kick", "snare")[rng.integers(2)]].append((at + j * beat / 4, rng.uniform(0.5, 1.0)))
            gains = {"kick": rng.uniform(0.5, 1.2), "snare": rng.uniform(0.4, 1.0), "hats": rng.uniform(0.15, 0.6)}
            y = np.zeros(int(SR * (seconds + 2)), np.float32)
            for part, placed in hits.items():
                sample = load(chosen[part])
                for t, velocity in placed:
                    a = int(t * SR)
                    y[a:a + sample.shape[0]] += (sample * velocity * gains[part])[: y.shape[0] - a]
            y = y[: int(SR * seconds)]
            y *= 0.8 / max(1e-6, float(np.abs(y).max()))
            truth = {p: np.array(sorted(t for t, _ in placed if t < seconds)) for p, placed in hits.items()}
            items.append({"name": f"kit{n}:{style}:{bpm:.0f}", "set": "samples", "split": item_split,
                          "audio": y, "truth": truth,
                          "kit": {p: chosen[p].name for p in PARTS}})
    return items


def _alone(times: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    keep = np.ones(times.shape[0], dtype=bool)
    for o in others:
        if o.size and times.size:
            keep &= np.min(np.abs(times[:, None] - o[None, :]), axis=1) > ALONE_S
    return times[keep]


def _peaks_at(curve: np.ndarray, times: np.ndarray) -> np.ndarray:
    frames = np.round(times * FRAME_RATE_HZ).astype(int)
    return np.array([curve[max(0, f - 2):f + 3].max() for f in frames if f < curve.shape[0]])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random own hit scores above a random other hit (ties count half)."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def score_item(item: dict) -> dict:
    feats = compute_stem_features(item["audio"], name="drums", role="drums", sample_rate=SR)
    truth = item["truth"]
    row = {"name": item["name"], "set": item["set"], "split": item["split"]}
    for p in PARTS:
        # every hit of the part counts, struck alone or with others (a hat on the kick is a hat);
        # against the other parts' hits where this part does not play
        others = np.concatenate([truth[q] for q in PARTS if q != p])
        without = _alone(np.unique(others), [truth[p]])
        for method, name in (("parts", p), ("bands", BASELINE[p])):
            curve = feats.curves[name]
            row[f"{method}_{p}"] = _auc(_peaks_at(curve, truth[p]), _peaks_at(curve, without))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "held", "all"), default="all")
    ap.add_argument("--json", action="store_true", help="print the per-item rows as JSON")
    args = ap.parse_args(argv)
    items = fluidsynth_items(args.split) + sample_items(args.split)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the project
        def tqdm(x, **_):
            return x
    rows = [score_item(it) for it in tqdm(items, desc="drum parts", unit="item")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("AUC of each part's curve at its hits against the other parts' hits without it (1 = apart, 0.5 = blind);")
    print("mean over items and the worst tenth's bound (10th percentile)\n")
    print(f"{'set':11s} {'split':5s} {'items':>5s} {'part':6s} {'drum_parts':>16s} {'bands (before)':>16s}")
    for set_name in ("fluidsynth", "samples"):
        for split in ("dev", "held"):
            sel = [r for r in rows if r["set"] == set_name and r["split"] == split]
            for p in PARTS if sel else ():
                ours = np.array([r[f"parts_{p}"] for r in sel], float)
                base = np.array([r[f"bands_{p}"] for r in sel], float)
                print(f"{set_name:11s} {split:5s} {len(sel):5d} {p:6s} "
                      f"{np.nanmean(ours):9.3f} / {np.nanpercentile(ours, 10):4.2f} "
                      f"{np.nanmean(base):9.3f} / {np.nanpercentile(base, 10):4.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
