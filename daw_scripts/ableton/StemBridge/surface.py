"""The Live control surface: wires TransportReporter to Live's song and a UDP socket."""

import socket
import time

try:
    from _Framework.ControlSurface import ControlSurface
except ImportError:  # a Live without the legacy framework
    from ableton.v2.control_surface import ControlSurface

from . import config
from .transport_reporter import TransportReporter


class StemBridge(ControlSurface):
    """Sends Live's transport to stembridge. No threads (Live hangs on them), no blocking calls:
    listeners and Live's ~100 ms update_display drive everything, and the socket is non-blocking
    (a full send buffer drops one message instead of stalling Live's main thread)."""

    def __init__(self, c_instance):
        ControlSurface.__init__(self, c_instance)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        song = self.song() if callable(self.song) else self.song
        self._reporter = TransportReporter(song, self._send, time.monotonic, log=self.log_message)
        self._reporter.attach()
        note = f"StemBridge: sending the transport to {config.HOST}:{config.PORT}"
        self.log_message(note)
        self.show_message(note)

    def _send(self, datagram):
        try:
            self._socket.sendto(datagram, (config.HOST, config.PORT))
            return True
        except (OSError, ValueError):  # BlockingIOError is an OSError; ValueError: socket closed
            return False

    def update_display(self):
        ControlSurface.update_display(self)
        self._reporter.tick()

    def disconnect(self):
        self._reporter.detach()
        self._socket.close()
        ControlSurface.disconnect(self)
