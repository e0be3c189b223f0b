"""The DAW's markers as project sections (:func:`markers_to_sections`).

The markers themselves come from the transport layer (:mod:`bridge.transport.markers` parses each
DAW's marker messages into :class:`~bridge.transport.markers.DawMarker`); turning them into
:class:`~bridge.project.schema.Section` objects is the project's business, so it lives here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.project.schema import Section
from bridge.transport.markers import DawMarker

#: Two markers (or a marker and a section) closer than this are one boundary (beats or seconds).
SAME_START = 1e-3


def markers_to_sections(markers: Sequence[DawMarker], existing: Sequence, *, mode: str = "replace",
                        seed: int = 0) -> list:
    """Project sections from the DAW's markers.

    ``mode`` "replace": the sections become the markers, in time order; a marker named like an
    existing section keeps that section's prompt, negative prompt, seed, style and transition (so
    re-importing after moving markers in the DAW keeps the producer's work). "merge": the existing
    sections stay; a marker adds a section where none starts (same unit, within
    :data:`SAME_START`). A marker without a name is called "Marker N". Markers at the same start
    count once (the first, a region before a plain marker). New sections get seeds ``seed + n``.
    """
    if mode not in ("replace", "merge"):
        raise ValueError(f"mode {mode!r} must be 'replace' or 'merge'")
    unique: list[DawMarker] = []
    for m in sorted(markers, key=lambda m: (m.unit, m.start, m.end is None)):
        if unique and unique[-1].unit == m.unit and abs(unique[-1].start - m.start) < SAME_START:
            continue
        unique.append(m)
    by_name = {s.name: s for s in existing if s.name}
    keep = ("prompt", "negative_prompt", "seed", "style", "transition_beats")
    new: list = []
    for n, m in enumerate(unique, start=1):
        name = m.name or f"Marker {n}"
        end = m.end if m.end is not None and m.end > m.start else None
        fields = {"seed": (seed + n) % 2**32}
        if mode == "replace" and name in by_name:
            fields = {k: getattr(by_name[name], k) for k in keep}
        new.append(Section(name=name, start=round(m.start, 6), end=None if end is None else round(end, 6),
                           unit=m.unit, **fields))
    if mode == "replace":
        return new
    merged = list(existing)
    for s in new:
        if not any(e.unit == s.unit and abs(e.start - s.start) < SAME_START for e in merged):
            merged.append(s)
    if len({s.unit for s in merged}) == 1:
        merged.sort(key=lambda s: s.start)
    return merged
