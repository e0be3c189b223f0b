"""Read a rendered picture back from the GPU without holding Python's GIL, and the RGB → YUV 4:2:0
conversion as a shader pass (so the encoder gets its planes straight from the read-back).

Why by hand: moderngl holds the GIL for the whole of ``Framebuffer.read`` / ``Context.finish``,
and on Mesa's llvmpipe that is the time the picture takes to rasterise (measured: a 1280×720 look's
``read`` of ~20 ms blocked every other Python thread for ~20 ms), so the export's encoder thread
stood still while the GL thread waited. ``glReadPixels`` called through :mod:`ctypes` releases the
GIL for the call (ctypes does so for every foreign call), and the encoder (PyAV releases the GIL
while x264 works) then runs beside the rasteriser. PyOpenGL would do the same but needs a
process-wide switch (``PYOPENGL_PLATFORM=egl``) before its first import; two entry points fetched
from EGL are smaller than that. Where EGL is not the context's platform (macOS, Windows) moderngl's
own ``read`` is used: same pixels, only the GIL is held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

import numpy as np

_GL_PACK_ALIGNMENT = 0x0D05
_GL_RGB = 0x1907
_GL_RGBA = 0x1908
_GL_UNSIGNED_BYTE = 0x1401
_GL_PIXEL_PACK_BUFFER = 0x88EB

#: RGB (0–255) → limited-range BT.709 Y'CbCr rows, as bridge.export.video's CPU conversion uses
#: (the coefficients are the standard's; the export module keeps the CPU reference of them).
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


@functools.cache
def _gl_functions():
    """(glReadPixels, glPixelStorei, glBindBuffer, eglGetCurrentContext) as ctypes functions, or None."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return None
    get = egl.eglGetProcAddress
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.c_char_p]
    addresses = [get(n) for n in (b"glReadPixels", b"glPixelStorei", b"glBindBuffer")]
    if not all(addresses):
        return None
    read = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                            ctypes.c_uint, ctypes.c_void_p)(addresses[0])
    store = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_int)(addresses[1])
    bind = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint)(addresses[2])
    current = egl.eglGetCurrentContext
    current.restype = ctypes.c_void_p
    current.argtypes = []
    return read, store, bind, current


def gil_free_readback() -> bool:
    """Whether :func:`read_framebuffer` can read without the GIL here: the GL context current in
    this thread is an EGL one (what :func:`bridge.gl.create_gl_context` makes on Linux). Ask in the
    thread that renders, after its context is made."""
    funcs = _gl_functions()
    return funcs is not None and bool(funcs[3]())


def read_framebuffer(fbo, width: int, height: int, components: int, *, gil_free: bool) -> np.ndarray:
    """The colour attachment of ``fbo`` as uint8 (height, width, components), GL's bottom row first.

    ``gil_free`` (from :func:`gil_free_readback`): through ctypes, without the GIL (module
    docstring); else moderngl's read. The caller owns the array (a new one per call: the export
    queues frames)."""
    out = np.empty((height, width, components), dtype=np.uint8)
    if not gil_free:
        fbo.read_into(out, components=components, alignment=1)
        return out
    read, store, bind, _current = _gl_functions()
    fbo.use()  # binds it for reading too (GL_FRAMEBUFFER: draw and read)
    bind(_GL_PIXEL_PACK_BUFFER, 0)
    store(_GL_PACK_ALIGNMENT, 1)
    read(0, 0, width, height, _GL_RGBA if components == 4 else _GL_RGB, _GL_UNSIGNED_BYTE,
         out.ctypes.data)
    return out


#: The conversion pass: the picture (RGBA8, GL's bottom row first) → the bytes of a yuv420p frame
#: (the Y plane top row first, then U, then V, each chroma value the mean of a 2×2 block, BT.709
#: limited range), four bytes per RGBA8 texel of a (width / 4) × (height × 3 / 2) target, so the
#: read-back *is* the frame ``av.VideoFrame.from_ndarray(format="yuv420p")`` takes (no flip, no
#: swscale). Rows [0, height) of the target: the Y plane (drawn with PLANE 0); after that each row
#: holds two chroma rows, U (height / 4 target rows) then V (PLANE 1). Two draws of two programs
#: and no integer division, because llvmpipe runs every branch of a shader and divides one lane at
#: a time (a single program that divided per byte cost 26 ms a 720p frame). Each byte is rounded,
#: then written as (v + 0.25) / 255, so a driver that truncates instead of rounding when it stores
#: unorm8 still stores v.
YUV420_SHADER = f"""
uniform sampler2D src;
uniform int width;
uniform int height;
out vec4 fragColor;

const vec3 KY = vec3({_KR}, {_KG}, {_KB}) * (219.0 / 255.0);
const vec3 KU = vec3({-_KR / (2 * (1 - _KB))}, {-_KG / (2 * (1 - _KB))}, 0.5) * (224.0 / 255.0);
const vec3 KV = vec3(0.5, {-_KG / (2 * (1 - _KR))}, {-_KB / (2 * (1 - _KR))}) * (224.0 / 255.0);

vec3 rgb(int x, int y) {{  // y counts from the picture's top row
    return texelFetch(src, ivec2(x, height - 1 - y), 0).rgb;
}}

vec3 block(int cx, int cy) {{  // the mean of the 2x2 pixels under chroma sample (cx, cy):
    // one bilinear sample at their shared corner weighs each of them 1/4 (src filters LINEAR)
    return texture(src, vec2(2 * cx + 1, height - 1 - 2 * cy) / vec2(width, height)).rgb;
}}

void main() {{
    ivec2 p = ivec2(gl_FragCoord.xy);
    int x = 4 * p.x;
#if PLANE == 0
    vec4 bytes = 16.0 + 255.0 * vec4(dot(rgb(x, p.y), KY), dot(rgb(x + 1, p.y), KY),
                                     dot(rgb(x + 2, p.y), KY), dot(rgb(x + 3, p.y), KY));
#else
    int row = p.y - height;
    int quarter = height / 4;
    bool v = row >= quarter;
    row -= v ? quarter : 0;
    int cw = width / 2;
    int second = x >= cw ? 1 : 0;  // the second chroma row in this target row
    int cx = x - second * cw;
    int cy = 2 * row + second;
    vec3 k = v ? KV : KU;
    vec4 bytes = 128.0 + 255.0 * vec4(dot(block(cx, cy), k), dot(block(cx + 1, cy), k),
                                      dot(block(cx + 2, cy), k), dot(block(cx + 3, cy), k));
#endif
    fragColor = (floor(clamp(bytes, 0.0, 255.0) + 0.5) + 0.25) / 255.0;
}}
"""


def yuv420_programs(gl, vbo, vertex_shader: str, width: int, height: int) -> list:
    """[(program, vertex array)] for the Y plane and the chroma planes of a width × height picture."""
    out = []
    for plane in (0, 1):
        program = gl.program(vertex_shader=vertex_shader,
                             fragment_shader=f"#version 330\n#define PLANE {plane}\n{YUV420_SHADER}")
        for name, value in (("width", width), ("height", height), ("src", 0)):
            if name in program:  # a plane's program may not use every uniform
                program[name].value = value
        out.append((program, gl.vertex_array(program, [(vbo, "2f", "in_position")])))
    return out


def draw_yuv420(gl, programs: list, target_fbo, src_texture, width: int, height: int) -> None:
    """Convert ``src_texture`` into ``target_fbo`` ((width / 4) × (height × 3 / 2), RGBA8)."""
    src_texture.use(location=0)
    target_fbo.use()
    gl.viewport = (0, 0, width // 4, height * 3 // 2)
    for (_program, vao), rows in zip(programs, ((0, height), (height, height // 2)), strict=True):
        gl.scissor = (0, rows[0], width // 4, rows[1])
        vao.render(5)
    gl.scissor = None


def yuv420_supported(width: int, height: int) -> bool:
    """The conversion pass packs four bytes per texel, two chroma rows per target row and the U
    plane in whole target rows: it needs a width divisible by 8 and a height divisible by 4 (1280×720,
    1920×1080, 1080×1920, 3840×2160 … are). Other sizes convert on the CPU."""
    return width % 8 == 0 and height % 4 == 0 and width > 0 and height > 0
