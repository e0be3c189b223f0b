"""Does the default look's speed class follow the song, not the beat grid's tempo octave?

Per item (shared songs and Freedoom / OpenMSX excerpts with a notated grid, see rhythm_accuracy.py):
the project's analysis (analyze_stems), the speed class (fast >= FAST_BPM, mid >= MID_BPM, slow) of
the grid tempo and of ``perceived_bpm`` against the notated tempo's class, and the distribution of
default looks (no look should take most songs). Analyses are pickled per item in ``--cache``.

Run: ``.venv/bin/python benchmarks/look_speed_class.py [--freedoom] [--openmsx] [--split dev]``
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import rhythm_accuracy as ra  # noqa: E402

from bridge.analysis.pipeline import analyze_stems  # noqa: E402
from bridge.visuals.character import FAST_BPM, MID_BPM, default_look, perceived_bpm, song_character  # noqa: E402


def speed_class(tempo_bpm: float) -> str:
    return "fast" if tempo_bpm >= FAST_BPM else ("mid" if tempo_bpm >= MID_BPM else "slow")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="dev", choices=("dev", "held", "all"))
    ap.add_argument("--freedoom", action="store_true")
    ap.add_argument("--openmsx", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "stembridge-bench" / "looks")
    args = ap.parse_args(argv)
    items = [i for i in ra.shared_items() if args.split in ("all", i.split)]
    if args.freedoom:
        items += ra.freedoom_items(args.split)
    if args.openmsx:
        items += ra.freedoom_items(args.split, collection="openmsx")
    args.cache.mkdir(parents=True, exist_ok=True)
    grid_ok = heard_ok = n = 0
    looks: Counter = Counter()
    for it in items:
        if len(it.beats) < 3:
            continue
        path = args.cache / (hashlib.sha256(it.name.encode()).hexdigest()[:16] + ".pkl")
        if path.exists():
            analysis = pickle.loads(path.read_bytes())
        else:
            duration = max(a.shape[0] for _, _, a in it.stems) / ra.SR
            analysis = analyze_stems(it.stems, duration_seconds=duration)
            path.write_bytes(pickle.dumps(analysis))
        truth = float(60.0 / np.median(np.diff(it.beats)))
        grid, heard = float(analysis.beat_grid.tempo_bpm), perceived_bpm(analysis)
        look = default_look(analysis, song_character(analysis))
        looks[look] += 1
        n += 1
        grid_ok += speed_class(grid) == speed_class(truth)
        heard_ok += speed_class(heard) == speed_class(truth)
        print(f"{it.name[:44]:44s} notated {truth:6.1f} grid {grid:6.1f} heard {heard:6.1f} {look}")
    print(f"{n} items: speed class = notated class: grid {grid_ok}, perceived {heard_ok}")
    print("looks:", ", ".join(f"{k} {v}" for k, v in looks.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
