//go:build !race

package loopdetect

const raceEnabled = false
