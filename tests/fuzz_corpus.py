"""Seeded corpora of bad transport input, shared by ``benchmarks/reliability.py`` (10⁶ per dialect)
and ``tests/test_reliability.py`` (a few thousand): OSC datagrams and MIDI byte streams, built the
way real ones go wrong (a well-formed message with a flipped byte, cut short, a bundle whose sizes
lie, random bytes, out-of-range values), plus the sanity checks every state must pass.

Pure functions of a seed: the same seed gives the same corpus, so a failure found by the benchmark
is replayed by passing its seed and index.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from bridge.transport import osc_protocol as P
from bridge.transport.state import TransportState

# --- sanity ------------------------------------------------------------------------------------------


def state_problems(state: TransportState) -> list[str]:
    """What is wrong with a transport state (empty when it is sane), judged from the protocol limits,
    not from the parsers' own code."""
    problems = []
    for name in ("tempo_bpm", "position_beats", "position_seconds", "beat", "received_at"):
        v = getattr(state, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            problems.append(f"{name}={v!r}")
    if problems:
        return problems
    if not P.MIN_TEMPO_BPM <= state.tempo_bpm <= P.MAX_TEMPO_BPM:
        problems.append(f"tempo_bpm={state.tempo_bpm!r}")
    num, den = state.time_signature
    if not (1 <= num <= P.MAX_SIGNATURE_NUMERATOR and den in P.SIGNATURE_DENOMINATORS):
        problems.append(f"time_signature={state.time_signature!r}")
    elif not 1.0 <= state.beat < num + 1.0 + 1e-9:
        problems.append(f"beat={state.beat!r} in {num}/{den}")
    if not isinstance(state.bar, int) or not isinstance(state.playing, bool):
        problems.append(f"bar={state.bar!r} playing={state.playing!r}")
    if (abs(state.position_seconds) > P.MAX_ABS_POSITION_SECONDS
            or abs(state.position_beats) > P.MAX_ABS_POSITION_BEATS):
        problems.append(f"position {state.position_seconds!r} s / {state.position_beats!r} beats")
    return problems


# --- OSC ---------------------------------------------------------------------------------------------

def _addresses() -> list[str]:
    """Every OSC address the protocol module names (all dialects), so the parsers' paths are reached."""
    out: set[str] = set()
    for value in vars(P).values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for v in items:
            if isinstance(v, str) and v.startswith("/") and " " not in v:
                out.add(v)
    return sorted(out)


ADDRESSES = _addresses()


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def _osc_string(s: str | bytes) -> bytes:
    return _pad(s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s)


def _random_text(r: random.Random) -> str:
    kind = r.random()
    if kind < 0.3:  # the numeric strings the REAPER / Bitwig / Ardour dialects parse
        sep = r.choice(".:|")
        return sep.join(str(r.randint(-5, 1200)) for _ in range(r.randint(1, 4)))
    if kind < 0.45:
        return f"{r.randint(0, 99):02d}:{r.randint(0, 99):02d}:{r.randint(0, 99):02d}.{r.randint(0, 999)}"
    if kind < 0.55:
        return f"{r.randint(0, 40)}/{r.choice((0, 1, 2, 3, 4, 8, 16, 64))}"
    if kind < 0.65:
        return r.choice(("nan", "inf", "-inf", "1e309", "", "true", "0x10", "１２０"))
    return "".join(chr(r.randint(1, 0x2FF)) for _ in range(r.randint(0, 12)))


_SPECIAL_FLOATS = (float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, 3.4e38, -1.0, 19.99, 1000.1)


def _random_arg(r: random.Random) -> tuple[bytes, bytes]:
    """(type tag, encoded value) of one random OSC argument."""
    k = r.random()
    if k < 0.3:
        x = r.choice(_SPECIAL_FLOATS) if r.random() < 0.3 else r.uniform(-50.0, 1100.0)
        return b"f", struct.pack(">f", x)
    if k < 0.5:
        return b"i", struct.pack(">i", r.choice((0, 1, -1, 2**31 - 1, -(2**31), r.randint(-10, 1000))))
    if k < 0.7:
        return b"s", _osc_string(_random_text(r))
    if k < 0.78:
        return b"d", struct.pack(">d", r.choice(_SPECIAL_FLOATS) if r.random() < 0.3 else r.uniform(-10, 1e4))
    if k < 0.84:
        return b"h", struct.pack(">q", r.randint(-(2**63), 2**63 - 1))
    if k < 0.9:
        blob = bytes(r.getrandbits(8) for _ in range(r.randint(0, 9)))
        return b"b", struct.pack(">i", len(blob)) + blob + b"\0" * (-len(blob) % 4)
    return r.choice((b"T", b"F", b"N", b"I")), b""


def osc_message(r: random.Random, address: str | None = None) -> bytes:
    """A well-formed OSC message: a known address (mostly) with random arguments."""
    if address is None:
        address = r.choice(ADDRESSES) if r.random() < 0.9 else "/" + _random_text(r)
    if address == P.STEMBRIDGE_TRANSPORT_ADDRESS and r.random() < 0.8:
        return _stembridge_transport(r)
    tags, values = [b","], []
    for _ in range(r.randint(0, 4) if r.random() < 0.95 else r.randint(5, 12)):
        t, v = _random_arg(r)
        tags.append(t)
        values.append(v)
    return _osc_string(address) + _osc_string(b"".join(tags)) + b"".join(values)


def _stembridge_transport(r: random.Random) -> bytes:
    """Our Live script's message with its real type tags and plausible-to-absurd values, so the
    checks behind the argument count are reached."""
    values = []
    for name, tag in P.STEMBRIDGE_TRANSPORT_ARGS:
        if tag == "i":
            v = r.choice((0, 1, -1, 2, 3, 4, 7, 8, 16, 99, 100, 2**31 - 1, r.randint(-5, 300)))
            if name == "protocol_version" and r.random() < 0.8:
                v = P.STEMBRIDGE_PROTOCOL_VERSION
            values.append(struct.pack(">i", v))
        else:
            v = r.choice(_SPECIAL_FLOATS) if r.random() < 0.2 else r.uniform(-10.0, 2000.0)
            values.append(struct.pack(">d", v))
    return (_osc_string(P.STEMBRIDGE_TRANSPORT_ADDRESS) + _osc_string(P.STEMBRIDGE_TRANSPORT_TYPETAGS)
            + b"".join(values))


def _bundle(r: random.Random, depth: int = 0) -> bytes:
    parts = []
    for _ in range(r.randint(0, 3)):
        inner = _bundle(r, depth + 1) if depth < 2 and r.random() < 0.2 else osc_message(r)
        size = len(inner)
        if r.random() < 0.1:  # a size that lies
            size = r.choice((-1, 0, size + 4, size - 4, 2**31 - 1))
        parts.append(struct.pack(">i", size) + inner)
    return b"#bundle\0" + struct.pack(">Q", r.getrandbits(64)) + b"".join(parts)


def osc_datagram(r: random.Random) -> bytes:
    """One datagram of the corpus: well-formed (30 %), bit-flipped, cut short, a bundle, or noise."""
    k = r.random()
    if k < 0.30:
        return osc_message(r)
    if k < 0.50:
        data = bytearray(osc_message(r))
        for _ in range(r.randint(1, 3)):
            data[r.randrange(len(data))] ^= 1 << r.randrange(8)
        return bytes(data)
    if k < 0.65:
        data = osc_message(r)
        return data[: r.randrange(len(data))]
    if k < 0.85:
        data = _bundle(r)
        return data if r.random() < 0.8 else data[: r.randrange(len(data) + 1)]
    return bytes(r.getrandbits(8) for _ in range(r.randint(0, 64)))


def osc_corpus(seed: int, n: int) -> Iterator[tuple[bytes, float]]:
    """``n`` (datagram, arrival time in s): time mostly moves forward by ms, sometimes stands still,
    jumps, or steps back (a clock the OS adjusted)."""
    r = random.Random(seed)
    t = 1000.0
    for _ in range(n):
        k = r.random()
        t += r.expovariate(1000.0) if k < 0.97 else (r.choice((0.0, 30.0, -0.5)))
        yield osc_datagram(r), t


# --- MIDI --------------------------------------------------------------------------------------------

def _midi_message(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.45:
        return b"\xf8"  # clock
    if k < 0.55:
        return bytes([r.choice((0xFA, 0xFB, 0xFC))])
    if k < 0.63:  # Song Position Pointer
        return bytes([0xF2, r.randrange(128), r.randrange(128)])
    if k < 0.78:  # MTC quarter frame
        return bytes([0xF1, r.randrange(128)])
    if k < 0.85:  # MTC full frame SysEx
        return bytes([0xF0, 0x7F, r.choice((0x7F, 0x00, 0x10)), 0x01, 0x01,
                      r.randrange(128), r.randrange(128), r.randrange(128), r.randrange(128), 0xF7])
    if k < 0.93:  # a channel message (notes, CCs) on the same cable
        status = r.randrange(0x80, 0xF0)
        return bytes([status] + [r.randrange(128) for _ in range(2 if status < 0xC0 or status >= 0xE0 else 1)])
    return bytes(r.getrandbits(8) for _ in range(r.randint(1, 6)))


def midi_stream(r: random.Random) -> bytes:
    """A byte stream of 1-12 messages as a MIDI input delivers them, then damaged: a byte dropped,
    flipped or inserted now and then (a bad cable, a buffer overrun)."""
    data = bytearray(b"".join(_midi_message(r) for _ in range(r.randint(1, 12))))
    if r.random() < 0.3 and data:
        for _ in range(r.randint(1, 3)):
            op, i = r.random(), r.randrange(len(data))
            if op < 0.33:
                del data[i]
            elif op < 0.66:
                data[i] ^= 1 << r.randrange(8)
            else:
                data.insert(i, r.getrandbits(8))
            if not data:
                break
    return bytes(data)


def midi_corpus(seed: int, n: int) -> Iterator[tuple[bytes, float]]:
    """``n`` (byte stream, time in s): a clock-rate timeline with jitter, pauses, a step back, a NaN."""
    r = random.Random(seed)
    t = 10.0
    for _ in range(n):
        k = r.random()
        if k < 0.95:
            t += abs(r.gauss(60.0 / (24 * r.choice((60.0, 120.0, 174.0))), 0.002))
        elif k < 0.98:
            t += r.choice((0.0, 3.0, 0.4))
        elif k < 0.99:
            t -= 0.05
        else:
            # a broken timestamp (the parsers' contract is host monotonic seconds, so no 1e18)
            yield midi_stream(r), r.choice((float("nan"), float("inf"), -float("inf"), -1.0))
            continue
        yield midi_stream(r), t


# --- runners -----------------------------------------------------------------------------------------

@dataclass
class FuzzResult:
    """What one corpus did to a parser: ``crashes`` escaped exceptions, ``internal_errors`` ones the
    parser caught itself (its own defence in depth, still bugs), ``insane`` states that failed
    :func:`state_problems`; ``first`` describes the first failure (corpus index, input, error)."""

    inputs: int = 0
    states: int = 0
    crashes: int = 0
    internal_errors: int = 0
    insane: int = 0
    first: str = ""

    @property
    def failures(self) -> int:
        return self.crashes + self.internal_errors + self.insane

    def note(self, text: str) -> None:
        if not self.first:
            self.first = text[:300]


def run_osc_fuzz(dialect_name: str, *, seed: int, n: int) -> FuzzResult:
    """Feed ``n`` corpus datagrams to an :class:`OscListener` (not started: its datagram handler is
    what the socket thread runs) with ``dialect_name``'s parser; check every state it hands on and
    the dialect's state at the end."""
    from bridge.transport.osc_dialects import make_dialect
    from bridge.transport.osc_io import OscListener

    res = FuzzResult()
    clock = [0.0]

    def sink(state: TransportState) -> None:
        res.states += 1
        problems = state_problems(state)
        if problems:
            res.insane += 1
            res.note(f"insane state after datagram {res.inputs - 1}: {', '.join(problems)}")

    listener = OscListener(make_dialect(dialect_name), sink, listen_port=0, daw_address=None,
                           time_fn=lambda: clock[0])
    listener.send = lambda *a, **k: False  # type: ignore[method-assign]  # never opens a socket
    for data, t in osc_corpus(seed, n):
        clock[0] = t
        res.inputs += 1
        try:
            listener._handle_datagram(data, ("127.0.0.1", 9))
        except Exception as e:  # noqa: BLE001 - counting what escapes is the point
            res.crashes += 1
            res.note(f"datagram {res.inputs - 1} {data[:48]!r}: {type(e).__name__}: {e}")
    res.internal_errors = int(getattr(listener.dialect, "internal_errors", 0))
    if res.internal_errors:
        res.note(f"{res.internal_errors} errors caught inside the dialect")
    problems = state_problems(listener.dialect.state)
    if problems:
        res.insane += 1
        res.note(f"final state: {', '.join(problems)}")
    return res


def run_midi_fuzz(*, seed: int, n: int, chunk: int = 1000) -> dict[str, FuzzResult]:
    """Feed ``n`` corpus byte streams through :class:`MidiTokenizer` into a MIDI clock and an MTC
    parser (fresh ones every ``chunk`` streams, so each sees many starts); check every state."""
    from bridge.transport.midi_clock import MidiClockParser, MidiTokenizer
    from bridge.transport.mtc import MtcParser

    results = {"midi clock": FuzzResult(), "mtc": FuzzResult()}
    parsers: dict = {}
    tokenizer = MidiTokenizer()
    for i, (data, t) in enumerate(midi_corpus(seed, n)):
        if i % chunk == 0:
            parsers = {"midi clock": MidiClockParser(), "mtc": MtcParser()}
            tokenizer = MidiTokenizer()
        try:
            messages = tokenizer.feed(data)
        except Exception as e:  # noqa: BLE001
            for res in results.values():
                res.crashes += 1
                res.note(f"tokenizer, stream {i} {data!r}: {type(e).__name__}: {e}")
            continue
        for name, parser in parsers.items():
            res = results[name]
            res.inputs += 1
            for msg in messages:
                try:
                    state = parser.feed(bytes(msg), t)
                except Exception as e:  # noqa: BLE001
                    res.crashes += 1
                    res.note(f"stream {i} {data!r} at t={t!r}: {type(e).__name__}: {e}")
                    continue
                if state is not None:
                    res.states += 1
                    problems = state_problems(state)
                    if problems:
                        res.insane += 1
                        res.note(f"stream {i} {data!r} at t={t!r}: {', '.join(problems)}")
    for name, parser in parsers.items():
        problems = state_problems(parser.state)
        if problems:
            results[name].insane += 1
            results[name].note(f"final state: {', '.join(problems)}")
    return results


#: A process that saves a project over and over (``python -c SAVER_SCRIPT PROJECT_DIR N_SECTIONS``),
#: printing "ready" first: the suite and the benchmark kill it at random moments mid-save.
SAVER_SCRIPT = """
import sys
from bridge.project import Section, load_project, save_project
project, folder = load_project(sys.argv[1])
n = int(sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    i += 1
    sections = [Section(name=f"take {i} part {k}", start=k, end=k + 1, prompt="x" * 200) for k in range(n)]
    save_project(project.model_copy(update={"name": f"take {i}", "sections": sections}), folder)
"""
