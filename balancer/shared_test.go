package balancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/service"
)

// allStatus tells "every controller answered 501" (no cluster keyring anywhere) from a mix, on
// the errors of the admin client.
func TestAllStatus(t *testing.T) {
	server := func(code int) *httptest.Server {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			service.WriteError(w, code, errors.New(http.StatusText(code)))
		}))
		t.Cleanup(s.Close)
		return s
	}
	tests := []struct {
		name  string
		codes []int
		want  bool
	}{
		{"every controller 501", []int{501, 501}, true},
		{"one 501, one 503", []int{501, 503}, false},
		{"one controller 501", []int{501}, true},
		{"a 404", []int{404, 501}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := x509.NewCertPool()
			var urls []string
			for _, code := range tc.codes {
				s := server(code)
				pool.AddCert(s.Certificate())
				urls = append(urls, s.URL)
			}
			ac, err := adminapi.New(urls, &tls.Config{RootCAs: pool}, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = ac.Get(context.Background(), adminapi.ProxyKeyringPath, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if got := allStatus(err, http.StatusNotImplemented); got != tc.want {
				t.Fatalf("allStatus(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}
