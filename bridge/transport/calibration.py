"""Speaker-time calibration: one latency offset per sync setup, kept in the user's preferences.

What a producer sees must match what they hear. Between the DAW's position message and the sound
at the speaker lie the DAW's output buffer and converter; between our position and the picture lie
the render and the display. None of the DAWs we follow reports its output latency over its sync
protocol (AbletonOSC's application API has the version and process usage only; REAPER's OSC
patterns have no audio-device values; Ardour's feedback gives the sample rate, not the buffer;
Link's timeline is already speaker time), so the offset is measured by ear: the app flashes on
every beat of the position it follows, the producer turns on the DAW's metronome and nudges the
offset until flash and click coincide (the app's *Transport ▸ Calibrate…*).

The offset is :attr:`TransportClock.latency_ms <bridge.transport.clock.TransportClock.latency_ms>`
(positive = show a later position): the playhead, the preview and every frame the app shows read
the clock. It is *not* applied to an export: the file carries the audio and the video sample-aligned,
with no speaker or display in between.

Offsets are stored per setup (:func:`setup_key`: the sync source, plus Link) in one JSON file in
the user's config folder (:func:`calibration_file`), shared by the app and ``stembridge listen`` /
``preview`` (used when ``--latency-ms`` is not given).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from bridge.errors import TransportError

log = logging.getLogger(__name__)

__all__ = ["MAX_LATENCY_MS", "beat_flash", "calibration_file", "latency_for", "load_latencies", "save_latencies",
           "save_latency",
           "setup_key"]

#: The offsets the app offers (a DAW with a 4096-sample buffer at 44.1 kHz is ~93 ms, plus display).
MAX_LATENCY_MS = 500.0
_VERSION = 1


def calibration_file() -> Path:
    """``sync_latency.json`` in the user's config folder (``STEMBRIDGE_CALIBRATION_FILE`` overrides)."""
    override = os.environ.get("STEMBRIDGE_CALIBRATION_FILE")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("stembridge", appauthor=False)) / "sync_latency.json"


def setup_key(option: str | None, *, link: bool = False) -> str:
    """The setup an offset belongs to: the sync option (``--reaper-osc`` → "reaper-osc"; None: the
    local clock) and whether Ableton Link rides along ("reaper-osc+link", "link")."""
    base = option.strip().lstrip("-") if option else ""
    if link:
        return f"{base}+link" if base else "link"
    return base or "local"


def _check(key: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and abs(v) <= MAX_LATENCY_MS):
        raise TransportError(f"latency offset {value!r} ms for {key!r} is out of range: use a number of "
                             f"milliseconds within ±{MAX_LATENCY_MS:g} (positive shows a later position)")
    return v


def load_latencies(path: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Every stored offset (ms) by setup key; {} when there is no file. A damaged file or entry is
    skipped with a warning (the offsets are a convenience: the app must start without them)."""
    p = Path(path) if path is not None else calibration_file()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignored the latency offsets in %s (%s); calibrate again to replace them", p, e)
        return {}
    entries = data.get("latency_ms") if isinstance(data, dict) else None
    out: dict[str, float] = {}
    for key, value in (entries.items() if isinstance(entries, dict) else ()):
        try:
            out[str(key)] = _check(str(key), value)
        except TransportError as e:
            log.warning("ignored a stored offset: %s", e)
    return out


def latency_for(key: str, path: str | os.PathLike[str] | None = None) -> float | None:
    """The stored offset (ms) for one setup, or None."""
    return load_latencies(path).get(key)


def save_latency(key: str, latency_ms: float, path: str | os.PathLike[str] | None = None) -> Path:
    """Store the offset for one setup (the others are kept); written atomically. Returns the file."""
    return save_latencies({key: latency_ms}, path)


def save_latencies(changes: dict[str, float], path: str | os.PathLike[str] | None = None) -> Path:
    """Store several setups' offsets at once (the others are kept); all are checked before anything
    is written (TransportError names the bad one). Returns the file."""
    from bridge.fsutil import atomic_write_text

    checked = {str(k): round(_check(str(k), v), 3) for k, v in changes.items()}
    p = Path(path) if path is not None else calibration_file()
    entries = {**load_latencies(p), **checked}
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps({"version": _VERSION, "latency_ms": dict(sorted(entries.items()))}, indent=2))
    return p


def beat_flash(position_beats: float, *, decay_beats: float = 0.15) -> float:
    """Brightness 0..1 of the calibration flash at a song position (quarter notes): 1 on each beat,
    fading linearly over ``decay_beats``; 0 for a position that is not a finite number."""
    if not math.isfinite(position_beats) or decay_beats <= 0:
        return 0.0
    since = position_beats - math.floor(position_beats)
    return max(0.0, 1.0 - since / decay_beats)
