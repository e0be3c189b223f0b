"""Live preview: a content-addressed frame cache, the keyframe scheduler with its single model
worker, ``frame_at(t)`` for playback, and the stems-folder watcher.

The application model that ties them together is :class:`bridge.session.Session`; the headless
entry point is ``stembridge preview`` (:mod:`bridge.commands.preview`, above the session). Names are imported lazily so
``import bridge.preview`` stays cheap (no OpenCV, no torch).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "FrameCache": "bridge.preview.cache",
    "frame_key": "bridge.preview.cache",
    "ParamEvaluator": "bridge.preview.evaluator",
    "PreviewScheduler": "bridge.preview.scheduler",
    "PreviewInputs": "bridge.preview.plan",
    "PreviewPlan": "bridge.preview.plan",
    "PreviewStatus": "bridge.preview.events",
    "keyframe_frames": "bridge.mapping.sections",
    "preview_size": "bridge.preview.plan",
    "StemWatcher": "bridge.preview.watcher",
    "FileChange": "bridge.preview.watcher",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge.preview' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
