"""The stems-folder watcher, the project-file poll and the background analysis of a Session."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import BridgeError, Cancelled, ProjectError
from bridge.jobs import CancelToken
from bridge.project.schema import Project, StemSpec
from bridge.project.store import (
    load_project,
    resolve_stem_path,
)
from bridge.session._helpers import _analysis_signature, _file_signature, merge_projects
from bridge.session.events import (
    AnalysisFailed,
    AnalysisFinished,
    AnalysisStarted,
    ProjectFileInvalid,
    StemFileAdded,
    StemFileChanged,
    StemFileMissing,
    StemFileReturned,
    StemFileUnreadable,
)

if TYPE_CHECKING:
    from bridge.analysis.types import SongAnalysis

log = logging.getLogger(__name__)


class WatchingMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    # -- watching ----------------------------------------------------------------------------
    def _stem_files(self, project: Project) -> dict[Path, str | None]:
        known = {}
        for s in project.stems:
            path = resolve_stem_path(s.path, self.project_dir)
            known[path] = self._watcher.known_digest(path) if self._watcher is not None else None
        return known

    def _watch_loop(self) -> None:
        while not self._stop.wait(self._watch_interval_s):
            try:
                self._watcher.poll_once()
                self._poll_project_file()
            except Exception:  # noqa: BLE001 - the watcher must keep running
                log.exception("watching the stems folder failed")

    def _stem_by_path(self, path: Path) -> StemSpec | None:
        for s in self._project.stems:
            if resolve_stem_path(s.path, self.project_dir) == Path(path).resolve():
                return s
        return None

    def _find_missing_stems(self) -> None:
        """At open: stems whose file is gone (deleted while the app was closed) are missing from the
        start, so the first analysis covers the others (it used to fail on the one gone file and leave
        the timeline empty) and the producer is told which file to bring back."""
        for s in self._project.stems:
            path = resolve_stem_path(s.path, self.project_dir)
            if not path.exists():
                with self._lock:
                    self._missing.add(s.name)
                self._emit(StemFileMissing(s.name, path))

    def _on_file_change(self, change) -> None:
        """Called on the watcher thread for each settled change."""
        stem = self._stem_by_path(change.path)
        if change.kind == "changed" and stem is not None:
            with self._lock:
                self._rebounced.add(stem.name)
                self._missing.discard(stem.name)  # gone at open, back before the watcher said so
            self._emit(StemFileChanged(stem.name, change.path))
            self._request_analysis(f"{stem.name} changed on disk")
            self.audio.refresh_mix()  # hear the new bounce
        elif change.kind == "removed" and stem is not None:
            # Keep the stem and its last analysis: a producer deleting a bounce usually re-bounces it.
            with self._lock:
                known = stem.name in self._missing  # already reported at open
                self._missing.add(stem.name)
            if not known:
                self._emit(StemFileMissing(stem.name, change.path))
        elif change.kind == "returned" and stem is not None:
            with self._lock:
                self._missing.discard(stem.name)
            self._emit(StemFileReturned(stem.name, change.path))
            self._request_analysis(f"{stem.name} is back")
            self.audio.refresh_mix()
        elif change.kind == "added" and stem is None:
            try:
                name, role = self._add_stem_file(change.path, origin="watcher")
            except (BridgeError, OSError) as e:
                self._emit(StemFileUnreadable(change.path, str(e)))
                return
            self._emit(StemFileAdded(name, change.path, role))
        elif change.kind == "unreadable":
            self._emit(StemFileUnreadable(change.path, change.message))

    def _poll_project_file(self) -> None:
        """An edit made to stembridge.json outside the app becomes an (undoable) external edit."""
        sig = _file_signature(self._project_file)
        if sig is None or sig == self._project_file_sig:
            return
        with self._save_lock:  # not while we are writing it ourselves
            sig = _file_signature(self._project_file)
            if sig is None or sig == self._project_file_sig:
                return
            self._project_file_sig = sig
            try:
                loaded, _ = load_project(self._project_file)
            except ProjectError as e:
                self._emit(ProjectFileInvalid(str(e)))
                return
        with self._lock:
            if loaded == self._project:
                return
            # Edits not saved yet (the other window saved first) are kept on top of the file's:
            # taking the file as it is dropped them without a word.
            base = self._saved_project
            merged = loaded if base is None or self._project == base else merge_projects(base, self._project, loaded)
            self._saved_project = loaded
            if self._closed:  # the save on close: only that write needs it
                self._project = merged
            else:
                self._edit("edit outside stembridge", lambda _: merged, origin="external")
            self._saved_project = loaded  # what is on disk now

    # -- analysis ----------------------------------------------------------------------------
    def _request_analysis(self, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._analysis_gen += 1
            gen = self._analysis_gen
            if self._analysis_token is not None:
                self._analysis_token.cancel()
            token = self._analysis_token = CancelToken()
            project = self._project
            missing = frozenset(self._missing)
            self._analysis_running = True
            self._analysis_done.clear()
        present = tuple(s.name for s in project.stems if s.name not in missing)
        self._emit(AnalysisStarted(reason, present))
        try:
            self._cpu.submit(self._run_analysis, gen, project, missing, token, reason)
        except RuntimeError:  # the pool is shut down: the session is closing
            pass

    def _run_analysis(self, gen: int, project: Project, missing: frozenset[str], token: CancelToken,
                      reason: str) -> None:
        from bridge.analysis.project import analyze_project

        t0 = time.perf_counter()
        present = [s for s in project.stems if s.name not in missing]
        try:
            if not project.stems:
                raise ProjectError("the project has no stems yet: add some on the Stems tab")
            if not present:
                raise ProjectError("none of the stems' files are where the project says: if you moved them, "
                                   "Locate missing stems… (Stems tab) finds them in their new folder; "
                                   "else add stems or bring the files back")
            sub = project.model_copy(update={"stems": present}) if len(present) != len(project.stems) else project
            analysis = analyze_project(sub, self.project_dir, cancel=token, max_workers=self._analysis_workers)
        except Cancelled:
            return
        except BridgeError as e:
            with self._lock:
                if gen == self._analysis_gen:
                    self._analysis_running = False
                    self._analysis_done.set()
            self._emit(AnalysisFailed(reason, str(e)))
            return
        except Exception as e:  # noqa: BLE001 - a bug must be reported, not kill the pool thread silently
            log.exception("analysis failed")
            with self._lock:
                if gen == self._analysis_gen:
                    self._analysis_running = False
                    self._analysis_done.set()
            self._emit(AnalysisFailed(reason, f"{type(e).__name__}: {e}"))
            return
        with self._lock:
            if gen != self._analysis_gen:
                return  # a newer request superseded this one
            self._analysis = analysis
            self._analysis_sig = _analysis_signature(project, missing)
            self._analysis_missing = missing
            self._analysis_running = False
        self._emit(AnalysisFinished(reason, analysis.duration_seconds, analysis.tempo_bpm, time.perf_counter() - t0))
        self._use_tempo_map(analysis)
        self._push_preview(edit_time=None)
        self._analysis_done.set()

    def _use_tempo_map(self, analysis: SongAnalysis) -> None:
        """Beats from the DAW (or our own clock) map to song seconds through the project's beat grid.
        Our own clock keeps its place in the song: a corrected grid (×2, a new downbeat) must not move
        the playhead (it jumped to half its time on ×2); a DAW's beats stay the DAW's."""
        state = self.clock.state
        keep_s = self.clock.position()[0] if state is not None and state.source == "free" else None
        try:
            self.clock.tempo_map = analysis.beat_grid.require_tempo_map()
        except ValueError:
            self.clock.tempo_map = None
        if keep_s is not None:
            self._set_transport(seconds=keep_s, wake=False)

    def wait_for_analysis(self, timeout_s: float | None = None) -> bool:
        """Block until the latest requested analysis finished (or failed). For scripts and tests."""
        return self._analysis_done.wait(timeout_s)

