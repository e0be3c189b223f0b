/*{
  "DESCRIPTION": "Stars streaking past; hits jump the ship forward, the bass bends space",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator"],
  "INPUTS": [
    {"NAME": "density", "TYPE": "float", "DEFAULT": 0.6, "MIN": 0.1, "MAX": 1.0}
  ]
}*/
float hash(vec2 p) { return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453); }

float nebula(vec2 q) {
    q *= 5.0;
    return 0.5 + 0.25 * sin(q.x * 2.1 + sin(q.y * 1.7)) + 0.25 * sin(q.y * 2.6 + cos(q.x * 1.3));
}

void main() {
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / RENDERSIZE.y;
    p += warp * 0.08 * vec2(sin(p.y * 6.0 + 6.2831 * travel), cos(p.x * 6.0 + 6.2831 * travel));
    // a soft nebula the ship flies through: it zooms in by as much as each hit jumps the ship
    // (smooth, so its change is sized by the jump; the stars alone are too small to show that)
    // (two octaves cross-faded, so it zooms on for ever without a seam)
    // (three octaves per turn of travel: travel wraps to [0, 1), so a whole number of them has no seam)
    float f = fract(3.0 * travel);
    float neb = mix(nebula(p * exp(-f)), nebula(p * exp(1.0 - f)), f);
    vec3 col = (0.45 + 0.35 * cos(6.2831 * (hue + 0.6 + vec3(0.0, 0.3, 0.6)))) * neb * neb * 0.6;
    float z0 = travel;
    for (int layer = 0; layer < 6; layer++) {
        float z = fract(float(layer) / 6.0 - z0);
        float scale = mix(18.0, 0.6, z);
        vec2 q = p * scale + float(layer) * 17.3;
        vec2 cell = floor(q);
        vec2 f = fract(q) - 0.5;
        float h = hash(cell);
        if (h < density) {
            vec2 off = vec2(hash(cell + 1.3), hash(cell + 7.7)) - 0.5;
            float d = length(f - off * 0.7);
            // near stars fade out before their layer wraps round to the far end (no pop between hits)
            float star = smoothstep(0.06 + 0.05 * detail, 0.0, d) * z * z * smoothstep(1.0, 0.85, z);
            vec3 tintc = 0.6 + 0.4 * cos(6.2831 * (h + hue + vec3(0.0, 0.3, 0.6)));
            col += star * tintc * 1.8;
        }
    }
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
