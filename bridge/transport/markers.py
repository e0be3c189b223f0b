"""The DAW's markers as the project's sections: pure parsers (OSC message in, markers out).

What each DAW reports (checked against the DAWs' own sources, see PROTOCOLS.md):

* **Ableton Live via AbletonOSC** answers ``/live/song/get/cue_points`` with
  ``/live/song/get/cue_points name0 time0 name1 time1 …`` (AbletonOSC ``song.py``: the song's
  ``cue_points`` flattened into (name, time) pairs; times in beats = quarter notes from song start,
  as ``current_song_time``). The reply is the whole list, so it completes a request.
* **REAPER** (a pattern file with ``MARKER_NAME``/``MARKER_TIME``/``REGION_*`` patterns and
  ``DEVICE_MARKER_COUNT``/``DEVICE_REGION_COUNT`` above 0, as ``daw_scripts/reaper/stembridge.ReaperOSC``
  has) sends ``/marker/N/name s``, ``/marker/N/time f`` (seconds), ``/marker/N/number/str s`` and
  ``/region/N/name``, ``/region/N/time``, ``/region/N/length`` for the first N markers / regions
  of the project, on every change and when the surface is set up. ``N`` is the slot in the
  device's marker bank (1-based), not REAPER's marker number. There is no end-of-list message: a
  listener takes what arrived once the DAW has been quiet for a moment. A slot whose number string
  is empty is taken as unused (REAPER clears the slots past the last marker; unverified on a real
  REAPER, so a slot without a number string is still kept).
* **Ableton Live via our StemBridge script** pushes the same pairs as ``/stembridge/cue_points``
  (on load, on every added or removed locator, and every 2 s).
* **Ardour**'s OSC surface sends no list of locations (only the name of the marker at the playhead),
  so Ardour is not supported here.

Every value is checked; a message that does not parse is ignored (``handle`` returns False) and
never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bridge.transport import osc_protocol as P

__all__ = [
    "AbletonCueCollector",
    "DawMarker",
    "MarkerCollector",
    "ReaperMarkerCollector",
]

#: More markers than this in one reply is not a song structure; the rest are ignored.
MAX_MARKERS = 1000


@dataclass(frozen=True)
class DawMarker:
    """One marker (``end`` None), region or cue point, in the DAW's own unit.

    unit "beats": quarter notes from song start (Live); "seconds": song seconds (REAPER).
    """

    name: str
    start: float
    end: float | None = None
    unit: Literal["beats", "seconds"] = "seconds"


def _finite(value: object, *, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) and 0.0 <= v <= limit else None


def _name(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 256:
        return None
    return "".join(c for c in value if c.isprintable()).strip()


class MarkerCollector:
    """Collects one DAW's marker messages. ``complete`` once a whole list arrived (Live);
    ``last_at`` is when the last marker message was accepted (REAPER: wait for quiet)."""

    unit: Literal["beats", "seconds"] = "seconds"

    def __init__(self) -> None:
        self.complete = False
        self.last_at: float | None = None

    def requests(self) -> list[tuple[str, tuple]]:
        """(address, args) that ask the DAW for its markers; empty when it cannot be asked."""
        return []

    def handle(self, address: str, args: Sequence[object], t: float) -> bool:
        raise NotImplementedError

    def markers(self) -> list[DawMarker]:
        raise NotImplementedError


class AbletonCueCollector(MarkerCollector):
    """Live's cue points as ``name time name time …`` in one message: AbletonOSC's reply to
    ``/live/song/get/cue_points`` (``address``, asked for), or what our Live script pushes
    (``/stembridge/cue_points``, ``ask=False``)."""

    unit = "beats"

    def __init__(self, *, address: str = P.ABLETON_CUE_POINTS, ask: bool = True) -> None:
        super().__init__()
        self.address, self.ask = address, ask
        self._markers: list[DawMarker] = []

    def requests(self) -> list[tuple[str, tuple]]:
        return [(self.address, ())] if self.ask else []

    def handle(self, address: str, args: Sequence[object], t: float) -> bool:
        if address != self.address:
            return False
        found: list[DawMarker] = []
        # pairs stay aligned: a bad pair is skipped whole, a trailing odd value is ignored
        for i in range(0, len(args) - 1, 2):
            name, beats = _name(args[i]), _finite(args[i + 1], limit=P.MAX_ABS_POSITION_BEATS)
            if name is None or beats is None:
                continue
            found.append(DawMarker(name, beats, None, "beats"))
            if len(found) >= MAX_MARKERS:
                break
        if args and not found:
            # Not one pair parsed: a malformed reply, not "no cue points" (that is an empty list).
            # Keep waiting for a well-formed one rather than end the request with nothing (a garbled
            # datagram handled before the real reply emptied the import, 1 run in ~6).
            return True
        self._markers = sorted(found, key=lambda m: m.start)
        self.complete = True
        self.last_at = t
        return True

    def markers(self) -> list[DawMarker]:
        return list(self._markers)


_REAPER_RE = re.compile(r"^/(marker|region)/(\d{1,4})/(name|time|length|number/str)$")


class ReaperMarkerCollector(MarkerCollector):
    unit = "seconds"

    def __init__(self, *, bank_size: int = P.REAPER_MARKER_BANK) -> None:
        super().__init__()
        self.bank_size = int(bank_size)
        self._slots: dict[tuple[str, int], dict[str, object]] = {}

    def requests(self) -> list[tuple[str, tuple]]:
        # Telling REAPER how many markers/regions this device shows makes it (re)send them.
        return [(P.REAPER_DEVICE_MARKER_COUNT, (self.bank_size,)),
                (P.REAPER_DEVICE_REGION_COUNT, (self.bank_size,))]

    def handle(self, address: str, args: Sequence[object], t: float) -> bool:
        m = _REAPER_RE.match(address) if isinstance(address, str) else None
        if m is None or len(args) != 1:
            return False
        kind, index, field = m.group(1), int(m.group(2)), m.group(3)
        if not 1 <= index <= MAX_MARKERS:
            return False
        value = args[0]
        if field in ("name", "number/str"):
            parsed: object = _name(value)
        else:
            parsed = _finite(value, limit=P.MAX_ABS_POSITION_SECONDS)
        if parsed is None:
            return False
        self._slots.setdefault((kind, index), {})[field] = parsed
        self.last_at = t
        return True

    def markers(self) -> list[DawMarker]:
        out = []
        for (kind, _), slot in sorted(self._slots.items()):
            start = slot.get("time")
            if start is None or slot.get("number/str") == "":
                continue
            length = slot.get("length") if kind == "region" else None
            end = start + length if isinstance(length, float) and length > 0.0 else None
            out.append(DawMarker(str(slot.get("name", "")), float(start), end, "seconds"))  # type: ignore[arg-type]
        return sorted(out, key=lambda m: (m.start, m.end is None))


# --- markers → sections -----------------------------------------------------------------------

