//go:build race

package classify

// raceEnabled is true when the tests run under the race detector, which
// makes the classifier some ten times slower; the generated-set test then
// samples its sources.
const raceEnabled = true
