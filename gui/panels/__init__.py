"""The main window's panels (transport, preview, mappings, sections, stems, export, separate)."""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox


def double_spin(lo: float, hi: float, *, value: float | None = None, decimals: int = 2, step: float = 1.0,
                suffix: str = "", special: str | None = None) -> QDoubleSpinBox:
    """A spin box that commits on Enter/focus-out/arrows (no Session command per typed digit)."""
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    if special is not None:
        s.setSpecialValueText(special)
    if value is not None:
        s.setValue(value)
    return s


def int_spin(lo: int, hi: int, *, value: int | None = None, step: int = 1) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setKeyboardTracking(False)
    if value is not None:
        s.setValue(value)
    return s


def audio_file_filter() -> str:
    """The file dialogs' filter for stems and mixes: every extension bridge reads."""
    from bridge.session.api import AUDIO_EXTENSIONS

    return "Audio (" + " ".join(f"*{ext}" for ext in AUDIO_EXTENSIONS) + ")"
