package transport

import "testing"

// The model swap names files on the server: anonymous callers get 401,
// readers and users 403; an admin reaches it (this catalog cannot swap: 501).
func TestModelSwapIsAdminOnly(t *testing.T) {
	_, base := authServer(t)
	body := `{"path":"/etc/passwd"}`
	for _, tc := range []struct {
		name, cred string
		want       int
	}{
		{"anonymous", "", 401},
		{"read token", "Bearer " + readToken, 403},
		{"user", "Basic alice:wonderland", 403},
		{"admin", "Bearer " + adminToken, 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := do(t, "POST", base+"/api/streams/cam/model", tc.cred, body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.want, got)
			}
		})
	}
}
