"""The demo song: a deterministic four-stem electronic track with its ground truth.

``stembridge demo`` renders it for new users; tests use it as audio whose beats, onsets, chords and
sections are known exactly.
"""

from bridge.demo.song import (
    DEMO_BEATS_PER_BAR,
    DEMO_TEMPO_BPM,
    STEM_NAMES,
    DemoSong,
    demo_stem_filename,
    generate_demo_song,
    ground_truth_dict,
    write_demo_stems,
    write_ground_truth,
)

__all__ = [
    "DEMO_BEATS_PER_BAR",
    "DEMO_TEMPO_BPM",
    "STEM_NAMES",
    "DemoSong",
    "demo_stem_filename",
    "generate_demo_song",
    "ground_truth_dict",
    "write_demo_stems",
    "write_ground_truth",
]
