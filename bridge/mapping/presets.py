"""Mapping presets: a musical starting point built from the stems a project actually has.

Defined in :mod:`bridge.project.presets` (presets are project data, and project creation needs them
below the mapping layer); re-exported here so ``bridge.mapping.presets`` keeps working.
"""

from __future__ import annotations

from bridge.project.presets import (
    HAT_WORDS,
    KICK_WORDS,
    LEAD_ROLES,
    MIX_TRAVEL,
    PRESETS,
    SNARE_WORDS,
    classify_stems,
    default_mappings,
    minimal_mappings,
    strobe_mappings,
)

__all__ = [
    "HAT_WORDS", "KICK_WORDS", "LEAD_ROLES", "MIX_TRAVEL", "PRESETS", "SNARE_WORDS", "classify_stems",
    "default_mappings", "minimal_mappings", "strobe_mappings",
]
