package controller

import (
	"testing"

	"github.com/hanode/hanode/cluster"
	"github.com/hanode/hanode/config"
)

func TestProxyNamePolicy(t *testing.T) {
	regs := []cluster.Registration{
		{Machine: "m1", Role: config.RoleCoordinator, Address: "https://10.0.0.1:9000"},
		{Machine: "m1", Role: config.RoleProxy, Address: "https://10.0.0.1:8443"},
		{Machine: "m2", Role: config.RoleCoordinator, Address: "https://10.0.0.2:9000"},
		{Machine: "p3", Role: config.RoleProxy, Address: "https://P3.example.test:8443"},
	}
	for _, tt := range []struct {
		caller string
		names  []string
		ok     bool
	}{
		{"p3", []string{"s3.example.test", "10.0.0.1", "m1", "p3.example.test"}, true},
		{"m2", []string{"10.0.0.2", "m2"}, true}, // its own names
		{"p3", []string{"s3.example.test", "10.0.0.2"}, false},
		{"p3", []string{"M2"}, false},
	} {
		err := proxyNamePolicy(tt.caller, tt.names, regs)
		if (err == nil) != tt.ok {
			t.Errorf("%s asks for %v: %v, want ok=%v", tt.caller, tt.names, err, tt.ok)
		}
	}
}
