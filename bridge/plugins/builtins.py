"""The pedalboard built-in effects a chain may use by class name (no plugin installed).

A vocabulary only (no pedalboard import), so the project schema can validate slots against it. It
lives in :mod:`bridge.vocab` (the bottom layer: the schema sits below :mod:`bridge.plugins`) and is
re-exported here. Effects that need a file or change the sample rate (Convolution, Resample,
MP3Compressor…) are left out: a slot's settings must be plain numbers, switches or words.
"""

from __future__ import annotations

from bridge.vocab import BUILTIN_EFFECTS, PLUGIN_BUNDLE_SUFFIXES, TEMPO_SYNCED, is_builtin

__all__ = ["BUILTIN_EFFECTS", "PLUGIN_BUNDLE_SUFFIXES", "TEMPO_SYNCED", "is_builtin"]
