"""``stembridge analyze PROJECT --tempo 167 --meter 4/4 --downbeat 1.23`` (and ``--double-tempo``,
``--half-tempo``, ``--reset-rhythm``, ``--beat-model``): the rhythm options of ``analyze``.

A correction is saved in the project (``rhythm`` in ``stembridge.json``) before the analysis runs, so
it holds for every later command and in the app (where it can be undone); only the song-level beat
grid and sections are computed again — the stems' features come from the cache.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bridge.errors import BridgeError


def add_rhythm_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("rhythm corrections (saved in the project; undo with --reset-rhythm)")
    g.add_argument("--tempo", metavar="BPM",
                   help="the song's tempo; the analysis then only places beats and bars (compound meters "
                        "such as 6/8: dotted beats per minute)")
    g.add_argument("--meter", metavar="N/U", help="time signature, e.g. 4/4, 3/4, 6/8, 12/8")
    g.add_argument("--downbeat", metavar="SECONDS", help="song time where a bar starts (bar 1)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--double-tempo", action="store_true", help="×2: the tempo was found at half speed")
    x.add_argument("--half-tempo", action="store_true", help="÷2: the tempo was found at double speed")
    g.add_argument("--beat-model", metavar="NAME_OR_PATH",
                   help="track beats with the learned Beat This! model (a checkpoint name such as final0, "
                        "pulled once with `stembridge models pull beat-this:final0`, or a .ckpt file; "
                        "needs stembridge[beatthis]); 'dsp' goes back to the default tracker")
    g.add_argument("--reset-rhythm", action="store_true",
                   help="forget all rhythm corrections (before applying any others given)")


def _number(text: str | None, option: str, fix: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BridgeError(f"{option} {text!r} is not a number; {fix}")
    return value


def rhythm_changes(args: argparse.Namespace, current) -> dict | None:
    """The new ``rhythm`` (a RhythmCorrection) the options ask for, or None when they ask nothing."""
    from bridge.project.schema import RhythmCorrection, parse_meter

    if not any((args.tempo is not None, args.meter is not None, args.downbeat is not None,
                args.double_tempo, args.half_tempo, args.reset_rhythm, args.beat_model is not None)):
        return None
    fields = {} if args.reset_rhythm else current.model_dump()
    tempo = _number(args.tempo, "--tempo", "give the song's tempo in BPM, e.g. --tempo 167")
    if tempo is not None:
        if not 20.0 < tempo < 400.0:
            raise BridgeError(f"--tempo {args.tempo} is outside 20–400 BPM; give the song's tempo in beats per "
                              "minute, e.g. --tempo 167 (use --double-tempo / --half-tempo to fix an octave)")
        fields.update(tempo_bpm=tempo, tempo_factor=1.0)
    if args.meter is not None:
        try:
            numerator, unit = parse_meter(args.meter)
        except ValueError as e:
            raise BridgeError(f"--{e}") from None
        fields["meter"] = f"{numerator}/{unit}"
    downbeat = _number(args.downbeat, "--downbeat", "give the song time of a bar's first beat in seconds, e.g. 1.23")
    if downbeat is not None:
        if downbeat < 0:
            raise BridgeError(f"--downbeat {args.downbeat} is before the song starts; give the song time of a "
                              "bar's first beat in seconds (>= 0), e.g. --downbeat 1.23")
        fields["first_downbeat_seconds"] = downbeat
    if args.double_tempo or args.half_tempo:
        factor = fields.get("tempo_factor", 1.0) * (2.0 if args.double_tempo else 0.5)
        if not 0.125 <= factor <= 8:
            raise BridgeError(f"the tempo was already scaled by {fields.get('tempo_factor', 1.0):g}; "
                              "use --reset-rhythm, or set the tempo itself with --tempo BPM")
        fields["tempo_factor"] = factor
    if args.beat_model is not None:
        fields["beat_model"] = _beat_model(args.beat_model)
    try:
        return RhythmCorrection(**fields)
    except ValueError as e:
        raise BridgeError(f"rhythm correction: {e}") from None


def _beat_model(ref: str) -> str | None:
    """The --beat-model value to store: checked now (installed, checkpoint here), so a missing one
    fails before any analysis, with the fix."""
    if ref.strip().lower() in ("dsp", "default", "none"):
        return None
    from bridge.analysis.learned_beats import looks_like_path, require_beat_this, resolve_checkpoint

    require_beat_this()
    path = resolve_checkpoint(ref)
    return str(path) if looks_like_path(ref) else ref.strip()


def apply_rhythm_arguments(args: argparse.Namespace) -> None:
    """Save the correction the options ask for into the project (before it is analysed)."""
    from bridge.project import load_project, save_project

    project, project_dir = load_project(args.project_dir)
    new = rhythm_changes(args, project.rhythm)
    if new is None or new == project.rhythm:
        return
    if project.tempo.source != "detect":
        raise BridgeError(
            f"{Path(project_dir) / 'stembridge.json'} takes its beat grid from the DAW (tempo.source "
            f"{project.tempo.source!r}), so there is no detected rhythm to correct; change the tempo in the DAW "
            "export, or set tempo.source to 'detect' in the file"
        )
    if new.first_downbeat_seconds is not None:
        from bridge.analysis.project import song_duration_seconds

        duration = song_duration_seconds(project, project_dir)
        if new.first_downbeat_seconds >= duration:
            raise BridgeError(f"--downbeat {new.first_downbeat_seconds:g} is after the song's end ({duration:.2f} s); "
                              "give the song time of a bar's first beat in seconds, e.g. --downbeat 1.23")
    save_project(project.model_copy(update={"rhythm": new}), project_dir)
    if not getattr(args, "quiet", False):
        print(f"rhythm correction saved in the project: {describe(new)} (clear it with --reset-rhythm)",
              file=sys.stderr)


def describe(correction) -> str:
    """"tempo 167 BPM, meter 4/4, bar 1 at 1.23 s" (or "none")."""
    parts = []
    if correction.tempo_bpm is not None:
        parts.append(f"tempo {correction.tempo_bpm:g} BPM")
    if correction.tempo_factor != 1.0:
        parts.append(f"tempo ×{correction.tempo_factor:g}")
    if correction.meter is not None:
        parts.append(f"meter {correction.meter}")
    if correction.first_downbeat_seconds is not None:
        parts.append(f"bar 1 at {correction.first_downbeat_seconds:g} s")
    if correction.beat_model is not None:
        parts.append(f"beats from the learned model {correction.beat_model}")
    return ", ".join(parts) or "none"
