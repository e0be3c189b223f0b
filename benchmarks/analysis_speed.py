"""How fast is stem analysis? ``analyze_stems`` vs. librosa's default calls on the same audio.

Four stems × four minutes at ANALYSIS_SAMPLE_RATE (the shared 3/4 song's drums/bass/lead/other
looped, or synthetic stems when ../shared/data is absent). Both sides are warmed up first (numba
compiles librosa's beat tracker on first use). Timed:

- ours: ``bridge.analysis.pipeline.analyze_stems`` (fresh, no cache): every stem's curves and
  onsets, song beats/downbeats/meter, sections; ``max_workers`` threads (default 2).
- baseline: for each stem, one after the other, ``librosa.beat.beat_track``,
  ``librosa.onset.onset_strength``, ``librosa.feature.chroma_stft`` and ``librosa.feature.rms``,
  each with its defaults (so each recomputes its own spectrogram).

Prints both times and ours / baseline (the goal is ≤ 0.5); ``--json`` prints one JSON object.
``--compare-pools`` also times the per-stem features on a thread pool vs a process pool.
``--mix`` also times a project of one mix (the four stems summed): ``analyze_stems`` with the mix's
percussive part heard as the drums (:func:`bridge.analysis.pipeline.percussive_part`) beside the
same analysis without it, in the same run: what the part costs.

Run: ``.venv/bin/python benchmarks/analysis_speed.py [--seconds 240] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.analysis.features import compute_stem_features  # noqa: E402
from bridge.analysis.pipeline import analyze_stems  # noqa: E402
from bridge.analysis.types import ANALYSIS_SAMPLE_RATE  # noqa: E402

SR = ANALYSIS_SAMPLE_RATE
SONG = REPO.parent / "shared" / "data" / "songs" / "03_freedoom_e2m6_concept_of_technology_3-4"
ROLES = {"drums": "drums", "bass": "bass", "lead": "other", "other": "other"}


def real_stems(seconds: float) -> list[tuple[str, str, np.ndarray]] | None:
    """The shared song's four stems, mono at SR, looped to ``seconds``; None if absent."""
    if not SONG.exists():
        return None
    import soundfile as sf

    n = int(seconds * SR)
    out = []
    for name, role in ROLES.items():
        audio, rate = sf.read(SONG / f"{name}.flac", dtype="float32", always_2d=True)
        mono = librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=SR).astype(np.float32)
        out.append((name, role, np.resize(mono, n)))
    return out


def synthetic_stems(seconds: float, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """Four stems at 120 BPM: clicks+noise drums, a bass line, chords, a melody."""
    gen = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = (t * 2.0) % 1.0  # 120 BPM phase
    drums = (np.exp(-beat / 0.03) * gen.standard_normal(n) * 0.4).astype(np.float32)
    bass = (0.4 * np.sin(2 * np.pi * 55.0 * t) * np.exp(-beat / 0.2)).astype(np.float32)
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)).astype(np.float32)
    melody_hz = 440.0 * 2 ** (np.floor(t * 4) % 5 / 12)
    melody = (0.2 * np.sin(2 * np.pi * np.cumsum(melody_hz) / SR)).astype(np.float32)
    return [("drums", "drums", drums), ("bass", "bass", bass), ("chords", "other", chord),
            ("melody", "other", melody)]


def baseline(stems: list[tuple[str, str, np.ndarray]]) -> None:
    for _, _, y in stems:
        librosa.beat.beat_track(y=y, sr=SR)
        librosa.onset.onset_strength(y=y, sr=SR)
        librosa.feature.chroma_stft(y=y, sr=SR)
        librosa.feature.rms(y=y)


def ours(stems: list[tuple[str, str, np.ndarray]], seconds: float, workers: int) -> None:
    analyze_stems(stems, duration_seconds=seconds, max_workers=workers)


def _features(item: tuple[str, str, np.ndarray]):
    name, role, audio = item
    return compute_stem_features(audio, name=name, role=role)


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of ``fn(*args)``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="length of each stem (s)")
    parser.add_argument("--workers", type=int, default=2, help="analyze_stems max_workers")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    parser.add_argument("--synthetic", action="store_true", help="synthetic stems even if shared data exists")
    parser.add_argument("--compare-pools", action="store_true", help="also time thread vs process pool")
    parser.add_argument("--mix", action="store_true", help="also time one mix with and without its percussive part")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    stems = None if args.synthetic else real_stems(args.seconds)
    source = "shared song 03 looped" if stems is not None else "synthetic"
    if stems is None:
        stems = synthetic_stems(args.seconds)

    warm = [(n, r, a[: 5 * SR]) for n, r, a in stems]
    baseline(warm)
    ours(warm, 5.0, args.workers)

    # Interleaved runs, fastest of each: other work on the machine slows both sides alike. CPU
    # time is reported too: on a busy machine it varies less than wall time.
    base_runs, our_runs = [], []
    for _ in range(args.repeat):
        base_runs.append(timed(baseline, stems))
        our_runs.append(timed(ours, stems, args.seconds, args.workers))
    t_base, t_ours = min(w for w, _ in base_runs), min(w for w, _ in our_runs)
    cpu_base, cpu_ours = min(c for _, c in base_runs), min(c for _, c in our_runs)
    result = {
        "stems": len(stems),
        "seconds_per_stem": args.seconds,
        "audio": source,
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "baseline_s": round(t_base, 3),
        "analyze_stems_s": round(t_ours, 3),
        "ratio": round(t_ours / t_base, 3),
        "ratios_per_run": [round(o[0] / b[0], 3) for o, b in zip(our_runs, base_runs, strict=True)],
        "baseline_cpu_s": round(cpu_base, 3),
        "analyze_stems_cpu_s": round(cpu_ours, 3),
        "cpu_ratio": round(cpu_ours / cpu_base, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "goal_ratio": 0.5,
    }
    if args.compare_pools:
        def threads() -> None:
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                list(pool.map(_features, stems))

        def processes() -> None:  # the pool's start-up (imports in each worker) counts: users pay it
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                list(pool.map(_features, stems))

        def serial() -> None:
            for item in stems:
                _features(item)

        runs: dict[str, list[float]] = {"serial": [], "threads": [], "processes": []}
        for _ in range(args.repeat):
            for name, fn in (("serial", serial), ("threads", threads), ("processes", processes)):
                runs[name].append(timed(fn)[0])
        for name, times in runs.items():
            result[f"features_{name}_s"] = round(min(times), 3)

    if args.mix:
        import bridge.analysis.pipeline as pipeline

        mix = [("mix", "other", np.sum([a for _, _, a in stems], axis=0).astype(np.float32))]
        real_part = pipeline.percussive_part
        runs = {"with": [], "without": []}
        for _ in range(args.repeat):
            runs["with"].append(timed(ours, mix, args.seconds, args.workers)[0])
            pipeline.percussive_part = lambda stems, cancel=None: None
            try:
                runs["without"].append(timed(ours, mix, args.seconds, args.workers)[0])
            finally:
                pipeline.percussive_part = real_part
        result["mix_with_percussive_s"] = round(min(runs["with"]), 3)
        result["mix_without_percussive_s"] = round(min(runs["without"]), 3)
        result["mix_percussive_ratio"] = round(min(runs["with"]) / min(runs["without"]), 3)

    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(stems)} stems x {args.seconds:.0f} s ({source}), {os.cpu_count()} CPUs")
        print(f"  baseline (librosa defaults per stem): {t_base:8.2f} s")
        print(f"  analyze_stems ({args.workers} threads):        {t_ours:8.2f} s")
        print(f"  ratio: {t_ours / t_base:.3f} (goal <= 0.5); per run {result['ratios_per_run']}")
        print(f"  CPU time: baseline {cpu_base:.2f} s, analyze_stems {cpu_ours:.2f} s, "
              f"ratio {cpu_ours / cpu_base:.3f}; load average {result['load_average_1min']}")
        if args.mix:
            print(f"  one mix: {result['mix_with_percussive_s']:.2f} s with its percussive part, "
                  f"{result['mix_without_percussive_s']:.2f} s without ({result['mix_percussive_ratio']:.2f}x)")
        for key in ("features_serial_s", "features_threads_s", "features_processes_s"):
            if key in result:
                print(f"  {key}: {result[key]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
