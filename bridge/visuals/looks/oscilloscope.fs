/*{
  "DESCRIPTION": "Oscilloscope: the music's waveform as glowing phosphor traces; each hit rolls the traces on and turns the beam, a drum hit jolts it",
  "CREDIT": "stembridge",
  "ISFVSN": "2",
  "CATEGORIES": ["Generator", "Audio Reactive"],
  "STATE_MEMORY_SECONDS": 0.5,
  "INPUTS": [
    {"NAME": "wave", "TYPE": "audio"},
    {"NAME": "gain", "TYPE": "float", "DEFAULT": 0.35, "MIN": 0.0, "MAX": 1.0},
    {"NAME": "traces", "TYPE": "float", "DEFAULT": 5.0, "MIN": 1.0, "MAX": 12.0},
    {"NAME": "beam", "TYPE": "color", "DEFAULT": [0.3, 1.0, 0.55, 1.0]}
  ],
  "PASSES": [
    {"TARGET": "phosphor", "PERSISTENT": true},
    {}
  ]
}*/
// The picture only rolls and turns when `travel` steps (a hit); the waveform (`wave`, fed from the
// mix or the stem engine.audio_inputs names) wiggles the traces, mostly on drum hits (`strength`),
// and the phosphor pass keeps a short glow.
const float TAU = 6.28318530718;

float traceAt(vec2 p) {
    float n = floor(traces + 0.5);
    float glow = 0.0;
    float tri = abs(1.0 - 2.0 * fract(travel));  // travel wraps to [0, 1): a triangle wave has no jump there
    for (int i = 0; i < 12; i++) {
        if (float(i) >= n) break;
        float y0 = (float(i) + 0.5) / n * 1.6 - 0.8;
        float u = fract(p.x * 0.45 + 0.5 + float(i) * 0.137);
        float w = IMG_NORM_PIXEL(wave, vec2(u, 0.5)).r - 0.5;
        // without audio (a preview) the beam still draws a line that each hit bends anew
        // the waveform jolts the beam on a drum hit (by as much as the hit, falling off fast) and
        // only hums between hits: a loud mix would otherwise redraw it every frame
        float y = y0 + 2.0 * gain * w * (0.02 + 2.0 * strength * strength) + 0.05 * sin(p.x * 7.0 + TAU * travel + float(i));
        float d = abs(mod(p.y - 0.25 * tri + 0.8, 1.6) - 0.8 - y);  // and rolls the traces up and back
        // a thin core in a wide glow: the glow moves in proportion to the step, a 1-pixel core
        // alone would change as much for any step
        glow += 0.4 * smoothstep(0.012 + 0.01 * pulse, 0.0, d) + 0.6 * smoothstep(0.18, 0.0, d);
    }
    return glow;
}

void main() {
    vec2 p = (gl_FragCoord.xy - 0.5 * RENDERSIZE) / (0.5 * RENDERSIZE.y);
    if (PASSINDEX == 0) {
        float ang = TAU * 0.025 * abs(1.0 - 2.0 * fract(travel));
        mat2 rot = mat2(cos(ang), -sin(ang), sin(ang), cos(ang));
        vec2 q = rot * p;
        q.x += 0.08 * warp * sin(q.y * 3.0 + TAU * travel);  // the bass bends it (gently: it swells between hits)
        float g = traceAt(q);
        vec3 prev = IMG_THIS_NORM_PIXEL(phosphor).rgb;
        vec3 tintc = beam.rgb * (0.75 + 0.25 * cos(TAU * (hue + vec3(0.0, 0.33, 0.67))));
        // as bright in every hue: the harmony recolours the beam without flashing it
        tintc *= dot(beam.rgb, vec3(0.299, 0.587, 0.114)) / max(dot(tintc, vec3(0.299, 0.587, 0.114)), 0.02);
        gl_FragColor = vec4(prev * 0.12 + 0.88 * g * tintc, 1.0);
    } else {
        vec3 col = IMG_THIS_NORM_PIXEL(phosphor).rgb;
        // a faint graticule, as on a scope's screen
        vec2 cell = abs(fract(p * 2.5) - 0.5);
        col += vec3(0.03, 0.06, 0.05) * step(0.48, max(cell.x, cell.y)) * (0.5 + detail);
        col *= 1.0 - 0.35 * dot(p, p) * 0.25;
        col = mix(col, vec3(1.0), flash);
        gl_FragColor = vec4(col * (1.0 + brightness), 1.0);
    }
}
