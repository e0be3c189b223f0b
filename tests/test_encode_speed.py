"""Encode speed (issue 13): a producer-facing setting that trades file size for export speed.

The truth is what x264 itself writes into the stream: every IDR frame carries an SEI user-data
message "x264 - core N ... options: cabac=… me=… subme=… …" with the settings it actually used.
x264's own preset table (common/base.c, ``x264 --fullhelp``) says ultrafast is ``subme=0`` with no
CABAC, superfast ``subme=1`` with the diamond search, veryfast ``subme=2`` with the hexagon search;
the tests read those options from the file's bytes, not from the writer's arguments.

Material: the synthetic 8 s, 120 BPM project of tests/preview_project.py, tiny renders.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from preview_project import built, project_dir  # noqa: F401  (fixtures)

from bridge.errors import Cancelled, ProjectError, RenderError
from bridge.export.render import prepare_render, render_project
from bridge.export.segments import job_key, work_folder
from bridge.jobs import CancelToken
from bridge.project import load_project, save_project
from bridge.project.schema import PROJECT_FILENAME, RenderSettings

#: x264's presets by the options that tell them apart (from x264's preset table, not from our code)
ULTRAFAST = {"subme": "0", "cabac": "0", "me": "dia"}
SUPERFAST = {"subme": "1", "cabac": "1", "me": "dia"}
VERYFAST = {"subme": "2", "cabac": "1", "me": "hex"}
TINY = {"width": 96, "height": 64, "fps": 15, "start_s": 1.0, "end_s": 2.0}


def x264_options(path: Path) -> list[dict[str, str]]:
    """The options of every x264 SEI message in the file (one per encoded segment), as x264 wrote them."""
    found = []
    for match in re.finditer(rb"x264 - core \d+.*? options: ([ -~]+)", path.read_bytes()):
        pairs = (item.split("=", 1) for item in match.group(1).decode("ascii").split() if "=" in item)
        found.append(dict(pairs))
    assert found, f"{path.name} has no x264 SEI message"
    return found


def preset_of(path: Path) -> list[dict[str, str]]:
    return [{key: options[key] for key in ULTRAFAST} for options in x264_options(path)]


def test_each_encode_speed_reaches_x264_from_the_project_the_api_and_the_cli(project_dir: Path) -> None:  # noqa: F811
    from bridge.cli import main

    project, _ = load_project(project_dir)
    render_project(project, project_dir, project_dir / "balanced.mp4", **TINY)
    assert preset_of(project_dir / "balanced.mp4") == [SUPERFAST]  # no choice: today's export, unchanged
    render_project(project, project_dir, project_dir / "small.mp4", encode_speed="small", **TINY)
    assert preset_of(project_dir / "small.mp4") == [VERYFAST]
    # the project's own setting, saved and reloaded
    project.render.encode_speed = "draft"
    save_project(project, project_dir)
    project, _ = load_project(project_dir)
    assert project.render.encode_speed == "draft"
    render_project(project, project_dir, project_dir / "draft.mp4", **TINY)
    assert preset_of(project_dir / "draft.mp4") == [ULTRAFAST]
    # the CLI overrides the project's choice
    out = project_dir / "cli.mp4"
    assert main(["render", str(project_dir), "--encode-speed", "SMALL", "--width", "96", "--height", "64",
                 "--fps", "15", "--start", "1", "--end", "2", "-o", str(out), "-q"]) == 0
    assert preset_of(out) == [VERYFAST]
    # the trade: the draft costs bits, the small file saves them (same frames, same CRF)
    assert (project_dir / "draft.mp4").stat().st_size > (project_dir / "small.mp4").stat().st_size


def test_hevc_takes_the_same_speeds_from_x265s_own_ladder(project_dir: Path) -> None:  # noqa: F811
    """x265 names its presets as x264 does; its preset table (x265 docs, "Presets") gives ultrafast
    me=dia (0), subme=0, ref=1; superfast me=hex (1), subme=1, ref=1; veryfast as superfast with ref=2."""
    from bridge.export.presets import available_codecs

    if "hevc" not in available_codecs():
        pytest.skip("this FFmpeg build has no HEVC encoder")
    project, _ = load_project(project_dir)
    got = {}
    for speed in ("draft", "balanced", "small"):
        out = project_dir / f"{speed}.mp4"
        render_project(project, project_dir, out, codec="hevc", encode_speed=speed, **TINY)
        found = re.search(rb"x265 .*? options: ([ -~]+)", out.read_bytes())
        assert found is not None, f"{out.name} has no x265 SEI message"
        options = dict(item.split("=", 1) for item in found.group(1).decode("ascii").split() if "=" in item)
        got[speed] = {key: options[key] for key in ("me", "subme", "ref")}
    assert got == {"draft": {"me": "0", "subme": "0", "ref": "1"}, "balanced": {"me": "1", "subme": "1", "ref": "1"},
                   "small": {"me": "1", "subme": "1", "ref": "2"}}


def test_a_bad_encode_speed_names_the_value_and_the_choices(project_dir: Path, capsys) -> None:  # noqa: F811
    from bridge.cli import main

    project, _ = load_project(project_dir)
    with pytest.raises(RenderError, match=r"encode speed 'turbo' is unknown; use draft .*balanced .*small"):
        render_project(project, project_dir, project_dir / "bad.mp4", encode_speed="turbo", **TINY)
    assert not list(project_dir.glob("*bad*"))
    with pytest.raises(ValueError, match=r"'fastest' is unknown; use draft"):
        RenderSettings(encode_speed="fastest")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(project_dir), "--encode-speed", "turbo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'turbo'" in err and "draft" in err and "small" in err
    # in the project file: loading says which value, where, and what to use
    path = project_dir / PROJECT_FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data["render"]["encode_speed"] = "turbo"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProjectError, match=r"(?s)encode_speed.*'turbo' is unknown; use draft"):
        load_project(project_dir)


def test_an_old_project_file_loads_and_saves_byte_for_byte(project_dir: Path) -> None:  # noqa: F811
    path = project_dir / PROJECT_FILENAME
    before = path.read_bytes()
    assert b"encode_speed" not in before  # written as earlier versions write it
    project, _ = load_project(project_dir)
    assert project.render.encode_speed == "balanced"
    save_project(project, project_dir)
    assert path.read_bytes() == before
    # a choice is written, and read back
    project.render.encode_speed = "small"
    save_project(project, project_dir)
    assert json.loads(path.read_text(encoding="utf-8"))["render"]["encode_speed"] == "small"
    assert load_project(project_dir)[0].render.encode_speed == "small"


def test_a_resumed_export_never_mixes_encode_speeds(project_dir: Path) -> None:  # noqa: F811
    """Segments are joined without re-encoding, so an export interrupted at "draft" and run again at
    "balanced" must start over: every segment of the file is then superfast."""
    project, _ = load_project(project_dir)
    draft = prepare_render(project, project_dir, encode_speed="draft", **TINY)
    assert job_key(draft) != job_key(prepare_render(project, project_dir, **TINY))
    assert job_key(draft) == job_key(prepare_render(project, project_dir, encode_speed="draft", **TINY))
    out = project_dir / "out.mp4"
    token = CancelToken()
    with pytest.raises(Cancelled):
        render_project(project, project_dir, out, encode_speed="draft", segments=3, cancel=token,
                       progress=lambda d, t, label="": token.cancel() if d >= 0.7 * t else None, **TINY)
    assert json.loads((work_folder(out) / "manifest.json").read_text())["done"]  # draft segments kept
    messages: list[str] = []
    render_project(project, project_dir, out, segments=3, log_message=messages.append, **TINY)
    assert not any("resuming" in m for m in messages), messages
    assert preset_of(out) == [SUPERFAST] * 3
