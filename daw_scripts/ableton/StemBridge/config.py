"""Where the StemBridge Live script sends, and what. Edit HOST/PORT here to send elsewhere.

These values are a copy of bridge/transport/osc_protocol.py (STEMBRIDGE_*): this script runs inside
Live's embedded Python and cannot import stembridge. tests/test_ableton_script.py fails if the two
ever disagree.
"""

# stembridge listens on 127.0.0.1 by default; to follow Live on another computer, put that
# computer's address here and start stembridge with --osc <its address>:9031.
HOST = "127.0.0.1"
PORT = 9031

ADDRESS = "/stembridge/transport"
PROTOCOL_VERSION = 1
# protocol_version, sequence, playing, tempo_bpm, song_time_beats, signature_numerator,
# signature_denominator, loop_on, loop_start_beats, loop_length_beats
TYPETAGS = ",iiiddiiidd"

# Also sent on every change; this is the periodic resend, riding Live's ~100 ms display tick.
SEND_INTERVAL_S = 0.1

# The song's cue points (locators), as name/time pairs (time in beats): on load, when one is added
# or removed, and every CUE_INTERVAL_S (renames and moves have no listener on the list).
CUE_ADDRESS = "/stembridge/cue_points"
CUE_INTERVAL_S = 2.0
# at most this many locators per message (a datagram stays far below the 64 KiB limit)
MAX_CUES = 500
