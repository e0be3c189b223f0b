/*{
  "DESCRIPTION": "A neon floor grid to the horizon that rolls on with every hit, under a striped sun",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator"],
  "INPUTS": [
    {"NAME": "horizon", "TYPE": "float", "DEFAULT": 0.55, "MIN": 0.3, "MAX": 0.8}
  ]
}*/
void main() {
    vec2 uv = isf_FragNormCoord;
    vec3 sky = mix(vec3(0.02, 0.0, 0.06), vec3(0.35, 0.05, 0.3), pow(uv.y, 1.5));
    vec3 col = sky;
    float sunr = length((uv - vec2(0.5, horizon + 0.12)) * vec2(RENDERSIZE.x / RENDERSIZE.y, 1.0));
    col += vec3(1.0, 0.55, 0.2) * smoothstep(0.16, 0.15, sunr) * smoothstep(-0.6, 0.6, sin(uv.y * 120.0 - 6.2831 * travel) + 0.2);
    if (uv.y < horizon) {
        float d = (horizon - uv.y);
        float z = 0.25 / d;
        float x = 6.0 * (uv.x - 0.5) * z * (1.0 + 0.1 * warp * sin(z + 6.2831 * travel));
        float zz = z + travel;  // one line per turn of travel (it wraps to [0, 1): no jump there)
        // a line where the cell coordinate is near a whole number (|fract − 0.5| near 0.5)
        float w = 0.40;
        float lines = max(smoothstep(w, 0.49, abs(fract(x) - 0.5)),
                          smoothstep(w, 0.49, abs(fract(zz) - 0.5)));
        vec3 neon = 0.55 + 0.45 * cos(6.2831 * (hue + vec3(0.8, 0.95, 0.1)));
        // as bright in every hue: a chord change recolours the floor without flashing it
        neon *= 0.75 / max(dot(neon, vec3(0.299, 0.587, 0.114)), 0.05);
        // lines fade out towards the horizon, where they are finer than a pixel and would flicker
        // on any step whatever its size; a hit rolls the floor by as much as the hit is strong
        float near = smoothstep(0.0, 0.12, d);
        col = mix(vec3(0.0), neon, 0.7 * near * (lines * (1.0 - smoothstep(0.0, 0.5, horizon - d)) + lines * 0.3));
        // a soft glow across each tile (brightest at its lines): the floor's roll shows in proportion
        float glow = pow(2.0 * max(abs(fract(x) - 0.5), abs(fract(zz) - 0.5)), 2.0);
        col += neon * near * 0.8 * glow;
    }
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
