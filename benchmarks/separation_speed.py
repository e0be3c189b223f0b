"""Separation speed: our wrapper vs the `demucs` command line, same model, same audio, one run.

The model is the full-size ``htdemucs`` architecture (HTDemucs with the release's settings:
4 sources, 48 channels, depth 4, 5 cross-transformer layers, 512 bottom channels, 7.8 s segments)
with *random* weights — compute does not depend on the weight values, and nothing is downloaded. It
is saved once into a temporary ``--model-repo`` folder that both programs load.

Reported, from the same run:
  - ratio: wall time of ``python -m bridge.separation.cli`` / ``python -m demucs.separate`` (both
    whole processes: interpreter start, model load, decode, separate, write; best of --repeats,
    alternating) — goal ≤ 1.05;
  - reopen_s: a cached re-run in-process (``separate_mix`` → cache hit, no model load) — goal ≤ 0.5 s;
    and the whole cached CLI process for reference;
  - s_per_audio_s: wall seconds per second of audio of our run (CPU here; on a GPU if one is used);
  - peak RSS of both processes (calibrates the memory estimate used to plan long mixes);
  - max |ours − demucs| with --shifts 0 (no random shifts): the two produce the same stems.

Usage: python benchmarks/separation_speed.py [--seconds 30] [--repeats 2] [--shifts 1] [--device cpu]
       [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SR = 44100
SOURCES = ["drums", "bass", "other", "vocals"]
# The process wrapper prints its own peak RSS, so both programs are measured the same way.
_RUN = ("import resource, runpy, sys; sys.argv = [sys.argv[1]] + sys.argv[2:]; "
        "code = 0\ntry:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\n"
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)")


def build_random_htdemucs(repo: Path) -> str:
    """Save an HTDemucs with the htdemucs release's hyper-parameters and random weights into ``repo``."""
    import torch
    from demucs.htdemucs import HTDemucs

    from bridge.separation import save_model_to_repo

    torch.manual_seed(0)
    # The release (955717e8) differs from HTDemucs' defaults only in these (its kwargs, as also read
    # by independent ports of the model): bottleneck channels and the 7.8 s training segment.
    model = HTDemucs(sources=SOURCES, bottom_channels=512, segment=Fraction(39, 5)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    save_model_to_repo(model, repo, name="htdemucs_random", fmt="th")
    return f"{n_params / 1e6:.1f} M parameters"


def make_mix(path: Path, seconds: float) -> None:
    gen = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    beat = (np.sin(2 * np.pi * 2 * t) > 0.99).astype(np.float32) * gen.standard_normal(t.size).astype(np.float32)
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    pad = 0.1 * np.sin(2 * np.pi * 440 * t + 0.3 * np.sin(2 * np.pi * 0.5 * t))
    left = 0.5 * beat + bass + pad
    right = 0.5 * beat + bass - pad
    sf.write(str(path), np.stack([left, right], axis=1).astype(np.float32), SR, subtype="PCM_24")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUN, *cmd], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss_kb = int(next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")))
    return wall, rss_kb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shifts", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP/MKL threads for both programs (default: torch's choice); 1 is steadier on a busy machine")
    ap.add_argument("--no-equivalence", action="store_true", help="skip the --shifts 0 output comparison")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = root / "repo"
        model_info = build_random_htdemucs(repo)
        mix = root / "mix.wav"
        make_mix(mix, args.seconds)
        # Our cache goes to a throwaway folder (platformdirs honours XDG_CACHE_HOME on Linux).
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "xdg")}
        if args.threads:
            env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

        def ours_cmd(out: str, shifts: int, *extra: str) -> list[str]:
            return ["bridge.separation.cli", str(mix), "-o", str(root / out), "--model-repo", str(repo),
                    "--shifts", str(shifts), "--overlap", "0.25", "--device", args.device, "-q", *extra]

        def demucs_cmd(out: str, shifts: int) -> list[str]:
            return ["demucs.separate", str(mix), "-o", str(root / out), "-n", "htdemucs_random", "--repo",
                    str(repo), "--shifts", str(shifts), "--overlap", "0.25", "-d", args.device, "--float32",
                    "--clip-mode", "none"]

        ours_t, theirs_t, ours_rss, theirs_rss = [], [], [], []
        for i in range(args.repeats):  # alternate, so machine load drifts hit both alike
            t, rss = run(ours_cmd(f"ours{i}", args.shifts, "--no-cache"), env)
            ours_t.append(t)
            ours_rss.append(rss)
            t, rss = run(demucs_cmd(f"theirs{i}", args.shifts), env)
            theirs_t.append(t)
            theirs_rss.append(rss)

        # Cached re-open: the last timed run above stored its result (--no-cache only skips reading).
        cli_cached_s, _ = run(ours_cmd("cached", args.shifts), env)
        os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]
        from bridge.separation import separate_mix

        t0 = time.perf_counter()
        result = separate_mix(mix, model_repo=repo, shifts=args.shifts, overlap=0.25, device=args.device)
        reopen_s = time.perf_counter() - t0
        assert result.from_cache, "expected a cache hit"

        max_diff = None
        if not args.no_equivalence:
            run(ours_cmd("eq_ours", 0, "--no-cache"), env)
            run(demucs_cmd("eq_theirs", 0), env)
            diffs = []
            for s in SOURCES:
                a, _ = sf.read(str(root / "eq_ours" / f"mix - {s}.wav"), dtype="float32")
                b, _ = sf.read(str(root / "eq_theirs" / "htdemucs_random" / "mix" / f"{s}.wav"), dtype="float32")
                diffs.append(float(np.abs(np.clip(a, -1, 1) - b).max()))
            max_diff = max(diffs)

    best_ours, best_theirs = min(ours_t), min(theirs_t)
    report = {
        "model": f"htdemucs architecture, random weights ({model_info})",
        "audio_seconds": args.seconds, "shifts": args.shifts, "device": args.device,
        "threads": args.threads or f"torch default ({os.cpu_count()} cores)",
        "ours_s": [round(t, 2) for t in ours_t], "demucs_cli_s": [round(t, 2) for t in theirs_t],
        "ratio": round(best_ours / best_theirs, 3),
        "s_per_audio_s": round(best_ours / args.seconds, 3),
        "reopen_s": round(reopen_s, 3), "cached_cli_process_s": round(cli_cached_s, 2),
        "peak_rss_mb_ours": round(max(ours_rss) / 1024), "peak_rss_mb_demucs": round(max(theirs_rss) / 1024),
        "max_abs_diff_shifts0": max_diff,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>24}: {v}")
        print(f"{'goals':>24}: ratio ≤ 1.05 → {'ok' if report['ratio'] <= 1.05 else 'MISSED'}; "
              f"reopen ≤ 0.5 s → {'ok' if reopen_s <= 0.5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
