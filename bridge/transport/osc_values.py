"""Coercion of OSC arguments for the transport dialects: every value a DAW (or anything else on
the port) sends is checked, nothing is trusted. Each helper returns None for a value it cannot
use, so a parser drops the message instead of raising (see :mod:`bridge.transport.osc_dialects`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bridge.transport import osc_protocol as P


def _number(value: object) -> float | None:
    """A finite float from an OSC argument (int, float, bool or numeric string), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        if isinstance(value, (int, float)):
            v = float(value)
        elif isinstance(value, str) and len(value) < 64:
            v = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def _integer(value: object) -> int | None:
    v = _number(value)
    if v is None or abs(v) > 2**53 or v != math.floor(v):
        return None
    return int(v)


def _flag(value: object) -> bool | None:
    """OSC booleans arrive as T/F, 0/1 ints or floats, or (some bridges) 'true'/'false'."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("1", "true", "on", "yes"):
            return True
        if s in ("0", "false", "off", "no"):
            return False
        return None
    v = _number(value)
    return None if v is None else v != 0.0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) < 256 else None


def _tempo(value: object) -> float | None:
    v = _number(value)
    return v if v is not None and P.MIN_TEMPO_BPM <= v <= P.MAX_TEMPO_BPM else None


def _beats(value: object) -> float | None:
    v = _number(value)
    return v if v is not None and abs(v) <= P.MAX_ABS_POSITION_BEATS else None


def _signature(num: int | None, den: int | None) -> tuple[int, int] | None:
    if num is None or den is None:
        return None
    if not 1 <= num <= P.MAX_SIGNATURE_NUMERATOR or den not in P.SIGNATURE_DENOMINATORS:
        return None
    return (num, den)


def _last(args: Sequence[object]) -> object:
    """AbletonOSC object getters prefix ids (track, clip…); song getters send the bare value."""
    return args[-1] if args else None
