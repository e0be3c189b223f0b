/*{
  "DESCRIPTION": "Title cards: a bar.beat counter in big block numerals over strobe stripes that jump on every hit",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Typography"],
  "INPUTS": [
    {"NAME": "stripes", "TYPE": "float", "DEFAULT": 9.0, "MIN": 2.0, "MAX": 30.0},
    {"NAME": "ink", "TYPE": "color", "DEFAULT": [1.0, 0.95, 0.85, 1.0]}
  ]
}*/
// 3×5 pixel numerals, one 15-bit row-major bitmap per digit (top row in the high bits).
const int GLYPHS[10] = int[10](31599, 11415, 29671, 29647, 23497, 31183, 31215, 29330, 31727, 31695);
const float TAU = 6.28318530718;

float glyph(int d, vec2 cell) {
    if (cell.x < 0.0 || cell.y < 0.0 || cell.x >= 3.0 || cell.y >= 5.0) return 0.0;
    int c = int(cell.x);
    int r = 4 - int(cell.y);
    return float((GLYPHS[d] >> (14 - (r * 3 + c))) & 1);
}

// Digit `k` (0 = rightmost) of n.
int digitOf(float n, int k) { return int(mod(floor(n / pow(10.0, float(k))), 10.0)); }

void main() {
    vec2 px = gl_FragCoord.xy;
    vec2 uv = isf_FragNormCoord;
    // numerals sized by the height, but narrow frames (vertical, square) by the width: the counter
    // box (18 units wide) always fits (16:9 and wider: the height decides, as before)
    float unit = min(RENDERSIZE.y * 0.075, RENDERSIZE.x * 0.0425) * (1.0 + 0.25 * pulse);
    // Counter "BBB.b": bar (1-based, 3 digits), a dot, beat in the bar (1-based)
    vec2 g = (px - 0.5 * RENDERSIZE) / unit + vec2(9.5, 2.5);
    float slot = floor(g.x / 4.0);
    vec2 cell = vec2(g.x - slot * 4.0, g.y);
    float bar = bar_index + 1.0;
    float text = 0.0;
    if (slot >= 0.0 && slot < 3.0) text = glyph(digitOf(bar, 2 - int(slot)), cell);
    else if (slot == 3.0) text = glyph(digitOf(beat_in_bar + 1.0, 0), cell);
    // the dot between bar and beat sits in the gap before the beat digit
    text = max(text, step(abs(g.x - 11.5), 0.5) * step(abs(g.y - 0.5), 0.5));
    // Diagonal strobe stripes; travel moves them (a hit steps it: most of a stripe per hard hit)
    float s = fract((uv.x * RENDERSIZE.x / RENDERSIZE.y + uv.y) * stripes * 0.25 - 3.0 * travel);
    float band = step(0.5, s);
    vec3 cardA = 0.5 + 0.45 * cos(TAU * (hue + 0.1 * section_index + vec3(0.0, 0.33, 0.67)));
    vec3 cardB = cardA * 0.18;
    vec3 col = mix(cardB, cardA, band * (0.35 + 0.65 * smoothstep(0.0, 0.6, abs(uv.y - 0.5))));
    // a box behind the counter, the counter in ink on top of it
    float box = step(abs(g.x - 7.5), 9.0) * step(abs(g.y - 2.5), 4.0);
    col = mix(col, vec3(0.02), box * 0.85);
    col = mix(col, ink.rgb, text);
    col += detail * 0.2 * step(0.97, fract(sin(dot(floor(px / 4.0), vec2(12.9, 78.2)) + FRAMEINDEX) * 43758.5));
    col = mix(col, vec3(1.0) - col, step(0.5, flash));
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
