package transport

import (
	"testing"
	"time"

	"github.com/danstream/danstream/frame"
)

// drain collects what is queued on s without blocking.
func drain(s *Subscription) []Sample {
	var out []Sample
	for {
		select {
		case x, ok := <-s.Samples():
			if !ok {
				return out
			}
			out = append(out, x)
		default:
			return out
		}
	}
}

func encStats(t *testing.T, b *Broadcaster, codec string) EncoderStats {
	t.Helper()
	for _, e := range b.Stats().Encoders {
		if e.Codec == codec {
			return e
		}
	}
	t.Fatalf("no %s encoder in stats %+v", codec, b.Stats())
	return EncoderStats{}
}

func TestBroadcasterEncodesOncePerCodecForAllViewers(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 64})
	defer b.Close()
	b.WriteFrame(testFrame(160, 96, 0)) // nobody watches: no encoder
	if b.EncoderRunning(CodecVP8) {
		t.Fatal("encoder runs with no viewers")
	}
	s1, err := b.Subscribe("vp8")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Subscribe("video/VP8")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 1; i <= n; i++ {
		b.WriteFrame(testFrame(160, 96, i))
	}
	a, c := drain(s1), drain(s2)
	if len(a) != n || len(c) != n {
		t.Fatalf("viewers got %d and %d samples, want %d each", len(a), len(c), n)
	}
	if !a[0].Keyframe || !vp8IsKey(a[0].Data) || vp8IsKey(a[1].Data) {
		t.Fatal("first sample of a new viewer is not a keyframe, or the flags disagree with the VP8 bitstream")
	}
	for i := range a {
		if &a[i].Data[0] != &c[i].Data[0] {
			t.Fatalf("sample %d was encoded separately per viewer", i)
		}
	}
	if e := encStats(t, b, CodecVP8); e.Frames != n || e.Viewers != 2 || e.Restarts != 1 {
		t.Fatalf("encoder stats %+v: want %d frames, 2 viewers, 1 start", e, n)
	}
	if st := b.Stats(); st.FramesIn != n+1 || st.Viewers != 2 {
		t.Fatalf("stats %+v", st)
	}
	s1.Close()
	if !b.EncoderRunning(CodecVP8) {
		t.Fatal("encoder stopped while a viewer remains")
	}
	s2.Close()
	s2.Close() // idempotent
	if b.EncoderRunning(CodecVP8) || b.Viewers() != 0 {
		t.Fatal("encoder still runs after the last viewer left")
	}
	if _, ok := <-s1.Samples(); ok {
		t.Fatal("closed subscription's channel still open")
	}
}

func TestSlowViewerLosesOnlyItsOwnSamples(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 4, KeyframeInterval: 10})
	defer b.Close()
	fast, _ := b.Subscribe(CodecVP8)
	slow, _ := b.Subscribe(CodecVP8) // never reads
	const n = 60
	got := 0
	for i := 0; i < n; i++ {
		b.WriteFrame(testFrame(160, 96, i)) // must not block on the slow viewer
		got += len(drain(fast))
	}
	if got != n || fast.Drops() != 0 {
		t.Fatalf("fast viewer got %d/%d samples, %d drops", got, n, fast.Drops())
	}
	if slow.Drops() == 0 {
		t.Fatal("slow viewer's drops not counted")
	}
	if st := b.Stats(); st.Drops != slow.Drops() {
		t.Fatalf("stats drops %d, slow viewer %d", st.Drops, slow.Drops())
	}
	// After the overflow the slow viewer resumes cleanly at a keyframe.
	// After an overflow the slow viewer resumes cleanly at a keyframe (or is
	// still waiting for one, with an empty queue).
	q := drain(slow)
	if len(q) > 0 && !q[0].Keyframe {
		t.Fatalf("slow viewer's queue after overflow does not start with a keyframe (%d samples)", len(q))
	}
	for i := 1; i < len(q); i++ {
		if q[i].Seq != q[i-1].Seq+1 {
			t.Fatalf("gap inside the slow viewer's queue: %d then %d", q[i-1].Seq, q[i].Seq)
		}
	}
}

func TestKeyframeOnRequestAndForNewViewer(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 64, KeyframeInterval: 1000, MinKeyframeGap: time.Nanosecond})
	defer b.Close()
	s1, _ := b.Subscribe(CodecVP8)
	for i := 0; i < 5; i++ {
		b.WriteFrame(testFrame(160, 96, i))
	}
	q := drain(s1)
	if !q[0].Keyframe || q[4].Keyframe {
		t.Fatalf("want key then deltas, got key flags %v %v", q[0].Keyframe, q[4].Keyframe)
	}
	s1.RequestKeyframe() // what a PLI does
	b.WriteFrame(testFrame(160, 96, 5))
	if q = drain(s1); len(q) != 1 || !q[0].Keyframe {
		t.Fatal("no keyframe after RequestKeyframe")
	}
	b.WriteFrame(testFrame(160, 96, 6))
	s2, _ := b.Subscribe(CodecVP8)
	b.WriteFrame(testFrame(160, 96, 7))
	if q = drain(s2); len(q) != 1 || !q[0].Keyframe || q[0].Seq != 7 {
		t.Fatalf("new viewer did not start on the next frame as a keyframe: %+v", q)
	}
	if e := encStats(t, b, CodecVP8); e.Forced != 2 || e.Frames != 8 {
		t.Fatalf("encoder stats %+v: want 2 forced keyframes in 8 frames", e)
	}
}

func TestEncoderRestartsOnFrameSizeChange(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 64})
	defer b.Close()
	s, _ := b.Subscribe(CodecVP8)
	b.WriteFrame(testFrame(160, 96, 0))
	b.WriteFrame(testFrame(160, 96, 1))
	b.WriteFrame(testFrame(96, 64, 2))
	q := drain(s)
	if len(q) != 3 || q[2].W != 96 || q[2].H != 64 || !q[2].Keyframe {
		t.Fatalf("after a size change want a 96x64 keyframe, got %d samples, last %+v", len(q), q[len(q)-1])
	}
	if e := encStats(t, b, CodecVP8); e.Restarts != 2 || e.Width != 96 {
		t.Fatalf("encoder stats %+v: want 2 starts at width 96", e)
	}
}

func TestBroadcasterRejectsUnknownCodecAndClosedUse(t *testing.T) {
	b := NewBroadcaster("s", VariantOriginal, EncoderOptions{})
	if _, err := b.Subscribe("VP9"); err == nil {
		t.Fatal("VP9 subscription accepted")
	}
	s, _ := b.Subscribe(CodecVP8)
	b.Close()
	if _, ok := <-s.Samples(); ok {
		t.Fatal("subscription open after Close")
	}
	s.Close() // after the broadcaster closed: harmless
	if _, err := b.Subscribe(CodecVP8); err == nil {
		t.Fatal("Subscribe on a closed broadcaster succeeded")
	}
	b.WriteFrame(testFrame(64, 64, 0)) // no panic, no encoder
	if f := b.LatestFrame(); f.W != 64 {
		t.Fatalf("LatestFrame %dx%d", f.W, f.H)
	}
	b.WriteFrame(frame.Frame{W: 64, H: 64, Pix: make([]byte, 10)}) // invalid frames are ignored
}

func TestH264EncodesAndForcesIDR(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 64, KeyframeInterval: 1000, MinKeyframeGap: time.Nanosecond})
	defer b.Close()
	s, err := b.Subscribe("h264")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		b.WriteFrame(testFrame(160, 96, i))
	}
	s.RequestKeyframe()
	b.WriteFrame(testFrame(160, 96, 4))
	q := drain(s)
	if len(q) != 5 || !q[0].Keyframe || q[1].Keyframe || !q[4].Keyframe {
		flags := []bool{}
		for _, x := range q {
			flags = append(flags, x.Keyframe)
		}
		t.Fatalf("h264 keyframe flags %v, want [true false ... true]", flags)
	}
}

// An x3 output of an odd-sized input is odd; 4:2:0 H.264 encodes it without
// its last column and row instead of ending the viewers.
func TestH264EncodesOddSizedFrames(t *testing.T) {
	b := NewBroadcaster("s", VariantEnhanced, EncoderOptions{QueueLen: 64})
	defer b.Close()
	s, err := b.Subscribe("h264")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b.WriteFrame(testFrame(3*53, 3*31, i))
	}
	q := drain(s)
	if len(q) != 3 || !q[0].Keyframe || len(q[0].Data) == 0 {
		t.Fatalf("%d samples (first keyframe %v): want 3 encoded 159x93 frames", len(q), len(q) > 0 && q[0].Keyframe)
	}
}

func TestBGRToI420Colours(t *testing.T) {
	cases := []struct {
		name      string
		b, g, r   byte
		y, cb, cr uint8
	}{
		{"black", 0, 0, 0, 16, 128, 128},
		{"white", 255, 255, 255, 235, 128, 128},
		{"red", 0, 0, 255, 82, 90, 240},
		{"blue", 255, 0, 0, 41, 240, 110},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pix := make([]byte, 3*3*3) // odd size: edge chroma uses clamped neighbours
			for i := 0; i < len(pix); i += 3 {
				pix[i], pix[i+1], pix[i+2] = c.b, c.g, c.r
			}
			img := bgrToI420(nil, pix, 3, 3)
			near := func(a, b uint8) bool { return a-b < 2 || b-a < 2 }
			if !near(img.Y[0], c.y) || !near(img.Cb[0], c.cb) || !near(img.Cr[0], c.cr) || !near(img.Cr[3], c.cr) {
				t.Fatalf("got Y %d Cb %d Cr %d, want %d %d %d", img.Y[0], img.Cb[0], img.Cr[0], c.y, c.cb, c.cr)
			}
		})
	}
}
