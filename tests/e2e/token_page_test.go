package e2e

import (
	"net/http"
	"testing"
)

// A shared link ...?token=T must play: the page passes the token on to its API,
// snapshot and WHEP requests, which browsers cannot give an Authorization header.
func TestPlayerPageWithTokenLinkPlaysWhenAuthIsRequired(t *testing.T) {
	const token = "viewer-token-0123456789"
	s := startServe(t, `
http: {listen: HTTP_ADDR}
rtsp: {listen: RTSP_ADDR}
auth:
  tokens:
    - {token: `+token+`, read: ["demo"]}
streams:
  demo: {source: "synthetic:160x90@10", model: sr/testdata/nearest_x4.onnx, threads: 1}
`)
	r, err := http.Get("http://" + s.http + "/streams/demo")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("page without the token: %d, want 401", r.StatusCode)
	}
	res := runPlayer(t, "http://"+s.http+"/streams/demo?mode=enhanced&token="+token)
	if !res.OK || len(res.Videos) == 0 || res.Videos[0].FrameWidth != 640 {
		t.Fatalf("player with a token link decoded %+v, want 640-wide frames", res)
	}
}
