"""Stems: discover them in a folder, guess roles, load them as float32 (channels, samples)."""

from bridge.stems.discover import discover_stems
from bridge.stems.load import (
    AUDIO_EXTENSIONS,
    AudioInfo,
    SilentAudioError,
    file_digest,
    load_audio,
    place_in_song,
    probe_audio,
)
from bridge.stems.roles import display_names, guess_role

__all__ = [
    "AUDIO_EXTENSIONS", "AudioInfo", "SilentAudioError", "discover_stems", "display_names",
    "file_digest", "guess_role", "load_audio", "place_in_song", "probe_audio",
]
