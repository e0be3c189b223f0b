/*{
  "DESCRIPTION": "Rings rushing out of a vanishing point; each hit pushes you deeper",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator"],
  "INPUTS": [
    {"NAME": "rings", "TYPE": "float", "DEFAULT": 6.0, "MIN": 2.0, "MAX": 16.0},
    {"NAME": "tint", "TYPE": "color", "DEFAULT": [0.2, 0.6, 1.0, 1.0]}
  ]
}*/
const float TAU = 6.28318530718;

vec3 palette(float t, vec3 base) {
    return 0.5 + 0.5 * cos(TAU * (vec3(0.0, 0.33, 0.67) + t + base));
}

void main() {
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / min(RENDERSIZE.x, RENDERSIZE.y);
    float r = length(p) + 1e-3;
    float a = atan(p.y, p.x);
    // depth along the tunnel: the music's travel moves it, time alone barely does
    // one unit of travel = one ring (seamless where travel wraps); a hit steps a fraction of a ring,
    // so a harder hit always moves it more (a step near a whole ring would look like no step)
    float depth = 1.0 / r + (4.0 / rings) * travel + 0.01 * TIME;
    float twist = a / TAU * 2.0 + 0.3 * warp * sin(depth * 0.7);
    float bands = 0.5 + 0.5 * cos(TAU * (depth * rings * 0.25 + twist));
    float ring = pow(bands, 6.0 - 4.0 * detail);
    vec3 col = palette(depth * 0.05 + hue, tint.rgb) * ring;
    col *= smoothstep(0.0, 0.35, r) * (0.75 + 0.25 * saturation);
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
