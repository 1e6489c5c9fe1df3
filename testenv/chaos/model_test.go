package chaos

import (
	"path/filepath"
	"testing"

	"github.com/anishathalye/porcupine"
)

// Hand-built histories: the model must accept the linearizable ones and porcupine must reject
// the others, through the same conversion (Operations) the lab runs use.
func TestModel(t *testing.T) {
	put := func(p int, key, v string, call, ret int64, res Result) Op {
		return Op{Process: p, Input: Input{Op: OpPut, Key: key, Version: v}, Output: Output{Result: res}, Call: call, Return: ret}
	}
	del := func(p int, key string, call, ret int64, res Result) Op {
		return Op{Process: p, Input: Input{Op: OpDelete, Key: key}, Output: Output{Result: res}, Call: call, Return: ret}
	}
	get := func(p int, key string, call, ret int64, res Result, v string) Op {
		return Op{Process: p, Input: Input{Op: OpGet, Key: key}, Output: Output{Result: res, Version: v}, Call: call, Return: ret}
	}
	cond := func(p int, kind OpKind, key, etagOf string, call, ret int64, res Result, v string) Op {
		return Op{Process: p, Input: Input{Op: kind, Key: key, Version: etagOf}, Output: Output{Result: res, Version: v}, Call: call, Return: ret}
	}
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"sequential put get delete", []Op{
			get(0, "k", 0, 5, ResultNotFound, ""),
			put(0, "k", "v1", 10, 20, ResultOK),
			get(0, "k", 30, 40, ResultFound, "v1"),
			del(0, "k", 50, 60, ResultOK),
			get(0, "k", 70, 80, ResultNotFound, ""),
		}, porcupine.Ok},
		{"a read concurrent with a put sees either version", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			put(1, "k", "v2", 20, 50, ResultOK),
			get(2, "k", 25, 30, ResultFound, "v1"),
			get(3, "k", 35, 45, ResultFound, "v2"),
			get(2, "k", 60, 70, ResultFound, "v2"),
		}, porcupine.Ok},
		{"stale read after an acknowledged overwrite", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			put(0, "k", "v2", 20, 30, ResultOK),
			get(1, "k", 40, 50, ResultFound, "v1"),
		}, porcupine.Illegal},
		{"an acknowledged put lost", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			get(1, "k", 20, 30, ResultNotFound, ""),
		}, porcupine.Illegal},
		{"reads going back in time", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			put(1, "k", "v2", 15, 100, ResultOK),
			get(2, "k", 20, 30, ResultFound, "v2"),
			get(3, "k", 40, 50, ResultFound, "v1"),
		}, porcupine.Illegal},
		{"a read of a version never written", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			get(1, "k", 20, 30, ResultFound, "v9"),
		}, porcupine.Illegal},
		{"a deleted object comes back", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			del(0, "k", 20, 30, ResultOK),
			get(1, "k", 40, 50, ResultFound, "v1"),
		}, porcupine.Illegal},
		{"an unknown put may take effect later", []Op{
			put(0, "k", "v1", 0, 10, ResultUnknown),
			get(1, "k", 20, 30, ResultNotFound, ""),
			get(1, "k", 40, 50, ResultFound, "v1"),
		}, porcupine.Ok},
		{"an unknown put may never take effect", []Op{
			put(0, "k", "v1", 0, 10, ResultUnknown),
			get(1, "k", 20, 30, ResultNotFound, ""),
			get(1, "k", 1000, 1010, ResultNotFound, ""),
		}, porcupine.Ok},
		{"an unknown put takes effect once", []Op{
			put(0, "k", "v1", 0, 10, ResultUnknown),
			get(1, "k", 20, 30, ResultFound, "v1"),
			get(1, "k", 40, 50, ResultNotFound, ""),
		}, porcupine.Illegal},
		{"an unknown put cannot act before its call", []Op{
			get(1, "k", 0, 10, ResultFound, "v1"),
			put(0, "k", "v1", 20, 30, ResultUnknown),
		}, porcupine.Illegal},
		{"an unknown delete may or may not have happened", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			del(1, "k", 20, 30, ResultUnknown),
			get(2, "k", 40, 50, ResultFound, "v1"),
			get(2, "k", 60, 70, ResultNotFound, ""),
		}, porcupine.Ok},
		{"an unknown read constrains nothing", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			get(1, "k", 20, 30, ResultUnknown, ""),
		}, porcupine.Ok},
		{"a corrupt read is a violation in any state", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			{Process: 1, Input: Input{Op: OpGet, Key: "k"}, Output: Output{Result: ResultCorrupt, Version: "v1", Detail: "short body"}, Call: 20, Return: 30},
		}, porcupine.Illegal},
		{"conditional reads", []Op{
			cond(0, OpGetIfMatch, "k", "v1", 0, 5, ResultNotFound, ""),
			put(0, "k", "v1", 10, 20, ResultOK),
			cond(0, OpGetIfMatch, "k", "v1", 30, 40, ResultFound, "v1"),
			cond(0, OpGetIfMatch, "k", "v2", 50, 60, ResultPreconditionFailed, ""),
			cond(0, OpGetIfNoneMatch, "k", "v1", 70, 80, ResultNotModified, ""),
			cond(0, OpGetIfNoneMatch, "k", "v2", 90, 100, ResultFound, "v1"),
		}, porcupine.Ok},
		{"If-Match fails on the current version", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			cond(1, OpGetIfMatch, "k", "v1", 20, 30, ResultPreconditionFailed, ""),
		}, porcupine.Illegal},
		{"If-None-Match not modified on another version", []Op{
			put(0, "k", "v1", 0, 10, ResultOK),
			put(0, "k", "v2", 20, 30, ResultOK),
			cond(1, OpGetIfNoneMatch, "k", "v1", 40, 50, ResultNotModified, ""),
		}, porcupine.Illegal},
		{"keys are independent registers", []Op{
			put(0, "a", "v1", 0, 10, ResultOK),
			get(1, "b", 20, 30, ResultNotFound, ""),
			put(1, "b", "v2", 40, 50, ResultOK),
			get(0, "a", 60, 70, ResultFound, "v1"),
		}, porcupine.Ok},
		{"a violation on one key among many", []Op{
			put(0, "a", "v1", 0, 10, ResultOK),
			put(1, "b", "v2", 0, 10, ResultOK),
			get(0, "a", 20, 30, ResultFound, "v1"),
			get(1, "b", 20, 30, ResultFound, "v1"),
		}, porcupine.Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.ops, 0); got != tc.want {
				t.Fatalf("porcupine says %s, want %s", got, tc.want)
			}
		})
	}
}

// Operations moves only unknown writes to the end of the history.
func TestOperationsEndOfHistory(t *testing.T) {
	ops := []Op{
		{Input: Input{Op: OpPut, Key: "k", Version: "v1"}, Output: Output{Result: ResultUnknown}, Call: 0, Return: 10},
		{Input: Input{Op: OpDelete, Key: "k"}, Output: Output{Result: ResultUnknown}, Call: 5, Return: 15},
		{Input: Input{Op: OpGet, Key: "k"}, Output: Output{Result: ResultUnknown}, Call: 20, Return: 30},
		{Input: Input{Op: OpPut, Key: "k", Version: "v2"}, Output: Output{Result: ResultOK}, Call: 40, Return: 50},
	}
	got := Operations(ops)
	want := []int64{51, 51, 30, 50}
	for i := range got {
		if got[i].Return != want[i] {
			t.Errorf("op %d (%s, %s) returns at %d, want %d", i, ops[i].Input.Op, ops[i].Output.Result, got[i].Return, want[i])
		}
	}
}

// A rejected history can be drawn (what a failed run leaves for a person to read).
func TestVisualize(t *testing.T) {
	ops := []Op{
		{Process: 0, Input: Input{Op: OpPut, Key: "k", Version: "v1"}, Output: Output{Result: ResultOK}, Call: 0, Return: 10},
		{Process: 1, Input: Input{Op: OpGet, Key: "k"}, Output: Output{Result: ResultNotFound}, Call: 20, Return: 30},
	}
	path := filepath.Join(t.TempDir(), "history.html")
	res, err := Visualize(ops, []Event{{At: 15, Kind: "kill", Target: "m1/controller"}}, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res != porcupine.Illegal {
		t.Fatalf("porcupine says %s", res)
	}
}
