package capture

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"strconv"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/danstream/danstream/frame"
)

// The synthetic camera is pure Go: a static street scene with fine detail
// (signage text, window grids, fences, zebra stripes, textured asphalt) that
// super-resolution visibly improves, a few moving objects, and per-frame sensor
// noise. Every pixel is a function of (seed, Seq), so runs are reproducible.

const (
	defaultSynthW   = 320
	defaultSynthH   = 180
	defaultSynthFPS = 25
	minSynthDim     = 32
	// staticBottom is the fraction of the height above which nothing moves:
	// only noise changes those pixels (the tests rely on it).
	staticBottom = 0.45
)

type synthConfig struct {
	w, h int
	fps  float64
	url  string
}

func parseSynthetic(raw string, opts Options) (synthConfig, error) {
	cfg := synthConfig{w: defaultSynthW, h: defaultSynthH, fps: defaultSynthFPS, url: raw}
	spec := strings.TrimPrefix(raw, "synthetic:")
	bad := func() (synthConfig, error) {
		return synthConfig{}, fmt.Errorf("capture: invalid synthetic source %q (want synthetic:, synthetic:WxH or synthetic:WxH@FPS, e.g. synthetic:320x180@25)", raw)
	}
	if spec != "" {
		size, rate, hasRate := strings.Cut(spec, "@")
		ws, hs, ok := strings.Cut(size, "x")
		if !ok {
			return bad()
		}
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if err1 != nil || err2 != nil {
			return bad()
		}
		cfg.w, cfg.h = w, h
		if hasRate {
			f, err := strconv.ParseFloat(rate, 64)
			if err != nil || f <= 0 || f > 1000 {
				return bad()
			}
			cfg.fps = f
		}
	}
	if opts.Width > 0 {
		cfg.w, cfg.h = opts.Width, opts.Height
	}
	if cfg.w < minSynthDim || cfg.h < minSynthDim || cfg.w > maxDim || cfg.h > maxDim {
		return synthConfig{}, fmt.Errorf("capture: synthetic source %q: size %dx%d out of range (each side %d..%d)", raw, cfg.w, cfg.h, minSynthDim, maxDim)
	}
	if opts.FPS > 0 && opts.FPS < cfg.fps {
		cfg.fps = opts.FPS
	}
	return cfg, nil
}

func openSynthetic(cfg synthConfig, opts Options) Source {
	sc := newScene(cfg.w, cfg.h, opts.Seed)
	l := &loop{info: Info{URL: cfg.url, Kind: "synthetic", Width: cfg.w, Height: cfg.h, FPS: cfg.fps}}
	period := time.Duration(float64(time.Second) / cfg.fps)
	l.start(func(ctx context.Context) error {
		start := time.Now()
		for seq := uint64(1); ; seq++ {
			// Absolute deadlines keep the average rate exact despite render time.
			due := start.Add(time.Duration(seq-1) * period)
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			} else if ctx.Err() != nil {
				return nil
			}
			f := frame.Frame{W: cfg.w, H: cfg.h, Seq: seq, Reset: seq == 1}
			f.Pix = sc.render(seq, float64(seq-1)/cfg.fps)
			f.Captured = time.Now()
			l.box.put(f)
		}
	})
	return l
}

// scene holds the pre-rendered static background (BGR) and the moving objects.
type scene struct {
	w, h   int
	seed   uint64
	bg     []byte
	noise  []int8
	movers []mover
}

type mover struct {
	y0, y1 float64 // vertical extent as fractions of the height
	length float64 // width as a fraction of the frame width
	speed  float64 // frame widths per second, sign is direction
	phase  float64 // starting offset in frame widths
	body   [3]byte // BGR
	kind   int     // 0 car, 1 pedestrian
}

func newScene(w, h int, seed int64) *scene {
	s := &scene{w: w, h: h, seed: uint64(seed)}
	s.bg = renderBackground(w, h, s.seed)
	s.noise = makeNoise(len(s.bg), s.seed^0x9015e)
	r := newRNG(s.seed ^ 0x5eed)
	pick := func(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }
	s.movers = []mover{
		{y0: 0.64, y1: 0.76, length: 0.20, speed: pick(0.18, 0.28), phase: pick(0, 1), body: [3]byte{40, 40, 190}},
		{y0: 0.78, y1: 0.91, length: 0.24, speed: -pick(0.12, 0.2), phase: pick(0, 1), body: [3]byte{170, 120, 30}},
		{y0: 0.66, y1: 0.75, length: 0.14, body: [3]byte{220, 220, 225}}, // follows car 0 at a distance
		{y0: 0.47, y1: 0.62, length: 0.025, speed: pick(0.04, 0.07), phase: pick(0, 1), body: [3]byte{60, 140, 60}, kind: 1},
	}
	s.movers[2].speed, s.movers[2].phase = s.movers[0].speed, s.movers[0].phase+0.6
	return s
}

// render draws frame seq at scene time t (seconds) into a new BGR buffer.
func (s *scene) render(seq uint64, t float64) []byte {
	pix := make([]byte, len(s.bg))
	copy(pix, s.bg)
	for _, m := range s.movers {
		s.drawMover(pix, m, t)
	}
	// An odd multiplier keeps consecutive frames' windows far apart.
	addNoise(pix, s.noise, int(newRNG(s.seed^seq*0x9e3779b97f4a7c15).next()%noiseSpan))
	return pix
}

func (s *scene) drawMover(pix []byte, m mover, t float64) {
	W, H := float64(s.w), float64(s.h)
	span := 1 + m.length // wrap fully off-screen before re-entering
	pos := m.phase + m.speed*t
	pos -= span * float64(int(pos/span))
	if pos < 0 {
		pos += span
	}
	x0 := int((pos - m.length) * W)
	x1 := x0 + int(m.length*W) + 1
	y0, y1 := int(m.y0*H), int(m.y1*H)
	b, g, r := m.body[0], m.body[1], m.body[2]
	if m.kind == 1 { // pedestrian: head, torso, legs swinging with time
		hh := (y1 - y0) / 5
		fillRect(pix, s.w, s.h, x0+1, y0, x1-1, y0+hh, 140, 170, 210)
		fillRect(pix, s.w, s.h, x0, y0+hh, x1, y0+3*hh, b, g, r)
		swing := int(2 * float64(x1-x0) * (0.5 - frac(t*1.5)))
		fillRect(pix, s.w, s.h, x0+swing/2, y0+3*hh, x0+swing/2+max(1, (x1-x0)/2), y1, 50, 40, 40)
		fillRect(pix, s.w, s.h, x1-swing/2-max(1, (x1-x0)/2), y0+3*hh, x1-swing/2, y1, 50, 40, 40)
		return
	}
	ch := y1 - y0
	// body, cabin with windows, wheels, licence plate
	fillRect(pix, s.w, s.h, x0, y0+ch/3, x1, y1-ch/6, b, g, r)
	l := x1 - x0
	fillRect(pix, s.w, s.h, x0+l/5, y0, x1-l/5, y0+ch/3, b, g, r)
	fillRect(pix, s.w, s.h, x0+l/5+2, y0+2, x0+l/2-1, y0+ch/3, 90, 60, 40)
	fillRect(pix, s.w, s.h, x0+l/2+1, y0+2, x1-l/5-2, y0+ch/3, 90, 60, 40)
	fillRect(pix, s.w, s.h, x0+l/8, y1-ch/4, x0+l/8+ch/4+1, y1, 15, 15, 15)
	fillRect(pix, s.w, s.h, x1-l/8-ch/4-1, y1-ch/4, x1-l/8, y1, 15, 15, 15)
	pw := max(4, l/6)
	px := x0 + l/2 - pw/2
	py := y1 - ch/6 - max(2, ch/6)
	fillRect(pix, s.w, s.h, px, py, px+pw, py+max(2, ch/8), 235, 235, 235)
	for x := px + 1; x < px+pw-1; x += 2 { // plate "characters": 1-px strokes
		fillRect(pix, s.w, s.h, x, py+1, x+1, py+max(2, ch/8)-1, 20, 20, 20)
	}
}

func frac(x float64) float64 { return x - float64(int(x)) }

// fillRect paints [x0,x1)x[y0,y1) clipped to the frame.
func fillRect(pix []byte, w, h, x0, y0, x1, y1 int, b, g, r byte) {
	x0, y0 = max(x0, 0), max(y0, 0)
	x1, y1 = min(x1, w), min(y1, h)
	if x0 >= x1 || y0 >= y1 {
		return // fully off-screen (movers wrap through the edges)
	}
	for y := y0; y < y1; y++ {
		row := pix[(y*w+x0)*3 : (y*w+x1)*3]
		for i := 0; i < len(row); i += 3 {
			row[i], row[i+1], row[i+2] = b, g, r
		}
	}
}

// renderBackground draws the static street with image/draw, then packs it to BGR.
func renderBackground(w, h int, seed uint64) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fy := func(f float64) int { return int(f * float64(h)) }
	fx := func(f float64) int { return int(f * float64(w)) }
	rect := func(x0, y0, x1, y1 int, c color.RGBA) {
		draw.Draw(img, image.Rect(x0, y0, x1, y1), &image.Uniform{c}, image.Point{}, draw.Src)
	}
	rng := newRNG(seed ^ 0xb6)
	// sky gradient
	for y := 0; y < fy(0.30); y++ {
		k := float64(y) / float64(fy(0.30)+1)
		rect(0, y, w, y+1, color.RGBA{uint8(150 + 40*k), uint8(180 + 30*k), uint8(225 - 10*k), 255})
	}
	// distant skyline between the buildings
	rect(0, fy(0.22), w, fy(0.55), color.RGBA{120, 125, 135, 255})
	// left building: brick wall with a window grid and mullions
	bx0, by0, bx1, by1 := fx(0.04), fy(0.06), fx(0.60), fy(0.55)
	rect(bx0, by0, bx1, by1, color.RGBA{150, 82, 60, 255})
	for y := by0; y < by1; y += 4 { // mortar lines, staggered bricks
		rect(bx0, y, bx1, y+1, color.RGBA{185, 170, 150, 255})
		off := 0
		if (y-by0)/4%2 == 1 {
			off = 4
		}
		for x := bx0 + off; x < bx1; x += 8 {
			rect(x, y, x+1, y+4, color.RGBA{185, 170, 150, 255})
		}
	}
	winW, winH := max(6, w/28), max(6, h/16)
	for y := by0 + fy(0.12); y+winH < by1-2; y += winH * 2 {
		for x := bx0 + winW/2; x+winW < bx1; x += winW * 2 {
			lit := rng.float() < 0.3
			c := color.RGBA{50, 60, 80, 255}
			if lit {
				c = color.RGBA{230, 210, 140, 255}
			}
			rect(x-1, y-1, x+winW+1, y+winH+1, color.RGBA{225, 225, 220, 255}) // frame
			rect(x, y, x+winW, y+winH, c)
			rect(x+winW/2, y, x+winW/2+1, y+winH, color.RGBA{225, 225, 220, 255}) // mullion
			rect(x, y+winH/2, x+winW, y+winH/2+1, color.RGBA{225, 225, 220, 255})
		}
	}
	// shop sign with small text: the sharpest detail in the scene
	sx0, sy0 := bx0+4, by0+3
	rect(sx0, sy0, min(bx1-4, sx0+150), sy0+15, color.RGBA{20, 30, 70, 255})
	drawText(img, image.Rect(sx0, sy0, min(bx1-4, sx0+150), sy0+15), 3, 12, "DANSTREAM CAM 01", color.RGBA{250, 250, 240, 255})
	// right building: horizontal siding stripes, a sign and a fence
	rx0, ry0, rx1, ry1 := fx(0.64), fy(0.16), fx(0.97), fy(0.55)
	rect(rx0, ry0, rx1, ry1, color.RGBA{200, 200, 190, 255})
	for y := ry0; y < ry1; y += 3 {
		rect(rx0, y, rx1, y+1, color.RGBA{140, 140, 135, 255})
	}
	rect(rx0+3, ry0+4, rx1-3, ry0+18, color.RGBA{180, 20, 20, 255})
	drawText(img, image.Rect(rx0+3, ry0+4, rx1-3, ry0+18), 3, 11, "NO PARKING", color.RGBA{255, 255, 255, 255})
	for x := rx0; x < rx1; x += 3 { // fence bars
		rect(x, fy(0.46), x+1, ry1, color.RGBA{30, 30, 30, 255})
	}
	rect(rx0, fy(0.46), rx1, fy(0.46)+1, color.RGBA{30, 30, 30, 255})
	// sidewalk tiles
	rect(0, fy(0.55), w, fy(0.62), color.RGBA{175, 172, 165, 255})
	for x := 0; x < w; x += 6 {
		rect(x, fy(0.55), x+1, fy(0.62), color.RGBA{130, 128, 122, 255})
	}
	rect(0, fy(0.62)-1, w, fy(0.62), color.RGBA{90, 90, 90, 255}) // curb
	// textured asphalt
	for y := fy(0.62); y < fy(0.93); y++ {
		for x := 0; x < w; x++ {
			v := uint8(62 + rng.intn(18))
			img.SetRGBA(x, y, color.RGBA{v, v, v + 3, 255})
		}
	}
	// dashed centre line and zebra crossing
	for x := 0; x < w; x += 16 {
		rect(x, fy(0.77), x+9, fy(0.77)+1, color.RGBA{235, 210, 60, 255})
	}
	for x := fx(0.42); x < fx(0.56); x += 4 {
		rect(x, fy(0.62), x+2, fy(0.64), color.RGBA{235, 235, 235, 255})
		rect(x, fy(0.91), x+2, fy(0.93), color.RGBA{235, 235, 235, 255})
	}
	// grass verge
	for y := fy(0.93); y < h; y++ {
		for x := 0; x < w; x++ {
			g := uint8(90 + rng.intn(50))
			img.SetRGBA(x, y, color.RGBA{g / 3, g, g / 4, 255})
		}
	}
	bgr := make([]byte, w*h*3)
	for i, j := 0, 0; i < len(img.Pix); i, j = i+4, j+3 {
		bgr[j], bgr[j+1], bgr[j+2] = img.Pix[i+2], img.Pix[i+1], img.Pix[i]
	}
	return bgr
}

// drawText writes s inside box (clipped to it), baseline at box.Min+(dx,dy).
func drawText(img *image.RGBA, box image.Rectangle, dx, dy int, s string, c color.RGBA) {
	dst, ok := img.SubImage(box).(*image.RGBA)
	if !ok || dst.Rect.Empty() {
		return
	}
	d := font.Drawer{Dst: dst, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(box.Min.X+dx, box.Min.Y+dy)}
	d.DrawString(s)
}

// noiseSpan is how far a frame's window into the noise table may shift.
const noiseSpan = 1 << 16

// makeNoise draws zero-mean triangular noise in [-7,7] (sd ~2.9), like a small
// sensor's read noise, once per scene; frames take windows of it at offsets
// chosen per Seq, so per-frame cost is an add, not a random draw per byte.
func makeNoise(n int, seed uint64) []int8 {
	r := newRNG(seed)
	out := make([]int8, n+noiseSpan)
	var bits uint64
	k := 0
	for i := range out {
		if k == 0 {
			bits, k = r.next(), 10
		}
		out[i] = int8(int(bits&7) + int(bits>>3&7) - 7)
		bits >>= 6
		k--
	}
	return out
}

// addNoise adds noise[off:] to pix with saturation.
func addNoise(pix []byte, noise []int8, off int) {
	noise = noise[off : off+len(pix)]
	for i, p := range pix {
		v := int16(p) + int16(noise[i])
		v &^= v >> 15 // negative -> 0
		if v > 255 {
			v = 255
		}
		pix[i] = byte(v)
	}
}

// rng is splitmix64: tiny, fast and fully determined by its seed.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
