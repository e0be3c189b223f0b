"""What the app draws, computed by bridge: the sections in seconds (as the export resolves them),
one mapping's curve, which mappings belong to a stem (as the mapping resolver reads a source), and
which stems were re-bounced. The GUI draws these results and keeps no rules of its own."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING

from bridge.errors import ProjectError

if TYPE_CHECKING:
    import numpy as np

    from bridge.vocab import SectionLook


class ViewsMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    _looks_memo: tuple | None = None

    def _section_looks(self) -> tuple[SectionLook, ...]:
        """:func:`bridge.export.render.section_looks` for the current project and analysis, memoised
        on both (a curve redraw at 30 Hz must not re-run the look choice)."""
        from bridge.export.render import section_looks

        project, analysis = self._project, self._analysis
        key = (id(analysis), project.sections, project.engine)
        memo = self._looks_memo
        if memo is None or memo[0] != key or memo[1] is not analysis:
            memo = self._looks_memo = (key, analysis, section_looks(project, analysis))
        return memo[2]

    def timeline_sections(self) -> tuple[tuple[SectionLook, ...], bool] | None:
        """(sections in seconds, detected) for the timeline; None before the first analysis.

        The project's sections resolved on the analysis' beat grid exactly as the export renders them
        (:func:`bridge.mapping.sections.resolve_sections`: beat units through the grid, extrapolated
        past its ends, beat 0 = song start, sorted, an end past the next start cut there); with no
        sections of its own, the detected ones (``detected`` True)."""
        if self._analysis is None:
            return None
        return self._section_looks(), not self._project.sections

    def section_captions(self) -> tuple[str, ...] | None:
        """One line per section of :meth:`timeline_sections` saying what it looks like in the
        project's engine: the prompt (diffusion), the look (shader: the section's own, the song's, or
        "auto" where the music chose it), nothing for the procedural engine (its look has no
        per-section setting). Detected sections say how to make them the project's."""
        resolved = self.timeline_sections()
        if resolved is None:
            return None
        looks, detected = resolved
        engine = self._project.engine
        own: tuple[str, ...] = ("",) * len(looks)  # the producer's look per section, in timeline order
        if not detected and engine.name == "shader":
            from bridge.mapping.sections import resolve_sections

            analysis = self._analysis
            own = tuple(sec.look for sec in resolve_sections(self._project.sections, analysis.beat_grid,
                                                             duration_seconds=analysis.duration_seconds))
        captions = []
        for i, sec in enumerate(looks):
            if engine.name == "lcm":
                text = sec.prompt or "no prompt"
            elif engine.name == "shader":
                chosen = sec.look or engine.look or ""
                name = PurePath(chosen).name.removesuffix(".fs") or "the engine's look"  # a look or a .fs path
                text = f"{name} (song look)" if engine.look and not sec.look else (
                    name if own[i] else f"{name} (auto)")
            else:
                text = ""
            if detected:
                text = " · ".join(t for t in (text, "detected: Sections tab ▸ Use detected sections") if t)
            captions.append(text)
        return tuple(captions)

    def first_section_index(self) -> int | None:
        """Index of the project's section that plays first (None when it has none of its own), as
        the export orders them (:func:`bridge.mapping.sections.section_order`; before the analysis,
        beat units at the project's tempo). Nothing comes before it, so its transition does nothing:
        the section editor disables that control and says why."""
        from bridge.mapping.sections import section_order

        project, analysis = self._project, self._analysis
        if not project.sections:
            return None
        grid = analysis.beat_grid if analysis is not None else None
        return section_order(project.sections, grid, tempo_bpm=project.tempo.tempo_bpm)[0]

    def mapping_curve(self, index: int, *, start_frame: int, n_frames: int) -> np.ndarray:
        """Mapping ``index`` evaluated alone (switched on even when muted) at frames ``start_frame …
        start_frame + n_frames − 1`` of the project's fps: the values its target gets, float64.
        Raises ProjectError (no analysis yet, bad index, a source that does not resolve)."""
        import numpy as np

        from bridge.mapping import evaluate_mappings

        if self._analysis is None:
            raise ProjectError("the mapping's curve needs the analysis: wait until the analysis is done")
        project = self._project
        m = project.mappings[self._check_index(project.mappings, index, "mapping")]
        params = evaluate_mappings([m.model_copy(update={"enabled": True})], self._analysis, self._section_looks(),
                                   fps=project.render.fps_fraction, start_frame=int(start_frame),
                                   n_frames=int(n_frames), stem_roles={st.name: st.role for st in project.stems})
        return np.asarray(params.column(m.target), dtype=np.float64)

    def mapping_indices(self, stem: str | None = None, *, oscillators: bool = False) -> list[int]:
        """Indices of the mappings whose source reads stem ``stem`` — by name, by name in another
        case, or by the stem's role, as :func:`bridge.mapping.sources.match_stems` resolves it (a
        role shared by several stems lists the mapping under each); ``stem="mix"``: the mix's own
        sources; ``oscillators=True``: the beat/bar oscillators."""
        from bridge.mapping.sources import OSCILLATOR_CLOCKS, match_stems
        from bridge.vocab import MIX

        project = self._project
        triples = [(st.name, st.name, str(st.role).strip().lower()) for st in project.stems]
        out = []
        for i, m in enumerate(project.mappings):
            part = m.source.strip().rpartition(".")[0]
            names = match_stems(part, triples)
            if oscillators:
                hit = not names and part.lower() in OSCILLATOR_CLOCKS
            elif stem is not None and stem.casefold() == MIX and not any(n.casefold() == MIX for n, _, _ in triples):
                hit = not names and part.lower() == MIX
            else:
                hit = stem in names
            if hit:
                out.append(i)
        return out

    @property
    def rebounced_stems(self) -> frozenset[str]:
        """Stems whose file changed on disk (re-bounced by the DAW) since the project was opened."""
        with self._lock:
            names = {st.name for st in self._project.stems}
            return frozenset(self._rebounced & names)
