// Command fsync measures how many chunk-style durable creates per second the disk under DIR
// (default: the current directory) takes: write 4 KiB to a temporary file, fsync it, rename it
// into place, fsync the directory — what a datanode does per chunk — with 1, 4, 16 and 64
// concurrent writers, 3 s each. docs/benchmarks.md compares small-object PUT rates with it.
//
//	go run ./bench/fsync [DIR]
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := "."
	if len(os.Args) > 1 {
		base = os.Args[1]
	}
	dir, err := os.MkdirTemp(base, "fsync-probe-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, 4096)
	for _, c := range []int{1, 4, 16, 64} {
		var n atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for w := range c {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Since(start) < 3*time.Second; i++ {
					if err := create(dir, fmt.Sprintf("%d-%d", w, i), buf); err != nil {
						fail(err)
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		fmt.Printf("%2d writers: %5.0f durable creates/s\n", c, float64(n.Load())/time.Since(start).Seconds())
	}
}

// create writes a file durably as the datanode does: temp file, fsync, rename, fsync dir.
func create(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fsync probe:", err)
	os.Exit(1)
}
