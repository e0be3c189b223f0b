/*{
  "DESCRIPTION": "Datamosh: colour blocks smeared along their own motion vectors; every hit tears the picture into shifted slices",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Glitch", "Feedback"],
  "STATE_MEMORY_SECONDS": 12,
  "INPUTS": [
    {"NAME": "blocks", "TYPE": "float", "DEFAULT": 20.0, "MIN": 4.0, "MAX": 64.0},
    {"NAME": "smear", "TYPE": "float", "DEFAULT": 0.95, "MIN": 0.0, "MAX": 0.97},
    {"NAME": "tear", "TYPE": "float", "DEFAULT": 0.8, "MIN": 0.0, "MAX": 20.0}
  ],
  "PASSES": [
    {"TARGET": "mosh", "PERSISTENT": true},
    {}
  ]
}*/
const float TAU = 6.28318530718;

float hash(vec2 p) { return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453); }

// as bright in every hue: the harmony and the hits recolour the blocks without flashing them
vec3 palette(float t) {
    vec3 c = 0.5 + 0.5 * cos(TAU * (t + hue + vec3(0.0, 0.33, 0.67)));
    return c * 0.55 / max(dot(c, vec3(0.299, 0.587, 0.114)), 0.05);
}

// The clean picture: colour fields in a coarse grid, each row of slices shifted sideways by
// travel (a hit steps travel, so every hit tears the rows by an amount that grows with it).
vec3 fresh(vec2 uv) {
    float slice = floor(uv.y * 14.0);
    // travel is a phase in turns, wrapped to [0, 1): a triangle wave of it tears the rows out and back
    // (as far per step everywhere, and no jump where travel wraps)
    float x = uv.x + (hash(vec2(slice, 3.1)) - 0.5) * tear * 0.5 * abs(1.0 - 2.0 * fract(travel));
    vec2 cell = floor(vec2(x * 5.0, uv.y * 3.0));
    float h = hash(cell);
    vec3 c = palette(h * 0.6 + travel);  // the colours turn on by as much as each hit (a whole turn per wrap)
    // soft-edged bars: a slice torn a little changes a little (hard edges change as much for any tear)
    float bars = smoothstep(0.15, 0.35, abs(fract(x * 16.0 * (0.2 + h)) - 0.5));
    return c * (0.55 + 0.45 * bars) * (0.35 + 0.65 * step(0.3, h));
}

void main() {
    vec2 uv = isf_FragNormCoord;
    if (PASSINDEX == 0) {
        vec2 b = floor(uv * vec2(blocks, blocks * RENDERSIZE.y / RENDERSIZE.x));
        // motion vectors per block: the bass (warp) drags the held blocks, a drum hit drags them further
        // (the same blocks hold throughout: a reseed would jump the picture by more than the hit)
        vec2 mv = (vec2(hash(b + 0.5), hash(b + 9.2)) - 0.5) * (0.0002 * (0.2 + warp) + 0.08 * strength);
        float hold = step(0.55, hash(b));
        vec3 prev = IMG_NORM_PIXEL(mosh, uv - mv).rgb;
        vec3 now = fresh(uv);
        gl_FragColor = vec4(mix(now, prev, smear * hold), 1.0);
    } else {
        // chroma split: red and blue read the moshed buffer a little apart (more on a pulse)
        float split = 0.003 + 0.02 * pulse + 0.004 * detail;
        vec3 col;
        col.r = IMG_NORM_PIXEL(mosh, uv + vec2(split, 0.0)).r;
        col.g = IMG_NORM_PIXEL(mosh, uv).g;
        col.b = IMG_NORM_PIXEL(mosh, uv - vec2(split, 0.0)).b;
        col *= 0.85 + 0.15 * step(0.5, fract(gl_FragCoord.y * 0.5));  // scanlines
        col *= 0.8 + 0.25 * (1.0 + saturation);
        col = mix(col, vec3(1.0) - col, step(0.5, flash));  // a full flash inverts, like a dropped frame
        col = mix(col, vec3(1.0), flash * 0.5);
        gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
    }
}
