"""Separate a full mix into stems with Demucs (drums, bass, other, vocals; + guitar, piano).

The separated stems are then used exactly like stems rendered from a DAW. Importing this package
never imports torch or demucs; they are imported when a separation actually has to run (a cached
result needs neither). Needs the ``ai`` extra: ``pip install "stembridge[ai]"``.

Public API::

    separate_mix_to_folder(mix, out_dir, *, model=None, model_repo=None, device="auto", shifts=1,
                           overlap=0.25, segment=None, bit_depth="float", progress=None,
                           cancel=None) -> list[Path]
    separate_mix(mix, ...) -> SeparationResult        # cached float32 stems, nothing copied
    DemucsSeparator(...).separate(mix)                # keeps the model loaded between mixes
    bss_eval_v4 / sdr_per_stem                        # quality, as museval computes it
"""

from bridge.separation.blocks import BlockPlan, plan_blocks
from bridge.separation.demucs_runner import (
    DemucsSeparator,
    SeparationResult,
    export_stems,
    separate_mix,
    separate_mix_to_folder,
    stem_filename,
)
from bridge.separation.models import (
    DEFAULT_MODEL,
    MODEL_CHOICES,
    TEST_MODEL,
    ModelNotAvailable,
    ModelSpec,
    SeparationError,
    load_model,
    network_reachable,
    pick_device,
    resolve_model_spec,
    save_model_to_repo,
)

_SDR_NAMES = frozenset({"BssEvalScores", "bss_eval_v4", "sdr_per_stem", "utterance_sdr"})


def __getattr__(name: str):
    # The quality metrics pull in scipy; load them only when asked for.
    if name in _SDR_NAMES:
        from bridge.separation import sdr

        return getattr(sdr, name)
    raise AttributeError(f"module 'bridge.separation' has no attribute {name!r}")

__all__ = [
    "DEFAULT_MODEL", "MODEL_CHOICES", "TEST_MODEL", "BlockPlan", "BssEvalScores", "DemucsSeparator",
    "ModelNotAvailable", "ModelSpec", "SeparationError", "SeparationResult", "bss_eval_v4", "export_stems",
    "load_model", "network_reachable", "pick_device", "plan_blocks", "resolve_model_spec", "save_model_to_repo", "sdr_per_stem",
    "separate_mix", "separate_mix_to_folder", "stem_filename", "utterance_sdr",
]
