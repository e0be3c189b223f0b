"""Guess a stem's role and a display name from the file name a DAW gave it.

DAWs name exported stems "<song> <track>": Ableton "Song 3-Drums.wav", Logic "Song_Bass.aif" or
"Bass#01.aif", Reaper "03 Vox.wav", Demucs "vocals.flac". The track name comes last, so the *last*
word that names a role wins ("Bass Drop Drums.wav" is drums); "bass drum" is a kick, not a bass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "drums": ("drum", "drums", "drm", "kit", "kick", "kik", "kicks", "bd", "snare", "snr", "sd", "hat",
              "hats", "hihat", "hihats", "hh", "perc", "percs", "percussion", "tom", "toms", "cymbal",
              "cymbals", "overhead", "overheads", "oh", "clap", "claps", "shaker", "ride", "crash",
              "breakbeat", "break", "beat", "beats", "groove", "rim", "top", "tops", "bassdrum", "kickdrum",
              "snaredrum", "sidestick", "rimshot", "rimshots", "tamb", "tambourine", "conga", "congas",
              "bongo", "bongos", "cowbell", "clave", "claves", "syntom", "snares", "crashes", "rides",
              "shakers", "room", "rooms"),  # "Room": the kit's room mics in a tracked session
    "bass": ("bass", "basses", "sub", "subs", "808", "bassline", "subbass", "reese"),
    "vocals": ("vocal", "vocals", "vox", "voc", "vocs", "voice", "voices", "bv", "bvs", "bgv", "bgvs",
               "choir", "adlib", "adlibs", "lyrics", "singer", "sing", "rap", "acapella", "acappella",
               "lead_vocal", "leadvocal", "leadvox", "harmonies", "backing", "vx", "bvox", "dbl", "dub"),
    "guitar": ("guitar", "guitars", "gtr", "gtrs", "gt", "acoustic"),
    "piano": ("piano", "pianos", "pno", "grand", "upright"),
    "keys": ("keys", "key", "rhodes", "epiano", "ep", "wurli", "wurlitzer", "organ", "keyboard", "keyboards",
             "clav", "clavinet", "mellotron"),
    "lead": ("lead", "leads", "ld", "melody", "melodies", "mel", "hook", "hooks", "solo", "topline", "arp",
             "arps", "pluck", "plucks"),
    "synth": ("synth", "synths", "syn", "pad", "pads", "chord", "chords", "stab", "stabs", "strings", "string",
              "str", "brass", "horns", "horn", "texture", "atmos", "ambience", "drone"),
    "fx": ("fx", "sfx", "sfxs", "riser", "risers", "sweep", "sweeps", "impact", "impacts", "noise", "whoosh",
           "downlifter", "uplifter", "transition", "transitions", "foley"),
    "other": ("other", "others", "instrumental", "music", "misc"),
}
_WORD_TO_ROLE = {w: role for role, words in _ROLE_WORDS.items() for w in words}
#: Words that name a role only when nothing else in the name does: "Acoustic.wav" is a guitar, but
#: "snare_acoustic01.ogg" is a snare and "Acoustic Kick" a kick.
_WEAK_WORDS = frozenset({"acoustic"})


def _words(name: str) -> list[str]:
    # split "03-LeadVox_final#01" into ["03", "lead", "vox", "final", "01"], and a sample's number
    # off its name: "snare07" → ["snare", "07"] (sample packs and LMMS/FL kits name files so);
    # "808" and "909" stay whole.
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    spaced = re.sub(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", " ", spaced)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


#: Names of the whole mix (the main bus) that a DAW writes beside the stems: anywhere in the name…
_MIX_PHRASES = ("mixture", "mixdown", "full mix", "fullmix", "stereo out", "stereoout")
#: …or as its last word when no word names a role: "Song Master.wav" (Live 11, Bitwig, REAPER, FL
#: Studio), "Song Main.wav" (Live 12 and Studio One call the master track Main), "Song Mix.wav";
#: but "Drum Mix.wav" is a drum bus and "Main Vox.wav" a vocal.
_MIX_LAST_WORDS = frozenset({"master", "mastered", "main", "mix"})


def looks_like_full_mix(filename: str | Path) -> bool:
    """Whether a file in a stems folder is, by its name, the whole mix rather than a stem."""
    stem = Path(filename).stem.lower()
    if any(phrase in stem for phrase in _MIX_PHRASES):
        return True
    words = [w for w in _words(Path(filename).stem) if not w.isdigit()]
    return bool(words) and words[-1] in _MIX_LAST_WORDS and not any(w in _WORD_TO_ROLE for w in words)


def guess_role(filename: str | Path) -> str:
    """Role for a file name: drums, bass, vocals, lead, synth, keys, guitar, piano, fx or other (the
    fallback). The last word naming a role wins ("Lead Vox" is vocals, "Synth Bass" bass), except
    that a synth or lead word right after "bass" keeps it bass ("Bass Synth")."""
    words = _words(Path(filename).stem)
    role = None
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "bass" and nxt in ("drum", "drums"):
            continue  # "bass drum": the next word makes it drums
        if role == "bass" and _WORD_TO_ROLE.get(w) in ("synth", "lead") and words[i - 1] == "bass":
            continue  # "Bass Synth", "Bass Lead": a bass part played on a synth
        if w in _WORD_TO_ROLE and (w not in _WEAK_WORDS or role is None):
            role = _WORD_TO_ROLE[w]
    return role or "other"


def display_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names for stems: the file stems minus the words all of them share in front.

    ["Demo Song Drums.wav", "Demo Song Bass.wav"] → ["Drums", "Bass"]. Falls back to the whole
    file stem where stripping would leave nothing or a duplicate.
    """
    stems = [Path(p).stem for p in paths]
    split = [re.split(r"(?<=[\s_\-])", s) for s in stems]  # keep separators attached to words
    common = 0
    if len(stems) > 1:
        while all(len(s) > common + 1 for s in split) and len({s[common] for s in split}) == 1:
            common += 1
    names = ["".join(s[common:]).strip(" _-") or stem for s, stem in zip(split, stems, strict=True)]
    out: list[str] = []
    for name, stem in zip(names, stems, strict=True):
        candidate = name if name not in out else stem
        n = 2
        base = candidate
        while candidate in out:
            candidate = f"{base} {n}"
            n += 1
        out.append(candidate)
    return out
