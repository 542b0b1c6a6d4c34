//go:build matprofile

package capture

import "gocv.io/x/gocv"

// MatCount is the number of live GoCV Mats (C memory) in the process; ok is
// false unless built with -tags matprofile, which is what makes GoCV count.
func MatCount() (n int, ok bool) { return gocv.MatProfile.Count(), true }
