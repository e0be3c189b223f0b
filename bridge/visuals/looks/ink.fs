/*{
  "DESCRIPTION": "Ink in water: each hit draws a stroke of ink and turns and stirs the water, as far as the hit is strong; between hits the water is still, the harmony colours the ink",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Feedback"],
  "INPUTS": [
    {"NAME": "fade", "TYPE": "float", "DEFAULT": 0.88, "MIN": 0.5, "MAX": 0.98}
  ],
  "PASSES": [
    {"TARGET": "state", "PERSISTENT": true, "FLOAT": true, "WIDTH": "4", "HEIGHT": "1"},
    {"TARGET": "fluid", "PERSISTENT": true, "FLOAT": true, "WIDTH": "$WIDTH/2", "HEIGHT": "$HEIGHT/2"},
    {}
  ]
}*/
// The water lives in travel, not in time: a frame moves it (draws, turns, stirs, spreads and thins the
// ink) by exactly its step of travel, the picture's step on each hit, and a frame with no step leaves
// it as it was. So a hit moves the picture on its own frame, in proportion, and nothing drifts or
// trails after it (benchmarks/av_sync.py: motion follows the mix's onsets). `fade`: the share of the
// ink kept per 0.1 of travel. The step is read from the last frame's travel, kept in `state`. The
// water is drawn at half the frame's size and shown smoothed (ink is soft): at full size the strokes
// and the spread cost llvmpipe twice the old ink's time (16 against 33 fps at 1280x720).
const float TAU = 6.2831853;
const float TURN = 2.0;   // radians the water turns per unit of travel
const float STIR = 0.06;  // how far the stir carries ink per unit of travel

// where the pen is at travel t: a figure of eight through the centre (there at travel 0, where the
// first drop falls), in units of the shorter side
vec2 pen(float t, vec2 square) {
    return vec2(0.3 * square.x * sin(TAU * t), 0.3 * square.y * sin(2.0 * TAU * t));
}

// a divergence-free stir (the curl of a few waves): ink is swirled into tendrils, never pooled
vec2 stir(vec2 p) {
    float ph = TAU * travel;
    vec2 k1 = vec2(5.0, 3.0), k2 = vec2(-4.0, 6.0), k3 = vec2(7.0, -2.0);
    float w = 1.0 + 0.6 * warp;
    vec2 g = k1 * cos(dot(k1, p) * w + ph) + k2 * cos(dot(k2, p) * w - ph) + 0.6 * k3 * cos(dot(k3, p) * w + 2.0 * ph);
    return vec2(g.y, -g.x);
}

// where the water carries a point x in a frame where the hit stepped by `hit` (a fraction `part` of
// that frame's move): the turn about the centre and the stir, forwards (the fluid pass samples backwards)
vec2 carried(vec2 x, float hit, float part) {
    float a = -TURN * hit * part;
    vec2 r = mat2(cos(a), sin(a), -sin(a), cos(a)) * x;
    return r + STIR * hit * part * stir(r);
}

// the ink a round brush (radius w) leaves at p, drawn from a to b at a constant rate: the brush's
// integral along the segment, so the strokes drawn frame by frame join into one smooth stroke
// (across: a smooth bump; along: its integral, a smoothstep; polynomials, cheap on a CPU renderer)
float stroke(vec2 p, vec2 a, vec2 b, float w) {
    vec2 ab = b - a;
    float len = length(ab);
    vec2 dir = len > 1e-6 ? ab / len : vec2(1.0, 0.0);
    float along = dot(p - a, dir);
    float across = dot(p - a, vec2(-dir.y, dir.x)) / w;
    float bump = max(0.0, 1.0 - across * across);
    return bump * bump * (smoothstep(-w, w, along) - smoothstep(-w, w, along - len));
}

void main() {
    vec2 uv = isf_FragNormCoord;
    // units of the shorter side (from the fluid's size: the same in every pass)
    vec2 square = IMG_SIZE(fluid) / min(IMG_SIZE(fluid).x, IMG_SIZE(fluid).y);
    vec4 last = IMG_PIXEL(state, vec2(0.5));
    if (PASSINDEX == 0) {
        // texel 0: r travel, g its step since the last frame (travel is a phase wrapped to [0, 1):
        // 0.95 -> 0.07 is a step of 0.12), b 1 on the first frame (a is 0 in a cleared buffer: the
        // first frame drops the first ink); texels 1-3: this frame's stroke, computed once here
        // rather than in every pixel of the fluid
        bool first = last.a < 0.5;
        float hit = first ? 0.1 : abs(fract(travel - last.r + 0.5) - 0.5);
        int texel = int(gl_FragCoord.x);
        if (texel == 0) {
            gl_FragColor = vec4(travel, hit, first ? 1.0 : 0.0, 1.0);
        } else {
            // the pen's way from the last frame's place to this one, 2 pieces along its figure;
            // the part drawn earlier in the frame has been carried by the water since
            float u = float(texel - 1) / 2.0;
            gl_FragColor = vec4(carried(pen(travel - hit * u, square), hit, u), 0.0, 1.0);
        }
    } else if (PASSINDEX == 1) {
        float hit = last.g;
        vec2 p = (uv - 0.5) * square;
        // the water turns and stirs (sampled backwards) and the ink spreads, as far as the step
        float a = TURN * hit;
        vec2 q = mat2(cos(a), sin(a), -sin(a), cos(a)) * p;
        q -= stir(p) * STIR * hit;
        vec2 src = q / square + 0.5;
        vec2 px = 40.0 * hit / RENDERSIZE;
        vec3 prev = 0.25 * (IMG_NORM_PIXEL(fluid, src + vec2(px.x, 0.0)).rgb + IMG_NORM_PIXEL(fluid, src - vec2(px.x, 0.0)).rgb
                          + IMG_NORM_PIXEL(fluid, src + vec2(0.0, px.y)).rgb + IMG_NORM_PIXEL(fluid, src - vec2(0.0, px.y)).rgb);
        // what the turn brings in from outside the frame is clear water
        vec2 inside = step(vec2(0.0), src) * step(src, vec2(1.0));
        prev *= inside.x * inside.y;
        float keep = pow(fade, hit / 0.1);
        // the pen follows a figure of eight in travel; a hit draws its way from the last frame's
        // place to this one, as much ink per unit of travel wherever the pen is
        float ink = 0.0;
        vec2 b0 = IMG_PIXEL(state, vec2(1.5, 0.5)).xy;
        for (int i = 0; i < 2; i++) {
            vec2 a0 = IMG_PIXEL(state, vec2(float(i) + 2.5, 0.5)).xy;
            ink += stroke(p, a0, b0, 0.075) * 0.5 * hit / max(length(b0 - a0), 1e-5);
            b0 = a0;
        }
        ink *= 2.5;
        if (last.b > 0.5) ink = exp(-0.5 * dot(p - pen(travel, square), p - pen(travel, square)) / (0.04 * 0.04));  // the first drop: round
        vec3 inkc = 0.5 + 0.5 * cos(TAU * (hue + vec3(0.0, 0.33, 0.67) + travel));
        gl_FragColor = vec4(prev * keep + ink * inkc, 1.0);
    } else {
        vec3 col = IMG_NORM_PIXEL(fluid, uv).rgb;
        col = col / (1.0 + col);
        col = mix(col, vec3(1.0), flash);
        gl_FragColor = vec4(col * (1.0 + brightness) * 1.4, 1.0);
    }
}
