//go:build !race

package messaging_test

// raceDetector: the test binary was built with -race.
const raceDetector = false
