//go:build !matprofile

package capture

// MatCount is the number of live GoCV Mats; without -tags matprofile GoCV does not count them.
func MatCount() (n int, ok bool) { return 0, false }
