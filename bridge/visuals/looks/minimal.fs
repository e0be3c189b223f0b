/*{
  "DESCRIPTION": "Minimal dark: one thin ring on black that steps with every hit",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator"],
  "INPUTS": []
}*/
void main() {
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / min(RENDERSIZE.x, RENDERSIZE.y);
    float r = length(p);
    float radius = 0.1 + 0.3 * fract(2.0 * travel);
    float ring = smoothstep(0.006, 0.0, abs(r - radius)) + 0.4 * smoothstep(0.003, 0.0, abs(r - radius * 0.5));
    float dot_ = smoothstep(0.012, 0.0, length(p - radius * vec2(cos(6.2831 * bar_phase), sin(6.2831 * bar_phase))));
    vec3 ink = 0.75 + 0.25 * cos(6.2831 * (hue + vec3(0.0, 0.33, 0.67)));
    vec3 col = ink * (ring + dot_) * (0.85 + brightness);
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col, 1.0);
}
