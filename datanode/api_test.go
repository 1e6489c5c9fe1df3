package datanode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newServer(t *testing.T, o Options) (*Store, *httptest.Server) {
	t.Helper()
	s := openTest(t, o)
	srv := httptest.NewServer(Handler(s))
	t.Cleanup(srv.Close)
	return s, srv
}

func do(t *testing.T, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

func TestHTTPPut(t *testing.T) {
	_, srv := newServer(t, Options{MaxChunkSize: 1 << 20})
	data := randBytes(BlockSize+9, 11)
	u := srv.URL + "/v1/chunks/"
	for _, tc := range []struct {
		name   string
		id     string
		body   []byte
		hdr    map[string]string
		status int
	}{
		{"created", "h1", data, map[string]string{HeaderSHA256: shaHex(data)}, 201},
		{"identical", "h1", data, nil, 200},
		{"different", "h1", data[1:], nil, 409},
		{"bad checksum", "h2", data, map[string]string{HeaderSHA256: shaHex([]byte("x"))}, 400},
		{"malformed checksum", "h2", data, map[string]string{HeaderSHA256: "nothex"}, 400},
		{"bad id upper", "ABC", data, nil, 400},
		{"bad id dots", "..%2Fx", data, nil, 400},
		{"too large", "h3", make([]byte, 1<<20+1), map[string]string{"Expect": "100-continue"}, 413},
		{"empty", "h4", []byte{}, nil, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := do(t, "PUT", u+tc.id, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if resp.StatusCode < 300 {
				var info Info
				if err := json.Unmarshal(b, &info); err != nil || info.ID != tc.id || info.SHA256 != shaHex(tc.body) {
					t.Fatalf("info %s: %v", b, err)
				}
			} else {
				var e struct{ Error string }
				if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
					t.Fatalf("error body %q: %v", b, err)
				}
			}
		})
	}
	// 411 without Content-Length (chunked body)
	req, _ := http.NewRequest("PUT", u+"h5", io.NopCloser(strings.NewReader("abc")))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked put: %d", resp.StatusCode)
	}
}

func TestHTTPNoSpace(t *testing.T) {
	s, srv := newServer(t, Options{MinFreeBytes: 1 << 62})
	resp, b := do(t, "PUT", srv.URL+"/v1/chunks/ns", []byte("hello"), nil)
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	if l := leftovers(t, s.dir); len(l) != 0 {
		t.Fatalf("left behind %v", l)
	}
}

func TestHTTPGetRangeHead(t *testing.T) {
	s, srv := newServer(t, Options{})
	size := 2*BlockSize + 50
	data := randBytes(size, 12)
	mustPut(t, s, "g", data)
	mustPut(t, s, "empty", nil)
	u := srv.URL + "/v1/chunks/"
	B := BlockSize
	for _, tc := range []struct {
		id, rng    string
		status     int
		start, end int // expected body data[start:end]
		cr         string
	}{
		{"g", "", 200, 0, size, ""},
		{"g", "bytes=0-0", 206, 0, 1, fmt.Sprintf("bytes 0-0/%d", size)},
		{"g", fmt.Sprintf("bytes=%d-%d", B-1, B), 206, B - 1, B + 1, fmt.Sprintf("bytes %d-%d/%d", B-1, B, size)},
		{"g", fmt.Sprintf("bytes=%d-", B), 206, B, size, fmt.Sprintf("bytes %d-%d/%d", B, size-1, size)},
		{"g", "bytes=-10", 206, size - 10, size, fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size)},
		{"g", "bytes=5-99999999999999999999999", 206, 5, size, fmt.Sprintf("bytes 5-%d/%d", size-1, size)},
		{"g", fmt.Sprintf("bytes=%d-", size), 416, 0, 0, fmt.Sprintf("bytes */%d", size)},
		{"g", "bytes=-0", 416, 0, 0, fmt.Sprintf("bytes */%d", size)},
		{"g", "bytes=0-1,5-6", 400, 0, 0, ""},
		{"g", "bytes=5-1", 400, 0, 0, ""},
		{"g", "items=0-1", 400, 0, 0, ""},
		{"empty", "", 200, 0, 0, ""},
		{"empty", "bytes=0-", 416, 0, 0, "bytes */0"},
		{"missing", "", 404, 0, 0, ""},
		{"Bad", "", 400, 0, 0, ""},
	} {
		name := tc.id + " " + tc.rng
		for _, method := range []string{"GET", "HEAD"} {
			hdr := map[string]string{}
			if tc.rng != "" {
				hdr["Range"] = tc.rng
			}
			resp, b := do(t, method, u+tc.id, nil, hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s: status %d, want %d: %s", method, name, resp.StatusCode, tc.status, b)
				continue
			}
			if got := resp.Header.Get("Content-Range"); got != tc.cr {
				t.Errorf("%s %s: Content-Range %q, want %q", method, name, got, tc.cr)
			}
			if tc.status >= 300 {
				continue
			}
			want := data[tc.start:tc.end]
			if tc.id == "empty" {
				want = nil
			}
			if resp.ContentLength != int64(len(want)) || resp.Header.Get(HeaderSHA256) == "" {
				t.Errorf("%s %s: Content-Length %d want %d, sha %q", method, name, resp.ContentLength, len(want), resp.Header.Get(HeaderSHA256))
			}
			if method == "HEAD" {
				if len(b) != 0 {
					t.Errorf("HEAD %s: body %d bytes", name, len(b))
				}
			} else if !bytes.Equal(b, want) {
				t.Errorf("GET %s: body %d bytes differs", name, len(b))
			}
		}
	}
	if resp, _ := do(t, "GET", u+"g", nil, nil); resp.Header.Get(HeaderSHA256) != shaHex(data) {
		t.Errorf("sha header %q", resp.Header.Get(HeaderSHA256))
	}
}

func TestHTTPGetCorrupt(t *testing.T) {
	s, srv := newServer(t, Options{})
	data := randBytes(3*BlockSize, 13)
	mustPut(t, s, "c", data)
	flipByte(t, s, "c", 2*BlockSize+7)
	u := srv.URL + "/v1/chunks/c"

	// corrupt first block: 500 before any byte is sent
	resp, b := do(t, "GET", u, nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-", 2*BlockSize)})
	if resp.StatusCode != 500 || !strings.Contains(string(b), "corrupt") {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	// corruption mid-stream: the body read fails, and what arrived is correct
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("status %d, read err %v (read %d bytes)", resp.StatusCode, err, len(got))
	}
	if len(got) > 2*BlockSize || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("got %d bytes, wrong or past the good blocks", len(got))
	}
	// ranges not touching the block are fine
	resp, b = do(t, "GET", u, nil, map[string]string{"Range": fmt.Sprintf("bytes=0-%d", 2*BlockSize-1)})
	if resp.StatusCode != 206 || !bytes.Equal(b, data[:2*BlockSize]) {
		t.Fatalf("good range: %d, %d bytes", resp.StatusCode, len(b))
	}
}

func TestHTTPDeleteListUsage(t *testing.T) {
	s, srv := newServer(t, Options{})
	for i := range 5 {
		mustPut(t, s, fmt.Sprintf("l%d", i), []byte{byte(i)})
	}
	u := srv.URL + "/v1/"
	var ids []string
	after := ""
	for range 10 {
		resp, b := do(t, "GET", u+"chunks?limit=2&after="+after, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list %d %s", resp.StatusCode, b)
		}
		var lr ListResponse
		if err := json.Unmarshal(b, &lr); err != nil {
			t.Fatal(err)
		}
		for _, in := range lr.Chunks {
			ids = append(ids, in.ID)
		}
		if lr.Next == "" {
			break
		}
		after = lr.Next
	}
	if strings.Join(ids, ",") != "l0,l1,l2,l3,l4" {
		t.Fatalf("listed %v", ids)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=100000", "after=../x"} {
		if resp, b := do(t, "GET", u+"chunks?"+q, nil, nil); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", q, resp.StatusCode, b)
		}
	}
	resp, b := do(t, "GET", u+"chunks?limit=5", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"next":""`) {
		t.Fatalf("exact page: %s", b)
	}

	for _, tc := range []struct {
		id     string
		status int
	}{{"l0", 204}, {"l0", 404}, {"BAD", 400}} {
		if resp, b := do(t, "DELETE", u+"chunks/"+tc.id, nil, nil); resp.StatusCode != tc.status {
			t.Errorf("delete %s: %d %s", tc.id, resp.StatusCode, b)
		}
	}

	resp, b = do(t, "GET", u+"usage", nil, nil)
	var us Usage
	if err := json.Unmarshal(b, &us); resp.StatusCode != 200 || err != nil || us.Chunks != 4 || us.Capacity == 0 {
		t.Fatalf("usage %d %s %v", resp.StatusCode, b, err)
	}
	if resp, _ := do(t, "POST", u+"chunks/x", []byte("x"), nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}
