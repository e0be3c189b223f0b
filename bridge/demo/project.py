"""`stembridge demo`: generate the demo song, make a project of it, analyse and render it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bridge.errors import ProjectError
from bridge.jobs import ProgressCallback, no_progress

DEMO_PROJECT_NAME = "stembridge demo"


def make_demo(
    out_dir: str | Path,
    *,
    width: int = 1280,
    height: int = 720,
    fps: object = "30",
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Write stems + project + analysis + ``render.mp4`` into ``out_dir``; returns the video path.

    Re-running into the same folder redoes the demo; a folder holding some *other* project is
    refused, so nothing the user saved is overwritten.
    """
    from pydantic import ValidationError

    from bridge.analysis.project import analyze_project
    from bridge.demo.song import generate_demo_song, write_demo_stems, write_ground_truth
    from bridge.export.render import render_project
    from bridge.project import Section, load_project, project_file, save_project
    from bridge.project.create import new_project
    from bridge.project.schema import RenderSettings
    from bridge.project.store import format_option_errors

    try:  # before the song is made: an odd --width failed only after it, in pydantic's words
        render = RenderSettings(width=width, height=height, fps=str(fps))
    except ValidationError as e:
        raise ProjectError(format_option_errors(e, names={"width": "--width", "height": "--height",
                                                          "fps": "--fps"})) from None
    out = Path(out_dir).resolve()
    if project_file(out).exists():
        try:
            existing, _ = load_project(out)
            is_demo = existing.name == DEMO_PROJECT_NAME
        except ProjectError:
            is_demo = False
        if not is_demo:
            raise ProjectError(
                f"{out} already holds a stembridge project that is not the demo; pick another folder "
                "with --out so it is not overwritten."
            )
    log("generating the demo song…")
    song = generate_demo_song()
    write_demo_stems(song, out / "stems")
    write_ground_truth(song, out / "ground_truth.json")
    result = new_project(out, out / "stems", name=DEMO_PROJECT_NAME, overwrite=True,
                         render=render)
    sections = [
        Section(name=name, start=round(a, 6), end=round(b, 6), prompt=song.section_prompts.get(name, ""),
                seed=1000 + i)
        for i, (a, b, name) in enumerate(song.sections)
    ]
    project = result.project.model_copy(update={"sections": sections})
    save_project(project, out)
    project, project_dir = load_project(out)
    log("analysing the stems…")
    analysis = analyze_project(project, project_dir)
    grid = analysis.beat_grid
    log(f"  {grid.tempo_bpm:.2f} BPM detected (true {song.tempo_bpm:g}), {len(grid.beats_s)} beats, "
        f"{len(analysis.sections)} sections")
    log(f"rendering {width}×{height} @ {fps} fps…")
    return render_project(project, project_dir, out / "render.mp4", analysis=analysis, progress=progress)
