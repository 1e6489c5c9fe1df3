package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// worker is one client of the workload: it picks operations over a small set of keys shared
// by every client (so that writes conflict) and keys of its own that it creates fresh.
type worker struct {
	rec    *recorder
	id     int
	rng    *rand.Rand
	shared []string
	fresh  []string          // the last few keys this worker created
	seen   map[string]string // a version this worker wrote or read, per key, for conditional GETs
	seq    int
}

const freshKept = 8

// next is the worker's next operation.
func (w *worker) next() Input {
	var key string
	switch x := w.rng.IntN(10); {
	case x < 7:
		key = w.shared[w.rng.IntN(len(w.shared))]
	case x < 9 && len(w.fresh) > 0:
		key = w.fresh[w.rng.IntN(len(w.fresh))]
	default:
		key = fmt.Sprintf("f%d-%d", w.id, w.seq)
		w.fresh = append(w.fresh, key)
		if len(w.fresh) > freshKept {
			w.fresh = w.fresh[1:]
		}
		return w.put(key)
	}
	switch y := w.rng.IntN(20); {
	case y < 8:
		return w.put(key)
	case y < 14:
		return Input{Op: OpGet, Key: key}
	case y < 16:
		return Input{Op: OpGetIfMatch, Key: key, Version: w.guess(key)}
	case y < 18:
		return Input{Op: OpGetIfNoneMatch, Key: key, Version: w.guess(key)}
	default:
		return Input{Op: OpDelete, Key: key}
	}
}

func (w *worker) put(key string) Input {
	w.seq++
	return Input{Op: OpPut, Key: key, Version: fmt.Sprintf("c%d.%d", w.id, w.seq)}
}

// guess is the version a conditional GET names: the last one this worker saw for the key
// (often still current), or one never written.
func (w *worker) guess(key string) string {
	if v, ok := w.seen[key]; ok {
		return v
	}
	return fmt.Sprintf("c%d.none", w.id)
}

// run performs operations until stop is closed or ctx ends.
func (w *worker) run(ctx context.Context, stop <-chan struct{}, done func(Output)) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		in := w.next()
		out := w.rec.do(ctx, in)
		switch {
		case in.Op == OpPut && out.Result != ResultUnknown:
			w.seen[in.Key] = in.Version
		case out.Result == ResultFound:
			w.seen[in.Key] = out.Version
		}
		done(out)
	}
}
