"""Thumbnails of the shader looks (bridge/visuals/thumbnails.py): distinct per look, cached by the
.fs file's content (reused untouched, re-rendered after an edit), written by `looks list
--thumbnails DIR`. Skips when no OpenGL 3.3 context can be created."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_gl

from bridge.errors import RenderError

REPO = Path(__file__).resolve().parents[1]

LOOK = """/*{"ISFVSN": "2", "DESCRIPTION": "a test look",
  "INPUTS": [{"NAME": "level", "TYPE": "float", "DEFAULT": %s}]}*/
void main() { gl_FragColor = vec4(level, isf_FragNormCoord.x, pulse, 1.0); }
"""


@pytest.fixture(scope="module", autouse=True)
def gl_available():
    require_gl()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the user's looks: none
    return tmp_path / "cache"


def _stats(im: np.ndarray) -> np.ndarray:
    """Mean and spread per channel, horizontal and vertical edge strength."""
    im = im.astype(np.float64)
    gray = im.mean(axis=2)
    px = im.reshape(-1, 3)
    return np.array([*px.mean(0), *px.std(0), 4 * np.abs(np.diff(gray, axis=1)).mean(),
                     4 * np.abs(np.diff(gray, axis=0)).mean()])


def test_thumbnails_of_the_shipped_looks_differ_clearly(cache):
    from bridge.visuals.shader_looks import available_looks
    from bridge.visuals.thumbnails import (
        THUMBNAIL_SIZE,
        read_thumbnail,
        thumbnail,
        thumbnail_cache_dir,
    )

    looks = available_looks()
    assert len(looks) >= 10
    images = {}
    for name in looks:
        path = thumbnail(name)
        assert path.parent == thumbnail_cache_dir() and str(path).startswith(str(cache))
        images[name] = read_thumbnail(path)
        assert images[name].shape == (THUMBNAIL_SIZE[1], THUMBNAIL_SIZE[0], 3)
        assert images[name].std() > 8, f"{name}: the thumbnail is nearly flat"
    for a, b in itertools.combinations(images, 2):
        gap = np.abs(_stats(images[a]) - _stats(images[b])).max()
        corr = np.corrcoef(images[a].mean(2).ravel(), images[b].mean(2).ravel())[0, 1]
        assert gap > 10 and corr < 0.5, (a, b, gap, corr)


def test_a_cached_thumbnail_is_reused_and_an_edited_look_re_renders(cache, tmp_path, monkeypatch):
    from bridge.visuals import thumbnails as T

    look = tmp_path / "mine.fs"
    look.write_text(LOOK % "0.2")
    first = T.thumbnail(look)
    mtime = first.stat().st_mtime_ns
    red = T.read_thumbnail(first)[..., 0].mean()
    assert abs(red - 0.2 * 255) <= 2

    def no_render(*args, **kwargs):
        raise AssertionError("a cached thumbnail was rendered again")

    with monkeypatch.context() as m:
        m.setattr(T, "render_thumbnail", no_render)
        assert T.thumbnail(look) == first
    assert first.stat().st_mtime_ns == mtime

    look.write_text(LOOK % "0.8")  # an edit: new content, new thumbnail
    second = T.thumbnail(look)
    assert second != first and first.stat().st_mtime_ns == mtime
    assert abs(T.read_thumbnail(second)[..., 0].mean() - 0.8 * 255) <= 2


def test_a_broken_look_has_no_thumbnail_and_says_why(cache, tmp_path):
    from bridge.visuals.thumbnails import thumbnail, thumbnail_cache_dir

    look = tmp_path / "broken.fs"
    look.write_text('/*{"ISFVSN": "2"}*/\nvoid main() {\n  gl_FragColor = vec4(nope, 1.0);\n}\n')
    with pytest.raises(RenderError, match=r"broken\.fs:3"):
        thumbnail(look)
    assert not thumbnail_cache_dir().exists() or not any(thumbnail_cache_dir().iterdir())


def test_looks_list_thumbnails_writes_one_png_per_look(cache, tmp_path):
    import os

    from bridge.visuals.shader_looks import available_looks

    out = tmp_path / "thumbs"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "XDG_DATA_HOME": str(tmp_path / "data"),
           "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "bridge", "looks", "list", "--thumbnails", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(available_looks())
    assert "tunnel" in r.stdout and f"wrote {len(available_looks())} thumbnails" in r.stdout
