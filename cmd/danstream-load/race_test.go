//go:build race

package main

// raceBuild: the race detector's shadow memory grows with every heap address
// the run touches and is never returned, so RSS climbs under -race without a leak.
const raceBuild = true
