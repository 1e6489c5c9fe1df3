package meta

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type listEntry struct {
	key    string
	prefix bool
}

// refList is a listing by definition, over every key in memory: the keys under prefix after
// `after` (and, when afterIsPrefix, not under it), each rolled up to its common prefix at the
// first delimiter after prefix, in key order.
func refList(keys []string, prefix, delim, after string, afterIsPrefix bool) []listEntry {
	var out []listEntry
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || k <= after || afterIsPrefix && strings.HasPrefix(k, after) {
			continue
		}
		if i := strings.Index(k[len(prefix):], delim); delim != "" && i >= 0 {
			cp := k[:len(prefix)+i+len(delim)]
			if n := len(out); n == 0 || out[n-1].key != cp {
				out = append(out, listEntry{cp, true})
			}
			continue
		}
		out = append(out, listEntry{k, false})
	}
	return out
}

// pageEntries merges a page's objects and prefixes in key order (the order they were listed).
func pageEntries(r *ListResult) []listEntry {
	var out []listEntry
	for _, o := range r.Objects {
		out = append(out, listEntry{o.Key, false})
	}
	for _, p := range r.Prefixes {
		out = append(out, listEntry{p, true})
	}
	slices.SortFunc(out, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
	return out
}

// walk lists every page from (after, afterIsPrefix) on, following the continuation markers.
func walk(t *testing.T, s *Store, bucket, prefix, delim, after string, afterIsPrefix bool, max int) (all []listEntry, pages int) {
	t.Helper()
	for {
		r, err := s.ListObjects(context.Background(), bucket, prefix, delim, after, afterIsPrefix, max)
		if err != nil {
			t.Fatal(err)
		}
		page := pageEntries(r)
		if len(page) > max {
			t.Fatalf("page of %d entries, max %d", len(page), max)
		}
		all = append(all, page...)
		pages++
		if !r.Truncated {
			return all, pages
		}
		if len(page) == 0 {
			t.Fatalf("truncated page with no entry: the listing cannot progress (after %q)", after)
		}
		if last := page[len(page)-1]; r.Next != last.key || r.NextIsPrefix != last.prefix {
			t.Fatalf("continuation %q (prefix %v) is not the page's last entry %+v", r.Next, r.NextIsPrefix, last)
		}
		after, afterIsPrefix = r.Next, r.NextIsPrefix
		if pages > 10*len(all)+10 {
			t.Fatal("listing does not end")
		}
	}
}

// Listings over adversarial layouts match the definition exactly, page by page, with the
// default bounds and with bounds so small that pages end early and scans restart often.
func TestListObjectsMatchesDefinition(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "adv"}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(17, 4))
	set := map[string]bool{}
	for len(set) < 100 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteByte("ab/-"[rng.IntN(4)])
		}
		set[b.String()] = true
	}
	for i := range 40 { // one common prefix holding many keys, and keys just around it
		set[fmt.Sprintf("a/%03d", i)] = true
	}
	set["a."], set["a0"], set["a/"] = true, true, true
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ops []clientv3.Op
	for _, k := range keys {
		ops = append(ops, clientv3.OpPut(ObjectKey("adv", k), string(EncodeObject(sampleObject(1)))))
		if len(ops) == 100 {
			if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	record := len(EncodeObject(sampleObject(1)))
	bounds := map[string]limits{
		"default": s.lim,
		"tiny":    {listBytes: 2*record + 1, listKeys: 4, listSkip: 2},
	}
	type start struct {
		after    string
		isPrefix bool
	}
	for name, lim := range bounds {
		s.lim = lim
		for _, prefix := range []string{"", "a", "b/"} {
			for _, delim := range []string{"", "/", "a/"} {
				for _, st := range []start{{"", false}, {"a/", false}, {"a/", true}, {"a/030", false}, {"b", false}} {
					for _, n := range []int{1, 3, 1000} {
						if n == 1 && name == "default" || n == 1000 && name == "tiny" {
							continue
						}
						want := refList(keys, prefix, delim, st.after, st.isPrefix)
						got, pages := walk(t, s, "adv", prefix, delim, st.after, st.isPrefix, n)
						if !slices.Equal(got, want) {
							t.Fatalf("%s bounds, prefix %q, delimiter %q, after %q (prefix %v), max %d:\n got %v\nwant %v", name, prefix, delim, st.after, st.isPrefix, n, got, want)
						}
						if name == "default" && pages != max(1, (len(want)+n-1)/n) {
							t.Fatalf("prefix %q, delimiter %q, after %q, max %d: %d pages for %d entries", prefix, delim, st.after, n, pages, len(want))
						}
					}
				}
			}
		}
	}
}

// One delimited page costs etcd work proportional to the page, not to what lies under its
// common prefixes: no record is read for a page of common prefixes, however many keys they
// hold. The old code read up to 1,000 records for each common prefix it skipped (1 M for a
// page of 1,000 prefixes). Records are read exactly for the objects listed; the keys bound
// allows for what etcd streams ahead of a keys-only scan before its cancellation arrives (its
// chunks double, and the connection's flow-control window grows with use).
func TestListObjectsBoundedWork(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "dirs"}); err != nil {
		t.Fatal(err)
	}
	for d := range 120 {
		fill(t, s, "dirs", fmt.Sprintf("d%03d/", d), 300)
	}
	fill(t, s, "dirs", "e", 50)
	fill(t, s, "dirs", "huge/", 20000)
	fill(t, s, "dirs", "z", 50)
	k := countKV(s)
	cases := []struct {
		name                 string
		prefix, delim, after string
		afterIsPrefix        bool
		max                  int
		wantObjects, wantCPs int
		truncated            bool
		maxKeys, maxRecords  int
	}{
		// 100 directories of 300 keys: the old code read 100 x 1000 records.
		{"directories", "", "/", "", false, 100, 0, 100, true, 2*100*300 + 10000, 0},
		// after the directories: objects, a directory of 20,000 keys (stepped over for
		// listSkip keys, then skipped by a new scan), objects.
		{"objects around a huge directory", "", "/", "d119/", true, 1000, 100, 1, false, 2*(101+1000) + 10000, 100},
		// the marker is the huge directory's name without the common-prefix flag (a v2
		// start-after): its keys roll up again, and the rest of it is skipped.
		{"start after the huge directory's name", "", "/", "huge/", false, 10, 9, 1, true, 2*(10+1000) + 10000, 9},
		// no delimiter: the records of the page's objects, and none beyond.
		{"flat", "", "", "d050/", true, 1000, 1000, 0, true, 2*1000 + 10000, 1000},
	}
	for _, c := range cases {
		k.reset()
		r, err := s.ListObjects(ctx, "dirs", c.prefix, c.delim, c.after, c.afterIsPrefix, c.max)
		if err != nil {
			t.Fatal(err)
		}
		keys, records := k.records()
		t.Logf("%s: %d objects, %d common prefixes; etcd sent %d keys, %d with their records", c.name, len(r.Objects), len(r.Prefixes), keys, records)
		if len(r.Objects) != c.wantObjects || len(r.Prefixes) != c.wantCPs || r.Truncated != c.truncated {
			t.Errorf("%s: %d objects, %d prefixes, truncated %v; want %d, %d, %v", c.name, len(r.Objects), len(r.Prefixes), r.Truncated, c.wantObjects, c.wantCPs, c.truncated)
		}
		if keys > c.maxKeys || records > c.maxRecords {
			t.Errorf("%s: etcd sent %d keys and %d records, want at most %d and %d", c.name, keys, records, c.maxKeys, c.maxRecords)
		}
	}
}

// A page ends early once it has read listPageBytes of records, with a marker that continues
// exactly after its last entry.
func TestListObjectsByteBound(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "large"}); err != nil {
		t.Fatal(err)
	}
	big := string(EncodeObject(sampleObject(5000))) // a 40 GiB object's record
	var want []listEntry
	for i := range 12 {
		key := fmt.Sprintf("obj%02d", i)
		if _, err := s.cli.Put(ctx, ObjectKey("large", key), big); err != nil {
			t.Fatal(err)
		}
		want = append(want, listEntry{key, false})
	}
	s.lim.listBytes = 3 * len(big)
	r, err := s.ListObjects(ctx, "large", "", "/", "", false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Objects) != 3 || !r.Truncated || r.Next != "obj02" {
		t.Fatalf("first page: %d objects, truncated %v, next %q; want 3, true, obj02", len(r.Objects), r.Truncated, r.Next)
	}
	for _, delim := range []string{"", "/"} {
		if got, _ := walk(t, s, "large", "", delim, "", false, 1000); !slices.Equal(got, want) {
			t.Fatalf("delimiter %q: walked %v, want %v", delim, got, want)
		}
	}
}

// BenchmarkListDelimitedPage lists the first page (1,000 common prefixes) of a bucket of 1,000
// directories of 100 objects each, with delimiter "/". keys/op is the keys etcd sent, records/op
// those it sent with their record.
func BenchmarkListDelimitedPage(b *testing.B) {
	s := New(etcdtestStart(b))
	ctx := context.Background()
	if err := s.CreateBucket(ctx, Bucket{Name: "dirs"}); err != nil {
		b.Fatal(err)
	}
	for d := range 1000 {
		fill(b, s, "dirs", fmt.Sprintf("d%04d/", d), 100)
	}
	k := countKV(s)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := s.ListObjects(ctx, "dirs", "", "/", "", false, 1000)
		if err != nil || len(r.Prefixes) != 1000 {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	keys, records := k.records()
	b.ReportMetric(float64(keys)/float64(b.N), "keys/op")
	b.ReportMetric(float64(records)/float64(b.N), "records/op")
}
