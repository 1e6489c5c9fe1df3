// Command hanode is one static binary that runs any hanode role: controller, datanode,
// coordinator, proxy or agent. See cli for the command line.
package main

import (
	"os"

	"github.com/hanode/hanode/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
