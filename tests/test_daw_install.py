"""`stembridge daw-scripts install live|reaper`: the installed files are the repository's, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.daw_install import daw_scripts_root, default_destination
from bridge.errors import BridgeError

REPO_SCRIPTS = Path(__file__).resolve().parents[1] / "daw_scripts"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_install_live_copies_the_remote_script_folder(tmp_path, capsys):
    assert main(["daw-scripts", "install", "live", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    installed = tmp_path / "StemBridge"
    assert str(installed) in out and "Control Surface" in out
    original = _tree(REPO_SCRIPTS / "ableton" / "StemBridge")
    assert "surface.py" in original and _tree(installed) == original


def test_install_reaper_copies_the_pattern_file_and_replaces_an_old_copy(tmp_path, capsys):
    (tmp_path / "stembridge.ReaperOSC").write_text("old")
    assert main(["daw-scripts", "install", "REAPER", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "stembridge.ReaperOSC") in out and "Control/OSC/web" in out
    assert [p.name for p in tmp_path.iterdir()] == ["stembridge.ReaperOSC"]
    assert (tmp_path / "stembridge.ReaperOSC").read_bytes() == \
        (REPO_SCRIPTS / "reaper" / "stembridge.ReaperOSC").read_bytes()


def test_an_unknown_daw_is_a_clear_error(tmp_path, capsys):
    assert main(["daw-scripts", "install", "cubase", "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'cubase'" in err and "live, reaper" in err
    assert list(tmp_path.iterdir()) == []


def test_the_scripts_are_found_as_package_data_of_an_installed_package(tmp_path, monkeypatch):
    # the wheel's layout: PACKAGE/daw_scripts/... with no __init__.py in daw_scripts (package data)
    site = tmp_path / "site"
    shutil.copytree(REPO_SCRIPTS, site / "stembridge_wheel" / "daw_scripts",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (site / "stembridge_wheel" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    root = daw_scripts_root("stembridge_wheel.daw_scripts")
    assert Path(str(root.joinpath("README.md"))).resolve() == \
        (site / "stembridge_wheel" / "daw_scripts" / "README.md").resolve()
    assert (root / "reaper" / "stembridge.ReaperOSC").read_bytes() == \
        (REPO_SCRIPTS / "reaper" / "stembridge.ReaperOSC").read_bytes()
    from bridge import daw_install

    monkeypatch.setattr(daw_install, "SCRIPTS_PACKAGE", "stembridge_wheel.daw_scripts")
    monkeypatch.setattr(daw_install.daw_scripts_root, "__defaults__", ("stembridge_wheel.daw_scripts",))
    installed = daw_install.install_daw_script("live", tmp_path / "dest")
    assert _tree(installed.path) == _tree(REPO_SCRIPTS / "ableton" / "StemBridge")
    # a source checkout has no bridge/daw_scripts: the repository's folder is used
    assert Path(str(daw_scripts_root("no_such_package.daw_scripts"))) == REPO_SCRIPTS


def test_pyproject_ships_the_scripts_as_package_data():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["bridge.daw_scripts"]
    shipped = {p.relative_to(REPO_SCRIPTS) for pat in patterns for p in REPO_SCRIPTS.glob(pat)}
    tracked = {p.relative_to(REPO_SCRIPTS) for p in REPO_SCRIPTS.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped == tracked
    assert 'package_dir={"bridge.daw_scripts": "daw_scripts"}' in (root / "setup.py").read_text()


@pytest.mark.parametrize("platform, expected", [
    ("darwin", "home/Music/Ableton/User Library/Remote Scripts"),
    ("win32", "home/Documents/Ableton/User Library/Remote Scripts"),
])
def test_live_standard_folder(platform, expected):
    assert default_destination("live", platform=platform, home=Path("home")) == Path(expected)


def test_reaper_standard_folder():
    home = Path("home")
    assert default_destination("reaper", platform="darwin", home=home) == \
        home / "Library/Application Support/REAPER/OSC"
    assert default_destination("reaper", platform="win32", home=home, env={"APPDATA": "AD"}) == \
        Path("AD/REAPER/OSC")
    assert default_destination("reaper", platform="linux", home=home, env={}) == home / ".config/REAPER/OSC"
    with pytest.raises(BridgeError, match="--dest"):
        default_destination("live", platform="linux", home=home)
