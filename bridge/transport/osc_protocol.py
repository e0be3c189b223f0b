"""OSC protocol constants for every DAW dialect stembridge speaks, defined once.

The parsers (:mod:`bridge.transport.osc_dialects`), the socket layer (:mod:`bridge.transport.osc_io`),
the ``stembridge listen`` options and the tests of the scripts in ``daw_scripts/`` all import these
names. The Live remote script cannot import ``bridge`` (it runs inside Live's embedded Python), so it
carries a copy of the ``STEMBRIDGE_*`` values; ``tests/test_ableton_script.py`` checks that the copy
still equals what is defined here and decodes what the script sends with the app's own parser.

Sources: /work/shared/PROTOCOLS.md sections 2c-2f (AbletonOSC ``abletonosc/constants.py`` and
``song.py``, REAPER ``Default.ReaperOSC``, the Ardour manual's OSC pages and
``osc_global_observer.cc``, DrivenByMoss ``TransportModule.java`` / ``AbstractOpenSoundControlWriter``).
"""

from __future__ import annotations

# --- defaults shared by every listener ------------------------------------------------------------

#: OSC has no authentication: listen on loopback unless the user names another address.
DEFAULT_LISTEN_HOST = "127.0.0.1"
#: Receive buffer asked for on every OSC socket. Unpaced feedback bursts (a DAW dumping its whole
#: state, or one update cycle with many strips) overflow Linux's ~208 KiB default and datagrams are
#: dropped silently; the kernel caps the request at net.core.rmem_max.
OSC_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
#: Largest datagram read (python-osc's socketserver default of 8 KiB truncates big bundles).
OSC_MAX_DATAGRAM_BYTES = 65536
#: Re-send subscriptions / registrations when nothing was heard for this long (the DAW restarted,
#: or was not running when we subscribed).
RESUBSCRIBE_AFTER_SILENCE_S = 5.0

#: For TransportClock(stale_after_s=...): every OSC source sends position fixes at ≥ 10 Hz while
#: the DAW plays, so a second of silence while "playing" means the DAW stopped or went away without
#: saying so (crash, network): report it stopped rather than run on forever.
OSC_STALE_AFTER_S = {
    "ableton_osc": 1.0,
    "stembridge_osc": 1.0,
    "reaper_osc": 1.0,
    "bitwig_osc": 1.0,
    "ardour_osc": 1.0,
}

# --- AbletonOSC (ideoforms/AbletonOSC, Live 11+) --------------------------------------------------

ABLETON_OSC_LIVE_PORT = 11000  # AbletonOSC listens here
ABLETON_OSC_REPLY_PORT = 11001  # AbletonOSC always replies to <sender IP>:11001 (fixed in its code)

ABLETON_SONG_PROPERTIES = (
    "is_playing",
    "tempo",
    "current_song_time",  # beats (quarter notes), float; listener fires coarsely
    "signature_numerator",
    "signature_denominator",
    "loop",
    "loop_start",
    "loop_length",
)
ABLETON_GET_PREFIX = "/live/song/get/"
ABLETON_START_LISTEN_PREFIX = "/live/song/start_listen/"
ABLETON_STOP_LISTEN_PREFIX = "/live/song/stop_listen/"
ABLETON_IS_PLAYING = ABLETON_GET_PREFIX + "is_playing"
ABLETON_TEMPO = ABLETON_GET_PREFIX + "tempo"
ABLETON_SONG_TIME = ABLETON_GET_PREFIX + "current_song_time"
ABLETON_SIG_NUMERATOR = ABLETON_GET_PREFIX + "signature_numerator"
ABLETON_SIG_DENOMINATOR = ABLETON_GET_PREFIX + "signature_denominator"
ABLETON_LOOP = ABLETON_GET_PREFIX + "loop"
ABLETON_LOOP_START = ABLETON_GET_PREFIX + "loop_start"
ABLETON_LOOP_LENGTH = ABLETON_GET_PREFIX + "loop_length"
#: ``/live/song/get/cue_points`` (no args) → the same address with ``name0 time0 name1 time1 …``
#: (AbletonOSC ``song.py`` ``song_get_cue_points``; times in beats). Asked for, not listened to.
ABLETON_CUE_POINTS = ABLETON_GET_PREFIX + "cue_points"
#: ``/live/song/start_listen/beat`` → ``/live/song/get/beat <int>`` whenever int(song time) increments
#: or time goes backwards; old AbletonOSC versions sent ``/live/song/beat``.
ABLETON_START_LISTEN_BEAT = ABLETON_START_LISTEN_PREFIX + "beat"
ABLETON_BEAT = ABLETON_GET_PREFIX + "beat"
ABLETON_BEAT_LEGACY = "/live/song/beat"
ABLETON_STARTUP = "/live/startup"  # sent when the script (re)loads: subscriptions are gone
ABLETON_ERROR = "/live/error"
ABLETON_TEST = "/live/test"
#: Every listener fire is logged at INFO by AbletonOSC; at song-time rate the log grows by megabytes
#: per minute (AbletonOSC#147), so the listener lowers it when it subscribes.
ABLETON_SET_LOG_LEVEL = "/live/api/set/log_level"
ABLETON_LOG_LEVEL = "warning"


def ableton_subscriptions() -> list[tuple[str, tuple]]:
    """(address, args) to send to AbletonOSC to receive the song transport as it changes."""
    msgs: list[tuple[str, tuple]] = [(ABLETON_SET_LOG_LEVEL, (ABLETON_LOG_LEVEL,))]
    msgs += [(ABLETON_START_LISTEN_PREFIX + prop, ()) for prop in ABLETON_SONG_PROPERTIES]
    msgs.append((ABLETON_START_LISTEN_BEAT, ()))
    return msgs


# --- REAPER native OSC (Default.ReaperOSC pattern names) ------------------------------------------

#: No default is configured by REAPER; this is the port our README and pattern file suggest
#: (Preferences ▸ Control/OSC/web ▸ OSC ▸ "Device port").
REAPER_OSC_SUGGESTED_PORT = 9032
REAPER_TIME = "/time"  # f: seconds
REAPER_TIME_STR = "/time/str"
REAPER_BEAT_STR = "/beat/str"  # s: "measures.beats.hundredths", e.g. "5.3.50" (beats in meter units)
REAPER_TEMPO_RAW = "/tempo/raw"  # f: BPM
REAPER_PLAYRATE_RAW = "/playrate/raw"  # f: 1.0 = normal speed
REAPER_PLAY = "/play"  # t: 1/0
REAPER_STOP = "/stop"  # t: 1/0
REAPER_PAUSE = "/pause"  # t: 1/0
REAPER_RECORD = "/record"  # t: 1/0 (REAPER also lights /play while recording)
#: Markers and regions (Default.ReaperOSC MARKER_* / REGION_*): ``/marker/N/name s``,
#: ``/marker/N/time f`` (seconds), ``/marker/N/number/str s``; regions add ``/region/N/length f``.
#: REAPER sends the first DEVICE_MARKER_COUNT / DEVICE_REGION_COUNT of them (0 in Default.ReaperOSC).
REAPER_MARKER_BANK = 64
REAPER_DEVICE_MARKER_COUNT = "/device/marker/count"  # i, sent to REAPER: how many markers we show
REAPER_DEVICE_REGION_COUNT = "/device/region/count"
#: Patterns the trimmed ``daw_scripts/reaper/stembridge.ReaperOSC`` must define (checked by tests).
REAPER_PATTERN_ACTIONS = {
    "TIME": ("f" + REAPER_TIME,),
    "BEAT": ("s" + REAPER_BEAT_STR,),
    "TEMPO": ("f" + REAPER_TEMPO_RAW,),
    "PLAY_RATE": ("f" + REAPER_PLAYRATE_RAW,),
    "PLAY": ("t" + REAPER_PLAY,),
    "STOP": ("t" + REAPER_STOP,),
    "PAUSE": ("t" + REAPER_PAUSE,),
    "RECORD": ("t" + REAPER_RECORD,),
    "MARKER_NAME": ("s/marker/@/name",),
    "MARKER_NUMBER": ("s/marker/@/number/str",),
    "MARKER_TIME": ("f/marker/@/time",),
    "REGION_NAME": ("s/region/@/name",),
    "REGION_NUMBER": ("s/region/@/number/str",),
    "REGION_TIME": ("f/region/@/time",),
    "REGION_LENGTH": ("f/region/@/length",),
}

# --- Bitwig via DrivenByMoss "Open Sound Control" extension --------------------------------------

BITWIG_DBM_SEND_PORT = 9000  # DrivenByMoss sends to 127.0.0.1:9000 by default → we listen here
BITWIG_DBM_RECEIVE_PORT = 8000  # DrivenByMoss listens here (we send /refresh to it)
BITWIG_PLAY = "/play"  # i: 1/0
BITWIG_TEMPO_RAW = "/tempo/raw"  # f: BPM
BITWIG_BEAT_STR = "/beat/str"  # s: "measure.quarter.sixteenth:ticks" (ticks = 1/100 sixteenth)
BITWIG_TIME_STR = "/time/str"  # s: "hours.minutes.seconds:millis" (DBM computes it at the current tempo)
BITWIG_TIME_SIGNATURE = "/time/signature"  # s: "4 / 4"
BITWIG_UPDATE = "/update"  # i: 1 opens a flush bundle, 0 closes it
BITWIG_REFRESH = "/refresh"  # sent to DBM: dump every value now

# --- Ardour OSC surface ----------------------------------------------------------------------------

ARDOUR_OSC_PORT = 3819
ARDOUR_SET_SURFACE = "/set_surface"
ARDOUR_FEEDBACK_MASTER = 16  # master section (transport_play/stop feedback lives here)
ARDOUR_FEEDBACK_HEARTBEAT = 8  # /heartbeat toggles every second: lets us notice a silent Ardour
ARDOUR_FEEDBACK_BBT = 32  # /position/bbt "BBB|bb|tttt"
ARDOUR_FEEDBACK_SMPTE = 64  # /position/smpte "HH:MM:SS:FF"
ARDOUR_FEEDBACK_SAMPLES = 1024  # /position/samples "<int>"
ARDOUR_FEEDBACK_TIME = 2048  # /position/time "HH:MM:SS.mmm"
ARDOUR_FEEDBACK = (
    ARDOUR_FEEDBACK_HEARTBEAT
    | ARDOUR_FEEDBACK_MASTER
    | ARDOUR_FEEDBACK_BBT
    | ARDOUR_FEEDBACK_SMPTE
    | ARDOUR_FEEDBACK_SAMPLES
    | ARDOUR_FEEDBACK_TIME
)  # = 3192, the value a headless Ardour 7 run answered transport state with
ARDOUR_POSITION_BBT = "/position/bbt"
ARDOUR_POSITION_SMPTE = "/position/smpte"
ARDOUR_POSITION_SAMPLES = "/position/samples"
ARDOUR_POSITION_TIME = "/position/time"
ARDOUR_TRANSPORT_PLAY = "/transport_play"
ARDOUR_TRANSPORT_STOP = "/transport_stop"
ARDOUR_TRANSPORT_SPEED = ("/transport_speed", "/transport/speed")
ARDOUR_HEARTBEAT = "/heartbeat"
ARDOUR_TICKS_PER_BEAT = 1920  # Temporal::ticks_per_beat


def ardour_set_surface(*, reply_port: int = 0, feedback: int = ARDOUR_FEEDBACK) -> tuple[str, tuple]:
    """The ``/set_surface`` registration: no strips, transport/position feedback only.

    Arguments are ``bank_size strip_types feedback fadermode send_page_size plugin_page_size port
    linkset linkid``. ``reply_port`` 0 means "reply to the port this message came from", which is
    why the listener sends it from its own listening socket.
    """
    return (ARDOUR_SET_SURFACE, (0, 0, int(feedback), 0, 0, 0, int(reply_port), 0, 0))


# --- stembridge's own message (sent by daw_scripts/ableton/StemBridge) -----------------------------

STEMBRIDGE_OSC_PORT = 9031
STEMBRIDGE_TRANSPORT_ADDRESS = "/stembridge/transport"
STEMBRIDGE_PROTOCOL_VERSION = 1
#: Argument list of ``/stembridge/transport``, in order, with OSC type tags. Versions only ever
#: append arguments, so a reader takes the first ``len(STEMBRIDGE_TRANSPORT_ARGS)`` it knows.
#: Song times are OSC doubles ('d'): a float32 at beat 10 000 resolves only ~1 ms at 120 BPM.
STEMBRIDGE_TRANSPORT_ARGS: tuple[tuple[str, str], ...] = (
    ("protocol_version", "i"),
    ("sequence", "i"),  # +1 per message, wraps at 2**31; a reader drops stale (reordered) ones
    ("playing", "i"),  # 1 / 0
    ("tempo_bpm", "d"),
    ("song_time_beats", "d"),  # Live's current_song_time: quarter notes from song start
    ("signature_numerator", "i"),
    ("signature_denominator", "i"),
    ("loop_on", "i"),  # 1 / 0: the arrangement loop is enabled
    ("loop_start_beats", "d"),
    ("loop_length_beats", "d"),
)
STEMBRIDGE_TRANSPORT_TYPETAGS = "," + "".join(t for _, t in STEMBRIDGE_TRANSPORT_ARGS)
#: How often the Live script sends while nothing changes (it rides Live's ~100 ms display tick).
STEMBRIDGE_SEND_INTERVAL_S = 0.1
#: The song's cue points (locators): ``name time name time …`` (OSC 's' and 'd', time in beats),
#: the whole list, sent when the script loads, when a locator is added or removed, and every
#: STEMBRIDGE_CUE_INTERVAL_S (a rename or move has no listener on the list). No arguments: none.
STEMBRIDGE_CUE_POINTS_ADDRESS = "/stembridge/cue_points"
STEMBRIDGE_CUE_INTERVAL_S = 2.0

# --- sanity ranges shared by every parser -------------------------------------------------------

MIN_TEMPO_BPM = 1.0
MAX_TEMPO_BPM = 999.0  # DrivenByMoss range is 0-666, Live 20-999
MAX_ABS_POSITION_BEATS = 1.0e7
MAX_ABS_POSITION_SECONDS = 1.0e7
SIGNATURE_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)
MAX_SIGNATURE_NUMERATOR = 99
