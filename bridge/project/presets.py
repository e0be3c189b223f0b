"""Mapping presets: a musical starting point built from the stems a project actually has.

Stems are sorted into parts by role and, within drums, by name (a producer who bounces "Kick",
"Snare" and "Hats" separately gets each one mapped to what it does):

==========  ===================================  ============================================
part        found by                             drives
==========  ===================================  ============================================
kick        drums stem named kick/bd/808         onset → travel (a step per hit), strength
snare       drums stem named snare/clap/sd       onset → smaller travel steps, strength
hats        drums stem named hat/hh/cymbal/perc  onset → detail (sparkle), tiny travel steps
drums       any other drums stem (full kit)      its kick and snare hits → strength, its hats →
                                                 detail (``drums.kick`` …, found inside the stem)
bass        role bass                            low band → warp (slow)
harmony     other/keys/piano/synth/guitar/pads   chroma → hue, rms → saturation (slow)
lead        vocals/lead/vox/melody               rms → brightness (slow)
fx          risers, sweeps, impacts              rms → a slow sparkle (detail)
always      beat grid                            a travel step on every beat, bar-locked sway
==========  ===================================  ============================================

A kit bounced as one stem (or Demucs' drums stem) is split the same way inside the stem: the
sources ``<stem>.kick``, ``<stem>.snare`` and ``<stem>.hats`` (:mod:`bridge.analysis.drum_parts`).

Sources use the stem's *name* when there is one stem for the part (so renaming a role later does not
break it) and fall back to the role when the name cannot be a source (it contains a dot).

Presets are project data (lists of :class:`~bridge.project.schema.Mapping`), so they live in the
project layer, where :func:`bridge.project.create.new_project` can use them without importing
upward into :mod:`bridge.mapping`; :mod:`bridge.mapping.presets` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.project import schema
from bridge.vocab import MIX

KICK_WORDS = ("kick", "bd", "bassdrum", "bass drum", "808")
SNARE_WORDS = ("snare", "clap", "sd", "rim")
HAT_WORDS = ("hat", "hh", "cymbal", "ride", "crash", "perc", "shaker", "tamb")
#: Travel per full-strength onset of the mix.
MIX_TRAVEL = 0.07
LEAD_ROLES = ("vocals", "vocal", "vox", "lead", "melody", "voice")


def _words(text: str) -> list[str]:
    cleaned = "".join(c if c.isalnum() else " " for c in text.lower())
    return cleaned.split()


def _has_word(name: str, words: Sequence[str]) -> bool:
    tokens = _words(name)
    joined = " ".join(tokens)
    return any((w in tokens) if " " not in w else (w in joined) for w in words) or any(
        t.startswith(w) for t in tokens for w in words if len(w) >= 3
    )


def _ref(stem: schema.StemSpec) -> str:
    """How a mapping source names this stem: its name, or its role if the name has a dot."""
    return stem.role if "." in stem.name or not stem.name.strip() else stem.name


def classify_stems(stems: Sequence[schema.StemSpec]) -> dict[str, list[schema.StemSpec]]:
    """Group stems into parts: kick, snare, hats, drums, bass, harmony, lead, fx (muted stems skipped)."""
    parts: dict[str, list[schema.StemSpec]] = {
        k: [] for k in ("kick", "snare", "hats", "drums", "bass", "harmony", "lead", "fx")
    }
    for s in stems:
        if s.muted:
            continue
        role = s.role
        if role == "bass":
            parts["bass"].append(s)
        elif role in LEAD_ROLES:
            parts["lead"].append(s)
        elif _has_word(s.name, KICK_WORDS):
            parts["kick"].append(s)
        elif _has_word(s.name, SNARE_WORDS):
            parts["snare"].append(s)
        elif _has_word(s.name, HAT_WORDS):
            parts["hats"].append(s)
        elif role == "drums":
            parts["drums"].append(s)
        elif role == "fx":
            parts["fx"].append(s)
        else:
            # other, keys, piano, synth, guitar, fx and user roles carry the harmony.
            parts["harmony"].append(s)
    return parts


def _m(source: str, target: str, amount: float, *, attack_ms: float, release_ms: float,
       offset: float = 0.0, curve: str = "linear") -> schema.Mapping:
    return schema.Mapping(source=source, target=target, amount=amount, offset=offset, curve=curve,
                          attack_ms=attack_ms, release_ms=release_ms)


def _motion() -> list[schema.Mapping]:
    """The beat itself: one step of travel on every beat (a beat with no hit still moves the
    picture a little) and a slow, bar-locked camera sway, small enough that the picture is nearly
    still between hits."""
    return [
        _m("beat.tick", "travel", 0.04, attack_ms=0, release_ms=0),
        _m("bar.sin", "rotation", 0.3, offset=-0.15, attack_ms=0, release_ms=0),
    ]


def _hits(ref: str, scale: float) -> list[schema.Mapping]:
    """A drum part's hits, for the diffusion engines: a hit re-imagines more (img2img strength)
    and re-anchors the chain. The picture's own step on each hit comes from ``mix.onset`` (see
    :func:`default_mappings`), which holds the drums as loud as they are in the mix.

    No white flash and no shape pulse by default: both have to go back after the hit, and that
    return is a second change one frame later — measured with benchmarks/av_sync.py the flash
    halved the onset–motion correlation (ρ 0.73 → 0.34 on the demo) and the pulse cost shared song
    01 a tenth of its beat alignment (BAS 0.96 → 0.86). The ``strobe`` preset has both."""
    return [_m(f"{ref}.onset", "strength", 0.4 * scale, attack_ms=0, release_ms=60)]


def default_mappings(stems: Sequence[schema.StemSpec]) -> list[schema.Mapping]:
    """The default mapping set for these stems (only parts that are present get mappings).

    Designed to hit (benchmarks/av_sync.py): the mix's hits (``mix.onset``: every part as loud as
    it is in the mix) move the picture on the frame of each hit, in proportion to the hit; drum
    hits also drive the diffusion engines' strength; bass and harmony drive slow dimensions (warp,
    colour) with long attack/release so they never blur the hits; the camera barely moves between
    hits.
    """
    parts = classify_stems(stems)
    out: list[schema.Mapping] = []
    for s in parts["kick"]:
        out += _hits(_ref(s), 1.0)
    for s in parts["snare"]:
        out += _hits(_ref(s), 0.6)
    for s in parts["hats"]:
        out.append(_m(f"{_ref(s)}.onset", "detail", 0.6, attack_ms=0, release_ms=80))
        out.append(_m(f"{_ref(s)}.onset", "travel", 0.02, attack_ms=0, release_ms=25))
    for s in parts["drums"]:
        # a whole kit on one stem: its own kick, snare and hats, as if bounced apart
        r = _ref(s)
        scale = 1.0 if not parts["kick"] else 0.5
        out += [_m(f"{r}.kick", "strength", 0.4 * scale, attack_ms=0, release_ms=60),
                _m(f"{r}.snare", "strength", 0.24 * scale, attack_ms=0, release_ms=60)]
        if not parts["hats"]:
            out.append(_m(f"{r}.hats", "detail", 0.6, attack_ms=0, release_ms=80))
    for s in parts["bass"]:
        r = _ref(s)
        out += [
            _m(f"{r}.low", "warp", 0.5, curve="smoothstep", attack_ms=150, release_ms=600),
        ]
    for s in parts["harmony"]:
        r = _ref(s)
        out += [
            _m(f"{r}.chroma", "hue", 1.0 / max(1, len(parts["harmony"])), attack_ms=600, release_ms=600),
            _m(f"{r}.rms", "saturation", 0.25, offset=-0.1, attack_ms=300, release_ms=800),
        ]
    for s in parts["lead"]:
        r = _ref(s)
        out += [
            _m(f"{r}.rms", "brightness", 0.25, offset=-0.1, attack_ms=200, release_ms=600),
        ]
    for s in parts["fx"]:
        # Risers and sweeps build up: they open the sparkle layer slowly, never as hits.
        out.append(_m(f"{_ref(s)}.rms", "detail", 0.4, curve="smoothstep", attack_ms=300, release_ms=800))
    if not (parts["kick"] or parts["drums"] or parts["snare"]):
        # No drums: the beat grid and the first melodic stem's onsets carry the hits.
        melodic = (parts["harmony"] + parts["lead"] + parts["bass"])[:1]
        for s in melodic:
            out += _hits(_ref(s), 0.6)
    # The picture travels forward by the onset strength of the mix as heard (an integrated
    # parameter: attack 0, release 25 ms, so it steps on the frame that holds the hit, by as much
    # as the hit is loud in the mix, and stays still after it). Every part's hits count as loud as
    # they are: drums over a quiet pad, a loud rhythm guitar over quiet drums (shared song 11),
    # a bass that carries the groove (song 12). A release of 25 ms puts a little of the step on
    # the next frame too, so a detector that hears the hit a frame late (librosa's default onset
    # envelope peaks 22–38 ms after it; benchmarks/av_sync.py "naive") still sees it move.
    out.append(_m(f"{MIX}.onset", "travel", MIX_TRAVEL, attack_ms=0, release_ms=25))
    return out + _motion()


def minimal_mappings(stems: Sequence[schema.StemSpec]) -> list[schema.Mapping]:
    """One pulse from the drums (or the beat), hue from the harmony, a slow rotation."""
    parts = classify_stems(stems)
    out: list[schema.Mapping] = []
    drums = parts["kick"] or parts["drums"]
    if drums:
        out.append(_m(f"{_ref(drums[0])}.onsets" if parts["kick"] else f"{_ref(drums[0])}.kick",
                      "pulse", 0.8, attack_ms=0, release_ms=250))
    else:
        out.append(_m("beat.pulse", "pulse", 0.6, attack_ms=0, release_ms=150))
    harmony = parts["harmony"] or parts["lead"]
    if harmony:
        out.append(_m(f"{_ref(harmony[0])}.chroma", "hue", 1.0, attack_ms=600, release_ms=600))
    out.append(_m("bar.sin", "rotation", 0.6, offset=-0.3, attack_ms=0, release_ms=0))
    return out


def strobe_mappings(stems: Sequence[schema.StemSpec]) -> list[schema.Mapping]:
    """Hard flashes and zoom punches on every hit, hats sparkle, short trails (club visuals)."""
    parts = classify_stems(stems)
    out: list[schema.Mapping] = []
    hits = parts["kick"] + parts["snare"] + parts["drums"]
    for s in parts["kick"] + parts["snare"]:
        out += [
            _m(f"{_ref(s)}.onsets", "flash", 0.8, attack_ms=0, release_ms=60),
            _m(f"{_ref(s)}.onsets", "zoom", 0.06, attack_ms=0, release_ms=100),
            _m(f"{_ref(s)}.onsets", "pulse", 1.0, attack_ms=0, release_ms=120),
        ]
    for s in parts["drums"]:
        # a whole kit on one stem: the kick punches (zoom, pulse), the snare flashes
        r = _ref(s)
        out += [
            _m(f"{r}.snare", "flash", 0.8, attack_ms=0, release_ms=60),
            _m(f"{r}.kick", "zoom", 0.06, attack_ms=0, release_ms=100),
            _m(f"{r}.kick", "pulse", 1.0, attack_ms=0, release_ms=120),
        ]
    if not hits:
        out += [
            _m("beat.pulse", "flash", 0.7, attack_ms=0, release_ms=60),
            _m("beat.pulse", "pulse", 1.0, attack_ms=0, release_ms=120),
        ]
    for s in parts["hats"]:
        out.append(_m(f"{_ref(s)}.high", "detail", 1.0, attack_ms=0, release_ms=60))
    for s in parts["drums"] if not parts["hats"] else ():
        out.append(_m(f"{_ref(s)}.hats", "detail", 1.0, attack_ms=0, release_ms=60))
    for s in parts["bass"]:
        out.append(_m(f"{_ref(s)}.low", "warp", 0.8, attack_ms=10, release_ms=200))
    out.append(_m("beat.square", "hue", 0.5, attack_ms=0, release_ms=0))
    out.append(_m("beat.saw", "decay", -0.25, attack_ms=0, release_ms=0))
    return out


#: Preset name → function(stems) → mappings.
PRESETS: dict[str, Callable[[Sequence[schema.StemSpec]], list[schema.Mapping]]] = {
    "default": default_mappings,
    "minimal": minimal_mappings,
    "strobe": strobe_mappings,
}
