"""Export: stem mixdown and the MP4 writer (PyAV). The project-level render lives in ``render``."""

from bridge.export.mixdown import (
    db_to_gain,
    integrated_loudness_lufs,
    measure_levels,
    mix_stems,
    to_stereo,
)
from bridge.export.video import (
    AAC_SAMPLE_RATES,
    DEFAULT_AUDIO_BITRATE,
    DEFAULT_CRF,
    DEFAULT_PRESET,
    VideoWriter,
    rgb_to_yuv420p,
    write_video,
)

__all__ = [
    "AAC_SAMPLE_RATES",
    "DEFAULT_AUDIO_BITRATE",
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "VideoWriter",
    "db_to_gain",
    "integrated_loudness_lufs",
    "measure_levels",
    "mix_stems",
    "rgb_to_yuv420p",
    "to_stereo",
    "write_video",
]
