//go:build !race

package nacos

// raceDetector tells whether the tests run under the race detector.
const raceDetector = false
