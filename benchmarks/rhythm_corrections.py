"""What does a rhythm correction cost and buy? Per annotated song in ../shared/data/songs:

- ``full``: a cold ``analyze_project`` (every stem decoded and analysed, then the beat grid);
- ``tempo``: the same project corrected with the true tempo only (``rhythm.tempo_bpm``): the tracker
  places beats and bars;
- ``downbeat``: corrected with the true first downbeat only (the app's "Downbeat here");
- ``all``: corrected with the true tempo, meter and first downbeat (the exact grid);

each correction re-run on the warm cache (only the song-level grid and sections are computed). Beat F
and downbeat F at ±70 ms (mir_eval) against ground_truth.json for each, and the time of a correction
as a fraction of the cold analysis measured in the same run.

Run: ``.venv/bin/python benchmarks/rhythm_corrections.py [--songs 06 13] [--json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import mir_eval
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.project import load_project, save_project  # noqa: E402
from bridge.project.create import new_project  # noqa: E402
from bridge.project.schema import RhythmCorrection  # noqa: E402

SONGS = REPO.parent / "shared" / "data" / "songs"


def f_measure(ref, est, duration: float) -> float:
    keep = lambda t: np.asarray(t, dtype=np.float64)[(np.asarray(t) >= 0.05) & (np.asarray(t) <= duration - 0.05)]  # noqa: E731
    return float(mir_eval.beat.f_measure(keep(ref), keep(est), f_measure_threshold=0.07))


def measure(song: Path, work: Path) -> dict:
    truth = json.loads((song / "ground_truth.json").read_text())
    stems = work / song.name / "stems"
    stems.mkdir(parents=True)
    for f in song.glob("*.flac"):
        shutil.copy(f, stems / f.name)
    project_dir = work / song.name / "project"
    new_project(project_dir, stems)
    duration = float(truth["duration_s"])
    beats, downbeats = truth["beats"], truth["downbeats"]
    tempo_bpm = float(truth["tempo_map"][0][1])
    _, numerator, unit = truth["time_signatures"][0]
    row: dict = {"song": song.name, "true_tempo_bpm": tempo_bpm, "true_meter": f"{numerator}/{unit}"}

    def run(correction: RhythmCorrection, key: str) -> None:
        project, _ = load_project(project_dir)
        save_project(project.model_copy(update={"rhythm": correction}), project_dir)
        project, _ = load_project(project_dir)
        t0 = time.perf_counter()
        grid = analyze_project(project, project_dir, max_workers=2).beat_grid
        row[f"{key}_s"] = round(time.perf_counter() - t0, 3)
        row[f"{key}_tempo_bpm"] = round(grid.tempo_bpm, 2)
        row[f"{key}_beat_f"] = round(f_measure(beats, grid.beats_s, duration), 3)
        row[f"{key}_downbeat_f"] = round(f_measure(downbeats, grid.downbeats_s, duration), 3)

    run(RhythmCorrection(), "full")
    run(RhythmCorrection(tempo_bpm=tempo_bpm), "tempo")
    run(RhythmCorrection(first_downbeat_seconds=float(downbeats[0])), "downbeat")
    run(RhythmCorrection(tempo_bpm=tempo_bpm, meter=f"{numerator}/{unit}",
                         first_downbeat_seconds=float(downbeats[0])), "all")
    row["correction_vs_full"] = round(max(row["tempo_s"], row["downbeat_s"], row["all_s"]) / row["full_s"], 3)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", nargs="*", help="song folder prefixes (default: every annotated song)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not SONGS.exists():
        print(f"no shared songs at {SONGS}; nothing to measure", file=sys.stderr)
        return 0
    songs = sorted(p for p in SONGS.iterdir() if (p / "ground_truth.json").exists() and any(p.glob("*.flac")))
    if args.songs:
        songs = [p for p in songs if any(p.name.startswith(s) for s in args.songs)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for song in songs:
            rows.append(measure(song, Path(tmp)))
            if not args.json:
                r = rows[-1]
                print(f"{r['song'][:44]:<44} truth {r['true_tempo_bpm']:6.1f} {r['true_meter']:<4} | "
                      f"detected {r['full_tempo_bpm']:6.1f} F {r['full_beat_f']:.2f}/{r['full_downbeat_f']:.2f} "
                      f"{r['full_s']:5.2f}s | tempo-fixed F {r['tempo_beat_f']:.2f}/{r['tempo_downbeat_f']:.2f} "
                      f"{r['tempo_s']:5.2f}s | downbeat-fixed F {r['downbeat_beat_f']:.2f}/{r['downbeat_downbeat_f']:.2f} | all-fixed F {r['all_beat_f']:.2f}/{r['all_downbeat_f']:.2f} "
                      f"{r['all_s']:5.2f}s | correction/full {r['correction_vs_full']:.2f}", flush=True)
    if args.json:
        print(json.dumps({"songs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
