// Command loopback measures the plain TCP copy ceiling over the loopback interface: one
// connection, 256 KiB writes, the receiver discarding. It is the reference the GET
// throughput of `hanode bench` is compared against (docs/benchmarks.md).
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	total := flag.Int64("bytes", 8<<30, "bytes to send")
	streams := flag.Int("streams", 1, "parallel connections")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	done := make(chan int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { n, _ := io.Copy(io.Discard, c); c.Close(); done <- n }()
		}
	}()
	buf := make([]byte, 256<<10)
	start := time.Now()
	per := *total / int64(*streams)
	for range *streams {
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			for sent := int64(0); sent < per; sent += int64(len(buf)) {
				if _, err := c.Write(buf); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
			c.Close()
		}()
	}
	var got int64
	for range *streams {
		got += <-done
	}
	d := time.Since(start)
	fmt.Printf("loopback TCP: %d streams, %.0f MB in %.2fs = %.0f MB/s\n", *streams, float64(got)/1e6, d.Seconds(), float64(got)/1e6/d.Seconds())
}
