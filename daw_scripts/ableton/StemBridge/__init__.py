"""StemBridge: an Ableton Live MIDI Remote Script that sends the transport to stembridge.

Install: copy this StemBridge folder into Live's User Library "Remote Scripts" folder, restart
Live, then Settings ▸ Link, Tempo & MIDI ▸ Control Surface: StemBridge (Input/Output: None).
Run ``stembridge listen --osc`` to see it. See daw_scripts/README.md.

Runs in Live 11/12's embedded Python 3 with the standard library only.
"""

from .surface import StemBridge


def create_instance(c_instance):
    """Live's entry point for a Remote Script."""
    return StemBridge(c_instance)
