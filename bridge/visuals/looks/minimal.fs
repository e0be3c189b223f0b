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
    // the ring grows and shrinks with travel (a triangle wave: no jump back to the centre)
    float radius = 0.2 + 0.2 * abs(1.0 - 2.0 * fract(travel));
    float ring = 0.7 * smoothstep(0.006, 0.0, abs(r - radius)) + 0.3 * smoothstep(0.003, 0.0, abs(r - radius * 0.5));
    // a faint halo around it, so a small step moves the picture a little and a big one a lot; brighter
    // on a smaller ring (1/radius): a step moves a ring's halo in proportion to its length, and a hit
    // should move it as far whatever the ring's size
    ring += 0.8 * (0.3 / radius) * exp(-pow((r - radius) / 0.08, 2.0));
    // the dot on the ring moves on with every hit (not with the clock: still between hits)
    float ang = 6.2831 * travel;  // one turn per turn of travel (it wraps to [0, 1): no jump there)
    float dot_ = smoothstep(0.012, 0.0, length(p - radius * vec2(cos(ang), sin(ang))));
    vec3 ink = 0.75 + 0.25 * cos(6.2831 * (hue + vec3(0.0, 0.33, 0.67)));
    ink *= 0.8 / dot(ink, vec3(0.299, 0.587, 0.114));  // as bright in every hue (the harmony recolours, never flashes)
    vec3 col = ink * (ring + dot_) * (0.85 + brightness);
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col, 1.0);
}
