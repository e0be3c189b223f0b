"""The visual parameters a mapping can drive (the columns of FrameParams).

The vocabulary itself lives in :mod:`bridge.vocab` (the bottom layer), because the project schema
and every engine need it and both sit below :mod:`bridge.mapping`; this module re-exports it so
``bridge.mapping.params`` keeps working.
"""

from __future__ import annotations

from bridge.vocab import (
    _SHADER_INPUT,
    PARAMETER_NAMES,
    PARAMETERS,
    SHADER_TARGET_PREFIX,
    VisualParameter,
    is_shader_target,
    shader_input_name,
    unit_of,
)

__all__ = [
    "PARAMETERS", "PARAMETER_NAMES", "SHADER_TARGET_PREFIX", "VisualParameter", "is_shader_target",
    "shader_input_name", "unit_of", "_SHADER_INPUT",
]
