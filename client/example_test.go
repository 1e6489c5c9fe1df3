package client_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/hanode/hanode/client"
	"github.com/hanode/hanode/internal/appliance"
)

// The client is given every coordinator's address. Here the first one is down (nothing
// listens on it): the first operation fails over to the second, which then stays current.
func Example() {
	// A one-machine hanode for the example, every role in this process; a deployment lists the
	// addresses of its coordinators (or of its proxies) instead.
	cluster, stop, err := appliance.Run("127.0.87.30", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	c, err := client.New(client.Config{
		Endpoints: []string{"127.0.87.31:9000", cluster.S3}, // host:port is HTTPS
		AccessKey: cluster.AccessKey,
		SecretKey: cluster.SecretKey,
		Region:    cluster.Config.S3Region,
		TLS:       cluster.TLS(), // trusts the cluster's CA
		OnAttempt: func(a client.Attempt) {
			if a.Err != nil {
				fmt.Printf("%s failed on %s; retry: %v\n", a.Op, a.Endpoint, a.Retry)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := c.EnsureBucket(ctx, "photos"); err != nil {
		log.Fatal(err)
	}
	// A strings.Reader can be read again (io.Seeker), so the upload may be retried elsewhere.
	body := strings.NewReader("hello, hanode")
	if _, err := c.PutObject(ctx, "photos", "hello.txt", body, body.Size(), client.PutOptions{}); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := c.GetObjectTo(ctx, "photos", "hello.txt", &buf, client.GetOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(buf.String())
	fmt.Println("current endpoint:", c.Current())
	// Output:
	// make bucket failed on https://127.0.87.31:9000; retry: true
	// hello, hanode
	// current endpoint: https://127.0.87.30:9000
}
