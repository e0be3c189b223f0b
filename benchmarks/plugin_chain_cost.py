"""What does a 3-plugin chain per stem cost, next to the analysis it feeds?

A 4-stem song (synthetic: kick, bass, pad, hats; stereo, 44.1 kHz) written to a temporary project.
Every stem gets the same 3-slot chain: with zam-plugins installed ZamCompX2 (stereo compressor),
ZamEQ2 (a mono EQ, run dual-mono) and pedalboard's Reverb; without them Compressor, PeakFilter and
Reverb (built-ins only). Timed, after one warm-up analysis:

- analysis: ``analyze_project`` with no chains and no cache (features + beat grid + sections);
- chains: ``apply_chain`` over every stem at the project rate (plugin loading included);
- analysis with chains: ``analyze_project`` with the chains on, no cache (what a producer waits for).

Prints the times and chains / analysis (``--json``: one object). The default is the issue's song:
4 stems × 4 minutes (about two minutes to run on two cores); ``--seconds 20`` for a quick look.

Run: ``.venv/bin/python benchmarks/plugin_chain_cost.py [--seconds 240] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.analysis.project import analyze_project  # noqa: E402
from bridge.plugins.chain import apply_chain  # noqa: E402
from bridge.project import StemSpec, TempoSettings, save_project  # noqa: E402
from bridge.project.schema import FxSlot, Project  # noqa: E402
from bridge.stems.load import load_audio  # noqa: E402

SR = 44100
ZAM = Path("/usr/lib/vst3")


def synth_stems(seconds: float, tempo_bpm: float = 120.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = 60.0 / tempo_bpm
    phase = t % beat
    kick = 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * phase)) * phase) * np.exp(-10 * phase)
    bass = 0.3 * np.sign(np.sin(2 * np.pi * 55 * t)) * (0.6 + 0.4 * np.cos(2 * np.pi * t / (4 * beat)))
    pad = 0.15 * sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate((220.0, 277.2, 329.6)))
    hats = 0.2 * rng.standard_normal(n) * np.exp(-60 * (t % (beat / 2)))
    out = {}
    for name, mono in (("Kick", kick), ("Bass", bass), ("Pad", pad), ("Hats", hats)):
        stereo = np.stack([mono, np.roll(mono, 20)]).astype(np.float32)
        out[name] = stereo
    return out


def chain() -> tuple[list[FxSlot], str]:
    if (ZAM / "ZamCompX2.vst3").exists() and (ZAM / "ZamEQ2.vst3").exists():
        return [FxSlot(plugin=str(ZAM / "ZamCompX2.vst3"), parameters={"threshold_db": -20.0, "ratio": 4.0}),
                FxSlot(plugin=str(ZAM / "ZamEQ2.vst3")),
                FxSlot(plugin="Reverb", parameters={"room_size": 0.4, "wet_level": 0.2})], \
            "ZamCompX2 + ZamEQ2 (dual-mono) + Reverb"
    return [FxSlot(plugin="Compressor", parameters={"threshold_db": -20.0, "ratio": 4.0}),
            FxSlot(plugin="PeakFilter", parameters={"cutoff_frequency_hz": 800.0, "gain_db": 3.0}),
            FxSlot(plugin="Reverb", parameters={"room_size": 0.4, "wet_level": 0.2})], \
        "Compressor + PeakFilter + Reverb (built-ins; zam-plugins not installed)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=240.0, help="song length (default 240: 4 minutes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import soundfile as sf

    slots, chain_name = chain()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stems = []
        for name, audio in synth_stems(args.seconds).items():
            (folder / "stems").mkdir(exist_ok=True)
            sf.write(folder / "stems" / f"{name}.wav", audio.T, SR, subtype="FLOAT")
            stems.append(StemSpec(name=name, path=f"stems/{name}.wav"))
        project = Project(name="bench", sample_rate=SR, stems=stems,
                          tempo=TempoSettings(source="constant", tempo_bpm=120.0))
        save_project(project, folder)
        analyze_project(project, folder, use_cache=False)  # warm-up (numba, librosa caches)

        t0 = time.perf_counter()
        analyze_project(project, folder, use_cache=False)
        analysis_s = time.perf_counter() - t0

        problems = []
        t0 = time.perf_counter()
        for spec in project.stems:
            audio = load_audio(folder / spec.path, sample_rate=SR)
            problems += apply_chain(audio, SR, slots, tempo_bpm=120.0, where=spec.name).problems
        chains_s = time.perf_counter() - t0

        with_fx = project.model_copy(update={"stems": [s.model_copy(update={"fx": slots}) for s in project.stems]})
        t0 = time.perf_counter()
        analyze_project(with_fx, folder, use_cache=False)
        analysis_fx_s = time.perf_counter() - t0

    result = {
        "song_seconds": args.seconds, "stems": len(stems), "chain": chain_name,
        "analysis_s": round(analysis_s, 3), "chains_s": round(chains_s, 3),
        "analysis_with_chains_s": round(analysis_fx_s, 3),
        "chains_over_analysis": round(chains_s / analysis_s, 3),
        "with_chains_over_without": round(analysis_fx_s / analysis_s, 3),
        "problems": problems,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(stems)} stems × {args.seconds:g} s, chain per stem: {chain_name}")
        print(f"analysis (no chains)      {analysis_s:7.3f} s")
        print(f"chains alone (4 stems)    {chains_s:7.3f} s   = {chains_s / analysis_s:.2f} × analysis")
        print(f"analysis with the chains  {analysis_fx_s:7.3f} s   = {analysis_fx_s / analysis_s:.2f} × analysis")
        for p in problems:
            print(f"problem: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
