package chaos

import (
	"slices"
	"testing"

	"github.com/hanode/hanode/testenv"
)

func TestParseFamilies(t *testing.T) {
	process, _ := testenv.NewDriver("process")
	docker, _ := testenv.NewDriver("docker")
	names := func(fs []Family) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	tests := []struct {
		list    string
		drv     testenv.Driver
		want    []string
		wantErr bool
	}{
		{"kill-master, pause-datanode", process, []string{"kill-master", "pause-datanode"}, false},
		{"all", process, []string{"kill-master", "kill-leader", "kill-datanode", "kill-coordinator",
			"pause-master", "pause-leader", "pause-datanode", "pause-coordinator"}, false},
		{"all", docker, []string{"kill-master", "kill-leader", "kill-datanode", "kill-coordinator",
			"pause-master", "pause-leader", "pause-datanode", "pause-coordinator", "partition"}, false},
		{"partition", docker, []string{"partition"}, false},
		{"partition", process, nil, true}, // the process driver cannot partition
		{"kill-proxy", process, nil, true},
		{"", process, nil, true},
	}
	for _, tc := range tests {
		got, err := ParseFamilies(tc.list, tc.drv)
		if (err != nil) != tc.wantErr || !slices.Equal(names(got), tc.want) {
			t.Errorf("ParseFamilies(%q, %s) = %v, %v; want %v (error: %v)", tc.list, tc.drv.Name(), names(got), err, tc.want, tc.wantErr)
		}
	}
}
