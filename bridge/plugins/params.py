"""What a slot's parameters look like, for a generic editor: name, kind, range, step, unit, value.

Hosted plugins report ranges, steps, units and named values through pedalboard
(``plugin.parameters[name]``); pedalboard's built-ins report none, so they get ranges from
:data:`BUILTIN_RANGES` (by class and setting) or from the setting's name (``*_hz``, ``*_db``,
``*_ms``…), the same table the app's sliders use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bridge.plugins.builtins import TEMPO_SYNCED
from bridge.project.schema import FxSlot, ParamValue


@dataclass
class ParamInfo:
    name: str
    kind: str  # "float" | "bool" | "choice"
    value: ParamValue
    minimum: float = 0.0
    maximum: float = 1.0
    step: float | None = None
    unit: str = ""
    log: bool = False  # a frequency: sliders move on a log scale
    choices: list[str] = field(default_factory=list)


#: (class, setting) -> (min, max, unit, log) for pedalboard's built-ins.
BUILTIN_RANGES: dict[tuple[str, str], tuple[float, float, str, bool]] = {
    ("Compressor", "ratio"): (1.0, 20.0, ":1", False),
    ("Limiter", "threshold_db"): (-60.0, 0.0, "dB", False),
    ("Compressor", "threshold_db"): (-60.0, 0.0, "dB", False),
    ("NoiseGate", "threshold_db"): (-100.0, 0.0, "dB", False),
    ("NoiseGate", "ratio"): (1.0, 100.0, ":1", False),
    ("Gain", "gain_db"): (-60.0, 24.0, "dB", False),
    ("Bitcrush", "bit_depth"): (1.0, 32.0, "bits", False),
    ("PitchShift", "semitones"): (-12.0, 12.0, "st", False),
    ("Chorus", "rate_hz"): (0.01, 20.0, "Hz", True),
    ("Phaser", "rate_hz"): (0.01, 20.0, "Hz", True),
    ("Chorus", "depth"): (0.0, 1.0, "", False),
    ("Chorus", "centre_delay_ms"): (0.0, 100.0, "ms", False),
    ("Phaser", "depth"): (0.0, 1.0, "", False),
    ("Phaser", "feedback"): (-1.0, 1.0, "", False),
    ("Delay", "delay_seconds"): (0.0, 5.0, "s", False),
    ("Delay", "delay_beats"): (0.0, 8.0, "beats", False),
    ("Distortion", "drive_db"): (0.0, 60.0, "dB", False),
    ("Clipping", "threshold_db"): (-60.0, 0.0, "dB", False),
    ("LadderFilter", "drive"): (1.0, 10.0, "", False),
    ("LadderFilter", "resonance"): (0.0, 1.0, "", False),
}


#: Parameters some plugin frameworks expose that belong to the host, not the producer: DPF plugins
#: (the Zam ones) report the host's block size and sample rate as parameters. Setting them by hand
#: would break processing, so the editor leaves them out.
HOST_PARAMETERS = frozenset({"buffer_size_frames", "sample_rate_frames"})


def _by_name(name: str) -> tuple[float, float, str, bool]:
    """A built-in setting's range from its name."""
    if name.endswith("_hz"):
        return 20.0, 20000.0, "Hz", True
    if name.endswith("_db"):
        return -60.0, 24.0, "dB", False
    if name.endswith("_ms"):
        return 0.0, 2000.0, "ms", False
    if name.endswith("_seconds"):
        return 0.0, 10.0, "s", False
    if name in ("q", "resonance"):
        return 0.1, 10.0, "", False
    return 0.0, 1.0, "", False  # mix, room_size, damping, wet_level, feedback …


def describe_parameters(slot: FxSlot, *, plugin=None, tempo_bpm: float | None = 120.0) -> list[ParamInfo]:
    """The slot's parameters with their current values (the slot's own, else the plugin's default).

    ``plugin``: the built pedalboard plugin (built from the slot when not given; raises PluginError
    when a hosted plugin is not installed)."""
    from bridge.plugins.chain import build_plugin, builtin_parameter_names

    if slot.is_builtin:
        import pedalboard

        default = getattr(pedalboard, slot.plugin)()
        out = []
        for name in builtin_parameter_names(slot.plugin):
            if name in ("mode",):  # LadderFilter's mode is an enum, not a plain value
                continue
            seconds_key = TEMPO_SYNCED.get((slot.plugin, name))
            current = slot.parameters.get(name)
            if current is None:
                current = 0.0 if seconds_key else getattr(default, name, 0.0)
            if isinstance(current, bool):
                out.append(ParamInfo(name, "bool", current))
                continue
            if not isinstance(current, (int, float)):
                continue
            lo, hi, unit, log = BUILTIN_RANGES.get((slot.plugin, name)) or _by_name(name)
            value = float(current)
            lo, hi = min(lo, value), max(hi, value)
            out.append(ParamInfo(name, "float", value, lo, hi, None, unit, log))
        return out
    plugin = plugin if plugin is not None else build_plugin(slot, tempo_bpm=tempo_bpm)
    out = []
    for name, p in plugin.parameters.items():
        if name in HOST_PARAMETERS:
            continue
        value = slot.parameters.get(name, getattr(plugin, name))
        unit = (getattr(p, "label", None) or getattr(p, "units", None) or "").strip()
        if p.type is bool:
            out.append(ParamInfo(name, "bool", bool(value), unit=unit))
        elif p.type is str:
            choices = [str(v) for v in (p.valid_values or [])]
            out.append(ParamInfo(name, "choice", str(value), choices=choices, unit=unit))
        else:
            lo, hi, step = p.range
            lo = 0.0 if lo is None or not math.isfinite(lo) else float(lo)
            hi = 1.0 if hi is None or not math.isfinite(hi) else float(hi)
            out.append(ParamInfo(name, "float", float(value), lo, hi, step, unit,
                                 unit.lower() == "hz" and lo > 0))
    return out
