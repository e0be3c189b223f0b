"""Transport sync: DAW clocks (MIDI clock, MTC, OSC dialects, Ableton Link) → TransportState."""
