package shard

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cam-%03d", i)
	}
	return out
}

// TestAddingAShardMovesOnlyItsShare: from N to N+1 shards every stream either
// stays where it was or moves to the new shard, and about 1/(N+1) move.
func TestAddingAShardMovesOnlyItsShare(t *testing.T) {
	cams := names(2000)
	for n := 1; n <= 8; n++ {
		moved := 0
		for _, c := range cams {
			before, after := Owner(c, n), Owner(c, n+1)
			if after != before {
				if after != n {
					t.Fatalf("%s moved from shard %d to %d when shard %d was added", c, before, after, n)
				}
				moved++
			}
		}
		share := float64(moved) / float64(len(cams))
		want := 1 / float64(n+1)
		// 2000 draws: the binomial's standard deviation is at most 1.2 %; 5 sigma.
		if math.Abs(share-want) > 0.06 {
			t.Errorf("%d -> %d shards moved %.3f of the streams, want about %.3f", n, n+1, share, want)
		}
	}
}

// TestEveryStreamHasExactlyOneOwnerAndTheLoadIsSpread checks Owns against
// Owner and that no shard is starved or overloaded.
func TestEveryStreamHasExactlyOneOwnerAndTheLoadIsSpread(t *testing.T) {
	cams := names(2000)
	const n = 5
	count := make([]int, n)
	for _, c := range cams {
		owners := 0
		for i := 0; i < n; i++ {
			if (Spec{i, n}).Owns(c) {
				owners++
				count[i]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s has %d owners among %d shards", c, owners, n)
		}
	}
	for i, k := range count {
		if k < 300 || k > 500 { // 400 expected, sigma ~18
			t.Errorf("shard %d/%d owns %d of 2000 streams", i, n, k)
		}
	}
}

// TestScoreIsSHA256Hex pins the function the Helm chart reproduces
// (sha256sum of "name#i"), so a change here cannot silently split them.
func TestScoreIsSHA256Hex(t *testing.T) {
	// printf 'gate#0' | sha256sum
	if got, want := Score("gate", 0), "d88218bc31a87d99cfedd26ca4ebc87ad2fff3d6ee57a1bf083ef07ca290baf8"; got != want {
		t.Fatalf("Score(gate, 0) = %s, want %s", got, want)
	}
	if Owner("anything", 1) != 0 || !(Spec{0, 1}).Owns("anything") {
		t.Fatal("a single shard must own every stream")
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Spec{"": {0, 1}, "0/1": {0, 1}, "2/3": {2, 3}, " 1 / 4 ": {1, 4}} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"3", "3/3", "-1/2", "a/b", "0/0", "1/2/3", "0/5000"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

// TestOwnerMatchesTheHelmChart: the Helm chart computes the assignment in its
// templates to route each stream's page and WHEP; deploy/testdata/owners.txt
// is where its test (a module of its own, deploy/) recorded the routing of 40
// cameras on 3 and 4 shards. Owner must give the same shard for every line.
func TestOwnerMatchesTheHelmChart(t *testing.T) {
	b, err := os.ReadFile("../../deploy/testdata/owners.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var name string
		var n, owner int
		if _, err := fmt.Sscanf(l, "%s %d %d", &name, &n, &owner); err != nil {
			t.Fatalf("owners.txt line %q: %v", l, err)
		}
		if got := Owner(name, n); got != owner {
			t.Errorf("%s on %d shards: the chart routes it to shard %d, Owner says %d", name, n, owner, got)
		}
		lines++
	}
	if lines != 80 {
		t.Fatalf("owners.txt has %d assignments, want 80 (40 cameras x 3 and 4 shards)", lines)
	}
}
