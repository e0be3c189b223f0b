"""Visual engines. ``get_engine(name, **settings)`` returns a fresh engine; engines are imported on
first use, so importing :mod:`bridge.visuals` imports neither OpenCV-heavy code nor torch."""

from __future__ import annotations

from typing import Any

from bridge.errors import MissingDependency, RenderError
from bridge.visuals.base import Engine, RenderContext, SectionLook

#: Engines get_engine knows: procedural (CPU, no model), shader (ISF looks on OpenGL 3.3) and lcm
#: (diffusion; needs stembridge[ai]).
ENGINE_NAMES: tuple[str, ...] = ("procedural", "shader", "lcm")
#: Engines whose whole frame-to-frame state can be read and restored (``get_state`` /
#: ``set_state``, see :mod:`bridge.visuals.base`): their segment exports hand the exact state over
#: at each cut, so segments equal a straight render bit for bit (bridge.export.segments).
STATE_ENGINES: tuple[str, ...] = ("procedural", "shader")


def get_engine(name: str, **settings: Any) -> Engine:
    """A new engine by name, constructed with ``settings`` as keyword arguments.

    Raises
    ------
    RenderError: unknown engine name (the message lists the engines).
    MissingDependency: the lcm engine's optional packages (torch, diffusers) are not installed.
    """
    key = name.strip().lower()
    if key == "procedural":
        from bridge.visuals.procedural import ProceduralEngine

        return ProceduralEngine(**settings)
    if key == "shader":
        from bridge.visuals.shader import ShaderEngine

        return ShaderEngine(**settings)
    if key == "lcm":
        try:
            from bridge.visuals import lcm
        except ImportError as exc:  # the module itself, or torch/diffusers inside it
            missing = getattr(exc, "name", None) or "diffusers"
            if missing.startswith("bridge"):
                missing = "diffusers"  # the engine module is missing: same fix, the [ai] extra
            raise MissingDependency(missing, feature="The LCM (diffusion) engine", extra="ai") from exc
        return lcm.LCMEngine(**settings)
    raise RenderError(
        f"engine {name!r} is unknown; use one of {', '.join(ENGINE_NAMES)} "
        "(set engine.name in the project)"
    )


__all__ = ["ENGINE_NAMES", "STATE_ENGINES", "Engine", "RenderContext", "SectionLook", "get_engine"]
