"""Find the stems a DAW exported into a folder."""

from __future__ import annotations

import os
from pathlib import Path

from bridge.errors import AudioError
from bridge.stems.load import AUDIO_EXTENSIONS

#: Files that are the whole mix, not a stem; kept out of a stems folder scan.
_MIX_WORDS = ("mixture", "mixdown", "master", "full mix", "fullmix")


def discover_stems(folder: str | os.PathLike[str], *, include_mix: bool = False) -> list[Path]:
    """Audio files directly inside ``folder``, sorted by name (hidden and partial files skipped).

    Raises AudioError when the folder is missing or holds no audio files.
    """
    folder = Path(folder)
    if folder.is_file():  # a stem picked instead of its folder: "no such folder" read as a typo
        raise AudioError(f"{folder} is a file, not a folder. Pass the folder holding the stems "
                         f"({folder.parent}), not one stem.")
    if not folder.is_dir():
        raise AudioError(f"{folder}: no such folder. Pass the folder your DAW exported the stems into.")
    found = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
         and (include_mix or not any(w in p.stem.lower() for w in _MIX_WORDS))),
        key=lambda p: p.name.lower(),
    )
    if not found:
        raise AudioError(
            f"{folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)}). Export the stems from "
            "your DAW into this folder (Ableton: File ▸ Export Audio/Video ▸ All Individual Tracks)."
        )
    return found
