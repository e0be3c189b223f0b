"""A minimal OSC 1.0 message encoder, standard library only.

Live's embedded Python cannot pip-install python-osc, and bundling a copy of it inside a Remote
Script means shipping (and updating) a third-party package in the user's Live folder. An OSC
message is an address, a type-tag string and big-endian arguments, each padded to 4 bytes: a few
lines of ``struct``. Only the types /stembridge/transport uses are supported (i, f, d, s).
"""

import struct

_PACKERS = {
    "i": lambda v: struct.pack(">i", int(v)),
    "f": lambda v: struct.pack(">f", float(v)),
    "d": lambda v: struct.pack(">d", float(v)),
}


def osc_string(text):
    """UTF-8 bytes, NUL-terminated, padded with NULs to a multiple of 4 (OSC 1.0 'OSC-string')."""
    data = text.encode("utf-8") + b"\0"
    return data + b"\0" * (-len(data) % 4)


def encode_message(address, typetags, args):
    """One OSC message: ``encode_message("/a", ",id", (1, 2.5))`` → bytes."""
    if not typetags.startswith(",") or len(typetags) - 1 != len(args):
        raise ValueError(f"type tags {typetags!r} do not match {len(args)} arguments")
    parts = [osc_string(address), osc_string(typetags)]
    for index, value in enumerate(args):  # (zip(strict=) needs Python 3.10; Live 11 has 3.7)
        tag = typetags[index + 1]
        if tag == "s":
            parts.append(osc_string(str(value)))
        elif tag in _PACKERS:
            parts.append(_PACKERS[tag](value))
        else:
            raise ValueError(f"unsupported OSC type tag {tag!r}")
    return b"".join(parts)
