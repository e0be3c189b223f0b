/*{
  "DESCRIPTION": "Ink in water: a feedback fluid; each hit turns the water and stirs in a burst of ink, the harmony colours it",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Feedback"],
  "INPUTS": [
    {"NAME": "fade", "TYPE": "float", "DEFAULT": 0.99, "MIN": 0.8, "MAX": 0.995}
  ],
  "PASSES": [
    {"TARGET": "fluid", "PERSISTENT": true, "FLOAT": true},
    {}
  ]
}*/
void main() {
    vec2 uv = isf_FragNormCoord;
    if (PASSINDEX == 0) {
        vec2 c = uv - 0.5;
        float ang = 6.2831 * travel + 0.4 * warp * sin(8.0 * length(c) - 6.2831 * travel);
        // between hits the fluid barely drifts; a hit stirs all of it at once, as far as it is strong
        vec2 flow = vec2(cos(ang + c.y * 9.0), sin(ang + c.x * 9.0)) * (0.0008 + 0.02 * strength);
        vec4 prev = IMG_NORM_PIXEL(fluid, uv - flow);
        // the drop is round in any frame: its distance measured in units of the shorter side
        vec2 square = RENDERSIZE / min(RENDERSIZE.x, RENDERSIZE.y);
        float drop = smoothstep(0.09, 0.0, length((c - 0.25 * vec2(cos(6.2831 * travel), sin(12.566 * travel))) * square));
        vec3 inkc = 0.5 + 0.5 * cos(6.2831 * (hue + vec3(0.0, 0.33, 0.67) + travel));
        gl_FragColor = vec4(prev.rgb * fade + drop * inkc * (0.1 + 0.5 * strength), 1.0);
    } else {
        // the water turns with every hit, as far as the hit is strong (and rests between hits)
        // (out and back: a triangle wave of travel, which wraps to [0, 1), turns as far per step with no jump)
        float turn = 6.2831 * 0.25 * (1.0 - abs(1.0 - 2.0 * fract(travel)));  // 0 at travel 0: the picture upright
        vec2 d = (uv - 0.5) * RENDERSIZE;
        d = mat2(cos(turn), -sin(turn), sin(turn), cos(turn)) * d;
        vec3 col = IMG_NORM_PIXEL(fluid, d / RENDERSIZE + 0.5).rgb;
        col = col / (1.0 + col);
        col = mix(col, vec3(1.0), flash);
        gl_FragColor = vec4(col * (1.0 + brightness) * 1.4, 1.0);
    }
}
