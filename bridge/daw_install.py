"""Install the bundled DAW scripts: the Ableton Live remote script and the REAPER OSC pattern file.

``daw_scripts/`` (top of the repository) ships inside the wheel as ``bridge.daw_scripts``; in a
source checkout, which has no ``bridge/daw_scripts``, the repository's folder is used. The CLI
(``stembridge daw-scripts install live|reaper [--dest DIR]``) and the app's "Connect to your DAW"
dialog both call :func:`install_daw_script`.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from bridge.errors import BridgeError

SCRIPTS_PACKAGE = "bridge.daw_scripts"


def daw_scripts_root(package: str = SCRIPTS_PACKAGE) -> Traversable:
    """The bundled ``daw_scripts`` folder: the installed package's data, else the source checkout's."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        root = None
    if root is not None and root.joinpath("README.md").is_file():
        return root
    checkout = Path(__file__).resolve().parents[1] / "daw_scripts"
    if checkout.joinpath("README.md").is_file():
        return checkout
    raise BridgeError(f"the DAW scripts are missing from this installation (no {package} package data); "
                      "reinstall stembridge")


@dataclass(frozen=True)
class DawScript:
    name: str  # what the user types: live, reaper
    title: str
    source: tuple[str, ...]  # inside daw_scripts/: a folder (copied as a folder) or a file
    next_steps: str


SCRIPTS: dict[str, DawScript] = {
    "live": DawScript(
        "live", "Ableton Live", ("ableton", "StemBridge"),
        "Restart Live. Settings (Preferences) > Link, Tempo & MIDI > Control Surface: choose "
        "StemBridge in a free slot, Input and Output: None. Live's status bar then says "
        "\"StemBridge: sending the transport to 127.0.0.1:9031\". In stembridge follow \"Ableton Live "
        "(StemBridge script)\" (CLI: stembridge listen --osc) and press play."),
    "reaper": DawScript(
        "reaper", "REAPER", ("reaper", "stembridge.ReaperOSC"),
        "In REAPER: Options > Preferences > Control/OSC/web > Add. Control surface mode: OSC (Open "
        "Sound Control); Pattern config: stembridge; Mode: Configure device IP + local port; Device "
        "IP 127.0.0.1, Device port 9032; Local listen port: anything free. OK, then in stembridge "
        "follow REAPER (CLI: stembridge listen --reaper-osc 9032) and press play."),
}
ALIASES = {"ableton": "live", "ableton-live": "live", "abletonlive": "live"}


def script_for(daw: str) -> DawScript:
    key = ALIASES.get(daw.strip().lower(), daw.strip().lower())
    if key not in SCRIPTS:
        raise BridgeError(
            f"no script to install for {daw!r}: choose one of {', '.join(SCRIPTS)}. Logic Pro, "
            "Bitwig, Ardour, MIDI clock, MTC and Link need no file from stembridge (see "
            "daw_scripts/README.md or the app's Connect to your DAW dialog).")
    return SCRIPTS[key]


def default_destination(daw: str, *, platform: str | None = None, home: Path | None = None,
                        env: dict[str, str] | None = None) -> Path:
    """The DAW's standard folder on this OS: Live's User Library ``Remote Scripts`` folder, REAPER's
    ``OSC`` folder in its resource path. Raises BridgeError where the DAW has no standard folder."""
    script = script_for(daw)
    platform = platform or sys.platform
    home = home or Path.home()
    env = os.environ if env is None else env
    if script.name == "live":
        if platform == "darwin":
            return home / "Music" / "Ableton" / "User Library" / "Remote Scripts"
        if platform.startswith("win"):
            return home / "Documents" / "Ableton" / "User Library" / "Remote Scripts"
        raise BridgeError("Ableton Live runs on macOS and Windows only: give the folder with --dest "
                          "(Live's User Library, folder Remote Scripts)")
    if platform == "darwin":
        return home / "Library" / "Application Support" / "REAPER" / "OSC"
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "REAPER" / "OSC"
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return config / "REAPER" / "OSC"


def _copy(src: Traversable, dst: Path) -> list[Path]:
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        written = []
        for child in sorted(src.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__" or child.name.endswith(".pyc"):
                continue
            written += _copy(child, dst / child.name)
        return written
    dst.write_bytes(src.read_bytes())
    return [dst]


@dataclass(frozen=True)
class Installed:
    script: DawScript
    path: Path  # the installed folder (Live) or file (REAPER)
    files: tuple[Path, ...]

    def report(self) -> str:
        return f"Installed the {self.script.title} script: {self.path}\nNext: {self.script.next_steps}"


def install_daw_script(daw: str, dest: str | Path | None = None) -> Installed:
    """Copy the script for ``daw`` (live, reaper) into ``dest`` (default: the DAW's standard
    folder, created if missing); an existing copy is replaced."""
    script = script_for(daw)
    folder = Path(dest).expanduser() if dest else default_destination(script.name)
    src = daw_scripts_root()
    for part in script.source:  # one part at a time: 3.11's MultiplexedPath.joinpath takes one
        src = src / part
    target = folder / script.source[-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = _copy(src, target)
    except OSError as e:
        raise BridgeError(f"could not install the {script.title} script into {folder}: {e}") from e
    return Installed(script, target, tuple(files))


def cmd_daw_scripts_install(args) -> int:
    print(install_daw_script(args.daw, args.dest).report())
    return 0


def add_daw_scripts_parser(sub) -> None:
    d = sub.add_parser("daw-scripts", help="install the Ableton Live remote script or the REAPER OSC pattern file")
    dsub = d.add_subparsers(dest="daw_scripts_command", required=True)
    i = dsub.add_parser("install", help="copy a DAW's script to its standard folder (or --dest)")
    i.add_argument("daw", metavar="live|reaper")
    i.add_argument("--dest", metavar="DIR",
                   help="install into DIR instead of the DAW's standard folder (Live: User Library/"
                        "Remote Scripts; REAPER: the OSC folder in its resource path)")
    i.set_defaults(func=cmd_daw_scripts_install)
