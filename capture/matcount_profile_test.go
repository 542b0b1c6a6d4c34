//go:build matprofile

package capture

import "gocv.io/x/gocv"

const matProfiling = true

func matCount() int { return gocv.MatProfile.Count() }
