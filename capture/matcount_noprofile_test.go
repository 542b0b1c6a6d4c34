//go:build !matprofile

package capture

const matProfiling = false

func matCount() int { return 0 }
