"""The project: schema (pydantic) and the atomic store."""

from bridge.project.schema import (
    PROJECT_FILENAME,
    SCHEMA_VERSION,
    EngineSettings,
    Mapping,
    Project,
    RenderSettings,
    Section,
    StemSpec,
    TempoSettings,
    parse_fps,
)
from bridge.project.store import (
    cache_dir,
    copy_project,
    load_project,
    project_file,
    relative_stem_path,
    resolve_stem_path,
    save_project,
)

__all__ = [
    "PROJECT_FILENAME", "SCHEMA_VERSION", "EngineSettings", "Mapping", "Project", "RenderSettings",
    "Section", "StemSpec", "TempoSettings", "parse_fps", "cache_dir", "copy_project", "load_project", "project_file",
    "relative_stem_path", "resolve_stem_path", "save_project",
]
