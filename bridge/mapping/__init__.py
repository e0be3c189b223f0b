"""Mappings: stem features and beat-locked oscillators → visual parameters, per video frame.

Vectorised numpy; never imports Qt or torch.
"""

from bridge.mapping.evaluate import (
    apply_curve,
    envelope_follower,
    evaluate_mappings,
    frame_times,
    song_frame_count,
)
from bridge.mapping.frame_params import FrameParams
from bridge.mapping.params import PARAMETER_NAMES, PARAMETERS, VisualParameter
from bridge.mapping.presets import (
    PRESETS,
    classify_stems,
    default_mappings,
    minimal_mappings,
    strobe_mappings,
)
from bridge.mapping.sections import resolve_sections, section_timeline
from bridge.mapping.sources import (
    OSCILLATOR_SHAPES,
    OSCILLATOR_SOURCES,
    STEM_FEATURES,
    OscillatorSource,
    StemSource,
    beat_position,
    beat_time,
    oscillator_values,
    resolve_source,
    robust_normalise,
    valid_sources,
)

__all__ = [
    "FrameParams",
    "OSCILLATOR_SHAPES",
    "OSCILLATOR_SOURCES",
    "OscillatorSource",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "PRESETS",
    "STEM_FEATURES",
    "StemSource",
    "VisualParameter",
    "apply_curve",
    "beat_position",
    "beat_time",
    "classify_stems",
    "default_mappings",
    "envelope_follower",
    "evaluate_mappings",
    "frame_times",
    "minimal_mappings",
    "oscillator_values",
    "resolve_sections",
    "resolve_source",
    "robust_normalise",
    "section_timeline",
    "song_frame_count",
    "strobe_mappings",
    "valid_sources",
]
