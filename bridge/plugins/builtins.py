"""The pedalboard built-in effects a chain may use by class name (no plugin installed).

A vocabulary only (no pedalboard import), so the project schema can validate slots against it.
Effects that need a file or change the sample rate (Convolution, Resample, MP3Compressor…) are left
out: a slot's settings must be plain numbers, switches or words.
"""

from __future__ import annotations

#: pedalboard class names usable as ``FxSlot.plugin``.
BUILTIN_EFFECTS: tuple[str, ...] = (
    "Bitcrush", "Chorus", "Clipping", "Compressor", "Delay", "Distortion", "Gain",
    "HighShelfFilter", "HighpassFilter", "LadderFilter", "Limiter", "LowShelfFilter",
    "LowpassFilter", "NoiseGate", "PeakFilter", "Phaser", "PitchShift", "Reverb",
)

#: Tempo-synced settings of built-ins: (class, setting in beats) -> the pedalboard setting in
#: seconds it becomes at the project's tempo. Hosted plugins get no tempo from pedalboard.
TEMPO_SYNCED: dict[tuple[str, str], str] = {("Delay", "delay_beats"): "delay_seconds"}

#: File name endings of the plugin bundles stembridge hosts: VST3, and Audio Units on macOS.
PLUGIN_BUNDLE_SUFFIXES: tuple[str, ...] = (".vst3", ".component")


def is_builtin(plugin: str) -> bool:
    return plugin in BUILTIN_EFFECTS
