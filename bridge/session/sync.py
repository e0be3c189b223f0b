"""Following a DAW: the Session opens the sync sources a :class:`~bridge.transport.sync_spec.SyncSpec`
names around its own clock, and asks the followed DAW for its markers."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from bridge.errors import TransportError

if TYPE_CHECKING:
    from bridge.transport.osc_io import MarkerRequest
    from bridge.transport.sync_spec import SyncSpec


class SyncMixin:
    """Part of :class:`bridge.session.Session` (see its docstring); uses the state Session.__init__ builds."""

    _sync_stack: ExitStack | None = None
    _sync_sources: tuple[object, ...] = ()
    _sync_spec: SyncSpec | None = None

    def connect_sync(self, spec: SyncSpec) -> list[object]:
        """Follow a DAW: open the sources ``spec`` names (closing those followed before), feeding the
        session's clock; every state also feeds :meth:`record_daw_state` (for :meth:`adopt_daw_tempo`).
        ``spec.latency_ms`` (when given) becomes the clock's latency offset. Returns the started
        sources. Raises TransportError (port busy, no MIDI backend…) or MissingDependency (Link
        without aalink), leaving nothing open and the session on its own clock."""
        from bridge.transport.listen import open_sync_sources

        self._check_open()
        self.disconnect_sync()
        stack = ExitStack()
        try:
            sources = stack.enter_context(open_sync_sources(spec, self.clock, on_state=self.record_daw_state))
        except BaseException:
            stack.close()
            raise
        if spec.latency_ms is not None:
            self.clock.latency_ms = spec.latency_ms
        self._sync_stack, self._sync_sources, self._sync_spec = stack, tuple(sources), spec
        return list(sources)

    def disconnect_sync(self) -> None:
        """Stop following the DAW (closes its sources; the clock keeps its last state). Idempotent."""
        stack, self._sync_stack, self._sync_sources, self._sync_spec = self._sync_stack, None, (), None
        if stack is not None:
            stack.close()

    @property
    def sync_spec(self) -> SyncSpec | None:
        """What the session follows now (None: its own clock)."""
        return self._sync_spec

    @property
    def sync_sources(self) -> tuple[object, ...]:
        """The open sync sources (OscListener, MidiInput, LinkSource objects)."""
        return self._sync_sources

    def request_daw_markers(self) -> MarkerRequest:
        """Ask the followed DAW for its markers over the sync connection; poll the returned request's
        ``ready()`` and pass its ``markers()`` to :meth:`import_daw_markers`. Raises TransportError when
        the followed source cannot report markers (only Live and REAPER over OSC do)."""
        from bridge.transport.osc_io import MarkerRequest

        listener = next((src for src in self._sync_sources
                         if getattr(getattr(src, "dialect", None), "markers", None) is not None), None)
        if listener is None:
            raise TransportError(
                "The DAW's markers come over its sync connection: follow Ableton Live (StemBridge script or "
                "AbletonOSC) or REAPER via OSC first (Transport ▸ Connect to your DAW…), then import.")
        return MarkerRequest(listener)
