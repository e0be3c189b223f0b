/*{
  "DESCRIPTION": "Cover art: your picture (engine.images: {\"cover\": FILE}) cut into slices that every hit re-sets; painted colour fields when none is given",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Image"],
  "INPUTS": [
    {"NAME": "cover", "TYPE": "image"},
    {"NAME": "slices", "TYPE": "float", "DEFAULT": 10.0, "MIN": 1.0, "MAX": 40.0},
    {"NAME": "shift", "TYPE": "float", "DEFAULT": 2.5, "MIN": 0.0, "MAX": 10.0}
  ]
}*/
const float TAU = 6.28318530718;

float hash(float x) { return fract(sin(x * 91.345) * 43758.5453); }

// The picture at uv (0…1 both ways, repeating): the cover, scaled to fill the frame, or — when no
// picture was given (the engine binds a 1×1 black texture) — soft painted colour fields.
vec3 picture(vec2 uv) {
    vec2 size = IMG_SIZE(cover);
    if (size.x > 1.5) {
        float frame_aspect = RENDERSIZE.x / RENDERSIZE.y;
        float img_aspect = size.x / size.y;
        vec2 q = uv - 0.5;
        if (img_aspect > frame_aspect) q.x *= frame_aspect / img_aspect; else q.y *= img_aspect / frame_aspect;
        return IMG_NORM_PIXEL(cover, fract(q + 0.5)).rgb;
    }
    vec2 p = fract(uv) - 0.5;
    float a = length(p - vec2(0.18, 0.1)), b = length(p + vec2(0.22, 0.15));
    vec3 c = 0.5 + 0.5 * cos(TAU * (hue + vec3(0.0, 0.33, 0.67) + 1.4 * a));
    c = mix(c, 0.5 + 0.5 * cos(TAU * (hue + 0.4 + vec3(0.0, 0.33, 0.67) + 2.0 * b)), smoothstep(0.35, 0.05, b));
    return c * (0.6 + 0.4 * step(0.5, fract(8.0 * (p.x + p.y))));
}

void main() {
    vec2 uv = isf_FragNormCoord;
    float n = floor(slices + 0.5);
    float s = floor(uv.x * n);
    // each slice slides up or down by travel: a hit re-sets every slice, a harder hit further
    float dy = (hash(s + 1.0) - 0.5) * shift * travel;
    vec2 q = vec2(uv.x, uv.y + dy);
    // a slow drift so a still picture breathes (small beside a hit's step)
    q = 0.5 + (q - 0.5) * (0.97 - 0.02 * sin(TIME * 0.2));
    q.x += 0.02 * warp * sin(q.y * 12.0 + TIME);
    vec3 col = picture(q);
    // dark seams between the slices
    float edge = abs(fract(uv.x * n) - 0.5) * 2.0;
    col *= 0.75 + 0.25 * smoothstep(1.0, 0.9, edge);
    float grey = dot(col, vec3(0.299, 0.587, 0.114));
    col = mix(vec3(grey), col, clamp(1.0 + saturation, 0.0, 2.0));
    col += detail * 0.15 * step(0.98, hash(floor(gl_FragCoord.x / 3.0) + 97.0 * floor(gl_FragCoord.y / 3.0) + float(FRAMEINDEX)));
    col = mix(col, vec3(1.0), flash);
    gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
}
