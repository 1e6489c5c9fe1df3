package state

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/etcdtest"
)

func TestSeedUpdateList(t *testing.T) {
	cli := etcdtest.Start(t, "127.0.46.200")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, _, err := ReadDesired(ctx, cli, "m1"); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("ReadDesired before any agent: %v, want ErrNoAgent", err)
	}
	d, err := Seed(ctx, cli, "m1", []string{"controller", "datanode"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || len(d.Roles) != 2 || !d.Roles[1].Run || d.By != "agent" {
		t.Fatalf("seeded %+v", d)
	}
	// A second seed (an agent restarted with other roles configured) keeps the record.
	d2, err := Seed(ctx, cli, "m1", []string{"proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Version != 1 || d2.Role("proxy") != nil || d2.Role("datanode") == nil {
		t.Fatalf("second seed changed the record: %+v", d2)
	}

	d3, err := Update(ctx, cli, "m1", "credential:ops", func(d *Desired) error {
		d.Role("datanode").Run = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d3.Version != 2 || d3.Role("datanode").Run || d3.By != "credential:ops" {
		t.Fatalf("after update: %+v", d3)
	}
	refuse := errors.New("no")
	if _, err := Update(ctx, cli, "m1", "x", func(*Desired) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("a refused change: %v", err)
	}
	if _, err := Update(ctx, cli, "m9", "x", func(*Desired) error { return nil }); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("update of a machine without agent: %v", err)
	}

	// Concurrent restarts each count: no lost update.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Update(ctx, cli, "m1", "x", func(d *Desired) error { d.Role("controller").Restart++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	d4, _, err := ReadDesired(ctx, cli, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if d4.Role("controller").Restart != 8 || d4.Version != 10 {
		t.Fatalf("after 8 concurrent restarts: restart %d version %d, want 8 and 10", d4.Role("controller").Restart, d4.Version)
	}

	if _, err := Seed(ctx, cli, "m2", []string{"proxy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, ActualKey("m2"), `{"machine":"m2","version":1,"roles":[{"role":"proxy","state":"running","pid":42}]}`); err != nil {
		t.Fatal(err)
	}
	list, err := List(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Machine != "m1" || list[0].Actual != nil || list[1].Actual == nil || list[1].Actual.Role("proxy").PID != 42 {
		t.Fatalf("list: %+v", list)
	}
	m, err := Get(ctx, cli, "m2")
	if err != nil || m.Actual == nil || m.Desired.Role("proxy") == nil {
		t.Fatalf("get m2: %+v, %v", m, err)
	}
}

func TestDecodeDesiredRefusesOtherRecords(t *testing.T) {
	for _, in := range []string{`{}`, `{"machine":"m1"}`, `{"machine":"m1","version":0}`, `[1]`, `nope`} {
		if _, err := DecodeDesired([]byte(in)); err == nil {
			t.Errorf("DecodeDesired(%s) accepted it", in)
		}
	}
	if _, err := DecodeDesired([]byte(`{"machine":"m1","version":3,"roles":[{"role":"proxy","run":true}]}`)); err != nil {
		t.Error(err)
	}
}
