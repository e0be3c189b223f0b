"""Separation quality: SDR per stem (BSS Eval v4, as museval computes it) against reference stems.

1. Verifies our SDR code first, on museval's own regression case shipped in
   ``../shared/data/stems_musicdelta_80srock`` (MUSDB18 "Music Delta - 80s Rock" 7 s preview, random
   estimates, museval 0.3.0's framewise values); stops if it disagrees.
2. Separates a mix with the chosen model (default htdemucs) and scores each stem against its
   reference: median over 1 s windows of BSS Eval v4 SDR (the number SiSEC 2018 / MUSDB18 / the
   Demucs papers report), plus the plain "new SDR" of the MDX 2021 challenge. Two baselines put the
   numbers in context: the mixture itself as every stem's estimate, and the mixture / number of
   stems.

With the real weights (a user's machine, after one online run) this reports published-comparable
numbers on MUSDB18 tracks; a 7 s excerpt is only indicative. Without them it falls back to
``demucs_unittest`` (random weights) and says so: its SDRs are meaningless beyond showing the
pipeline runs end to end.

Usage: python benchmarks/separation_quality.py [--mix MIX --refs DIR] [--model NAME | --model-repo DIR]
       [--shifts N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.separation import ModelNotAvailable, separate_mix  # noqa: E402
from bridge.separation.sdr import bss_eval_v4, sdr_per_stem, utterance_sdr  # noqa: E402
from bridge.stems import load_audio  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "stems_musicdelta_80srock"
SR = 44100


def verify_against_museval(folder: Path) -> dict[str, float]:
    """Max |ours − museval| of the framewise SDR on museval's regression case (see the test)."""
    reference = json.loads((folder / "museval_reference_random_estimates.json").read_text())
    stems = {n: sf.read(str(folder / f"{n}.wav"), dtype="float64", always_2d=True)[0]
             for n in ("mixture", "drums", "bass", "other", "vocals")}
    np.random.seed(0)
    random_vocals = np.random.random(stems["mixture"].shape)
    random_accompaniment = np.random.random(stems["mixture"].shape)
    refs = [stems["vocals"].T, (stems["drums"] + stems["bass"] + stems["other"]).T]
    scores = bss_eval_v4(refs, [random_vocals.T, random_accompaniment.T], window_samples=SR, hop_samples=SR)
    out = {}
    for i, target in enumerate(reference["targets"]):
        expected = np.array([f["metrics"]["SDR"] for f in target["frames"]])
        out[target["name"]] = float(np.abs(scores.sdr[i] - expected).max())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mix", type=Path, help="the mixture (default: the shared MUSDB sample's mixture.wav)")
    ap.add_argument("--refs", type=Path, help="folder with <source>.wav references (default: the sample's)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--model-repo", default=None)
    ap.add_argument("--shifts", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report: dict[str, object] = {}

    if SAMPLE.exists():
        diffs = verify_against_museval(SAMPLE)
        report["museval_check_max_abs_db"] = {k: round(v, 6) for k, v in diffs.items()}
        # vocals: one decoded stream, exact to the reference's 5 decimals; accompaniment: the sum of
        # three AAC streams decoded by a newer ffmpeg than museval's (see the test's docstring).
        if diffs["vocals"] > 2e-5 or diffs["accompaniment"] > 5e-3:
            print(f"SDR check against museval FAILED: {diffs}", file=sys.stderr)
            return 1
    mix = args.mix or SAMPLE / "mixture.wav"
    refs_dir = args.refs or SAMPLE
    if not mix.exists():
        print(f"no mix at {mix}; pass --mix and --refs", file=sys.stderr)
        return 2

    model, note = args.model, ""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = separate_mix(mix, model=model, model_repo=args.model_repo, shifts=args.shifts,
                                  device=args.device, cache_dir=Path(tmp) / "cache")
        except ModelNotAvailable as e:
            note = (f"weights for {model or 'htdemucs'} are not available here ({str(e).splitlines()[0].rstrip('.')}); "
                    "fell back to demucs_unittest (random weights): these SDRs only show the pipeline runs")
            model = "demucs_unittest"
            result = separate_mix(mix, model=model, shifts=args.shifts, device=args.device,
                                  cache_dir=Path(tmp) / "cache")
        estimates = {s: load_audio(p, sample_rate=result.sample_rate, allow_silent=True)
                     for s, p in result.stems.items()}
    references = {}
    for source in estimates:
        path = refs_dir / f"{source}.wav"
        if path.exists():
            references[source] = load_audio(path, sample_rate=result.sample_rate, allow_silent=True)
    if not references:
        print(f"no reference stems named like the model's sources ({', '.join(estimates)}) in {refs_dir}",
              file=sys.stderr)
        return 2
    mixture = load_audio(mix, sample_rate=result.sample_rate)
    rate = result.sample_rate
    report.update({
        "model": model or result.model, "shifts": args.shifts, "mix": str(mix),
        "duration_s": round(mixture.shape[1] / rate, 2),
        "sdr_median_db": {k: round(v, 2) for k, v in sdr_per_stem(references, estimates, sample_rate=rate).items()},
        "new_sdr_db": {s: round(utterance_sdr(references[s], estimates[s]), 2) for s in references},
        "baseline_mixture_sdr_db": {k: round(v, 2) for k, v in sdr_per_stem(
            references, {s: mixture for s in references}, sample_rate=rate).items()},
        "baseline_mixture_over_n_sdr_db": {k: round(v, 2) for k, v in sdr_per_stem(
            references, {s: mixture / len(references) for s in references}, sample_rate=rate).items()},
    })
    if note:
        report["note"] = note
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>32}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
