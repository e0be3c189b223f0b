/*{
  "DESCRIPTION": "A kaleidoscope of folded bands (the procedural engine's look, as a shader)",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator"],
  "INPUTS": [
    {"NAME": "folds", "TYPE": "float", "DEFAULT": 6.0, "MIN": 3.0, "MAX": 12.0}
  ]
}*/
void main() {
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / min(RENDERSIZE.x, RENDERSIZE.y);
    float r = length(p) + 1e-3;
    float a = atan(p.y, p.x);
    float sector = 6.2831 / folds;
    a = abs(mod(a, sector) - 0.5 * sector);
    vec2 q = r * vec2(cos(a), sin(a));
    float phase = 2.0 * log(r) + 2.0 * travel + 0.01 * TIME + 0.4 * warp * sin(q.x * 10.0);
    float v = pow(0.5 + 0.5 * sin(6.2831 * phase + 10.0 * q.y), 3.0);
    vec3 col = (0.5 + 0.5 * cos(6.2831 * (hue + (phase - 2.0 * travel) * 0.2 + vec3(0.0, 0.25, 0.5)))) * v;
    col *= smoothstep(0.02, 0.3, r) * (1.0 - 0.4 * r);
    col += detail * 0.25 * step(0.985, fract(sin(dot(floor(gl_FragCoord.xy / 3.0), vec2(12.9, 78.2)) + FRAMEINDEX) * 43758.5));
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
