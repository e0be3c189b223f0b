"""Find the stems a DAW exported into a folder."""

from __future__ import annotations

import os
from pathlib import Path

from bridge.errors import AudioError
from bridge.stems.load import AUDIO_EXTENSIONS
from bridge.stems.roles import looks_like_full_mix


def discover_stems(folder: str | os.PathLike[str], *, include_mix: bool = False) -> list[Path]:
    """Audio files directly inside ``folder``, sorted by name (hidden and partial files skipped).

    Files named as the whole mix (:func:`~bridge.stems.roles.looks_like_full_mix`) are left out
    unless ``include_mix`` or unless there is nothing else (a project of the mix alone). Raises
    AudioError when the folder is missing or holds no audio files.
    """
    folder = Path(folder)
    if folder.is_file():  # a stem picked instead of its folder: "no such folder" read as a typo
        raise AudioError(f"{folder} is a file, not a folder. Pass the folder holding the stems "
                         f"({folder.parent}), not one stem.")
    if not folder.is_dir():
        raise AudioError(f"{folder}: no such folder. Pass the folder your DAW exported the stems into.")
    audio = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")),
                   key=lambda p: p.name.lower())
    found = audio if include_mix else [p for p in audio if not looks_like_full_mix(p.name)]
    if audio and not found:
        # Only the mix: it is the one stem of the project (the analysis then hears its percussive
        # part as the drums), as a folder holding one unnamed bounce is.
        found = audio
    if not found:
        raise AudioError(
            f"{folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)}). Export the stems from "
            "your DAW into this folder (Ableton: File ▸ Export Audio/Video ▸ All Individual Tracks)."
        )
    return found


def full_mixes(folder: str | os.PathLike[str]) -> list[Path]:
    """The audio files in ``folder`` that :func:`discover_stems` leaves out as the whole mix."""
    stems = set(discover_stems(folder))
    return [p for p in discover_stems(folder, include_mix=True) if p not in stems]
