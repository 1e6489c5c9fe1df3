package agent

import "time"

// Backoff is how long a role that keeps exiting waits before its next start.
type Backoff struct {
	// Initial is the wait before the second start in a row (the first restart after a healthy
	// run is immediate), doubling with each further exit up to Max.
	Initial, Max time.Duration
	// Reset: a process that ran this long was healthy; its next exit counts as the first.
	Reset time.Duration
}

// DefaultBackoff is 1 s doubling to 1 min, reset after 10 min of running.
var DefaultBackoff = Backoff{Initial: time.Second, Max: time.Minute, Reset: 10 * time.Minute}

// Delay is the wait before the next start after failures exits in a row: none after the
// first (a crashed role serves again at once), then Initial, 2×Initial, ... up to Max.
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := b.Initial
	for i := 2; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}
