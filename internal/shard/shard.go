// Package shard splits a shared camera list across N danstream processes by
// rendezvous (highest-random-weight) hashing: stream s belongs to the shard i
// whose sha256(s + "#" + i) is largest. Growing from N to N+1 shards moves a
// stream only when the new shard wins it, so only about 1/(N+1) of the streams
// move, all of them to the new shard; the others keep their process and viewers.
//
// The Helm chart (deploy/helm/danstream) computes the same function in its
// templates (sha256sum and string comparison of equal-length hex digests,
// which orders them as numbers) to route each stream's paths to its shard;
// deploy's tests check that both agree.
package shard

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Spec is one shard of a set: Index in [0, Count).
type Spec struct {
	Index, Count int
}

// Parse reads "i/N" (0 <= i < N). The empty string is the whole set ("0/1").
func Parse(s string) (Spec, error) {
	if strings.TrimSpace(s) == "" {
		return Spec{0, 1}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(is))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("shard %q: want INDEX/COUNT, e.g. 0/3", s)
	}
	if n < 1 || n > 1024 || i < 0 || i >= n {
		return Spec{}, fmt.Errorf("shard %q: want 0 <= INDEX < COUNT <= 1024", s)
	}
	return Spec{i, n}, nil
}

func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Owns reports whether stream name belongs to this shard.
func (s Spec) Owns(name string) bool { return s.Count <= 1 || Owner(name, s.Count) == s.Index }

// Score is the weight of shard i for stream name: the hex SHA-256 of
// "name#i". Hex digests of equal length compare as the numbers they spell,
// which lets a template compare them as strings.
func Score(name string, i int) string {
	sum := sha256.Sum256([]byte(name + "#" + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

// Owner is the shard (0..n-1) that serves stream name among n shards; ties,
// which need a SHA-256 collision, go to the lower index.
func Owner(name string, n int) int {
	best, bestScore := 0, ""
	for i := 0; i < n; i++ {
		if sc := Score(name, i); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}
