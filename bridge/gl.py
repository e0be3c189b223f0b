"""OpenGL for the shader engine: a standalone context, and whether one can be had here.

At the bottom of the layers (beside :mod:`bridge.errors`) because two layers ask: the shader engine
(:mod:`bridge.visuals.shader`) draws with the context, and a new project
(:func:`bridge.project.create.new_project`) takes the shader engine as its default only where a
context can be created — every song its own look where the machine can draw it, the procedural
engine (CPU, numpy + OpenCV) where it cannot.
"""

from __future__ import annotations

import functools

from bridge.errors import MissingDependency, RenderError


def create_gl_context():
    """A standalone OpenGL ≥ 3.3 context: EGL on Linux (headless), the default elsewhere."""
    try:
        import moderngl
    except ImportError as exc:
        raise MissingDependency("moderngl", feature="The shader engine") from exc
    import sys

    attempts = [dict(backend="egl")] if sys.platform.startswith("linux") else []
    attempts.append({})
    errors = []
    for kwargs in attempts:
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as e:  # noqa: BLE001 - moderngl/glcontext raise several types
            errors.append(f"{kwargs.get('backend', 'default')}: {e}")
    raise RenderError(
        "the shader engine needs OpenGL 3.3, and no context could be created (" + "; ".join(errors) + "). "
        "On Linux install Mesa's EGL (Debian/Ubuntu: apt install libegl1 libegl-mesa0 libgl1-mesa-dri), "
        "or use --engine procedural")


@functools.cache
def opengl_problem() -> str | None:
    """None when an OpenGL 3.3 context can be created in this process, else why not (the error's
    text, with the fix). Asked once per process: creating a context costs ~0.1 s."""
    try:
        create_gl_context().release()
    except (RenderError, MissingDependency) as e:
        return str(e)
    return None
