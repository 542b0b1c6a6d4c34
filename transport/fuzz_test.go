package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// FuzzWHEPOffer feeds arbitrary bodies to the offer handler: it must answer
// 201 (then the session is deleted) or a 4xx with a message, never panic or 5xx.
func FuzzWHEPOffer(f *testing.F) {
	_, vp8 := makeOffer(f)
	_, both := makeOffer(f, h264Cap, vp8Cap)
	_, vp9 := makeOffer(f, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000})
	for _, seed := range []string{
		vp8, both, vp9,
		strings.Replace(vp8, "m=video", "m=audio", 1),
		strings.Replace(vp8, "a=fingerprint", "a=x-fingerprint", -1),
		strings.Replace(vp8, "a=ice-ufrag", "a=x-ufrag", -1),
		"", "v=0\r\n", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
		"\x00\xff garbage",
	} {
		f.Add(seed)
	}
	cat := newTestCatalog()
	b := NewBroadcaster("cam", VariantEnhanced, EncoderOptions{})
	defer b.Close()
	cat.add(b)
	srv := NewServer(cat, ServerOptions{LoopbackOnly: true, MaxOfferBytes: 16 << 10, WHEPRate: -1})
	defer srv.CloseSessions()
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/streams/cam/whep", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/sdp")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
			loc := rec.Header().Get("Location")
			if !strings.HasPrefix(loc, "/api/streams/cam/whep/") || !strings.Contains(rec.Body.String(), "v=0") {
				t.Fatalf("201 without a session Location or SDP answer: %q", loc)
			}
			del := httptest.NewRecorder()
			h.ServeHTTP(del, httptest.NewRequest(http.MethodDelete, loc, nil))
			if del.Code != http.StatusOK {
				t.Fatalf("DELETE %s: %d", loc, del.Code)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Fatalf("%d without an explanation", rec.Code)
			}
		default:
			t.Fatalf("status %d for offer %q: %s", rec.Code, body, rec.Body.String())
		}
	})
	if n := srv.Sessions(); n != 0 {
		f.Fatalf("%d sessions left after the fuzz run", n)
	}
}
