package chaos

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// The model: every S3 key is a register whose value is the version of its current object, or
// absent. PUT writes a version, DELETE makes the key absent, and the GETs read it, plainly or
// with a precondition on the ETag of a version (If-Match, If-None-Match: what the coordinator
// evaluates; it has no conditional PUT). Keys are independent, so the history is checked one
// porcupine partition per key.

// OpKind is what an operation does.
type OpKind string

const (
	OpPut            OpKind = "put"
	OpGet            OpKind = "get"
	OpGetIfMatch     OpKind = "get-if-match"      // GET with If-Match: the ETag of Input.Version
	OpGetIfNoneMatch OpKind = "get-if-none-match" // GET with If-None-Match: the ETag of Input.Version
	OpDelete         OpKind = "delete"
)

// Input is an operation as the client invoked it.
type Input struct {
	Op  OpKind `json:"op"`
	Key string `json:"key"`
	// Version is what a PUT writes, or the version whose ETag a conditional GET names.
	Version string `json:"version,omitempty"`
}

// Result is how an operation ended.
type Result string

const (
	ResultOK                 Result = "ok"                  // a PUT or DELETE was acknowledged
	ResultFound              Result = "found"               // a GET returned Output.Version, its bytes verified
	ResultNotFound           Result = "not-found"           // 404 NoSuchKey
	ResultPreconditionFailed Result = "precondition-failed" // 412 (If-Match)
	ResultNotModified        Result = "not-modified"        // 304 (If-None-Match)
	// ResultCorrupt is a GET that completed cleanly with bytes that are not the version it
	// claims (wrong content, short or long body, wrong ETag): a violation in any state.
	ResultCorrupt Result = "corrupt"
	// ResultUnknown is an operation whose call failed or timed out: it may or may not have
	// taken effect. Its output constrains nothing; a write's return is moved to the end of the
	// history (see Check), so it may take effect at any point after its call, or never.
	ResultUnknown Result = "unknown"
)

// Output is an operation's outcome.
type Output struct {
	Result  Result `json:"result"`
	Version string `json:"version,omitempty"` // the version a GET found
	Detail  string `json:"detail,omitempty"`  // why a GET is corrupt, or the error of an unknown outcome
}

// absent is the register's value when the key has no object.
const absent = ""

// expectedRead is what a GET of kind in sees in state s.
func expectedRead(s string, in Input) Output {
	if s == absent {
		return Output{Result: ResultNotFound}
	}
	switch in.Op {
	case OpGetIfMatch:
		if s != in.Version {
			return Output{Result: ResultPreconditionFailed}
		}
	case OpGetIfNoneMatch:
		if s == in.Version {
			return Output{Result: ResultNotModified}
		}
	}
	return Output{Result: ResultFound, Version: s}
}

func step(state, input, output any) (bool, any) {
	s, in, out := state.(string), input.(Input), output.(Output)
	if out.Result == ResultCorrupt {
		return false, s
	}
	switch in.Op {
	case OpPut:
		return out.Result == ResultOK || out.Result == ResultUnknown, in.Version
	case OpDelete:
		return out.Result == ResultOK || out.Result == ResultUnknown, absent
	case OpGet, OpGetIfMatch, OpGetIfNoneMatch:
		if out.Result == ResultUnknown {
			return true, s
		}
		want := expectedRead(s, in)
		return out.Result == want.Result && out.Version == want.Version, s
	}
	return false, s
}

// partitionByKey splits a history into one history per key, in a stable order.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func describeOperation(input, output any) string {
	in, out := input.(Input), output.(Output)
	var arg string
	switch in.Op {
	case OpPut:
		arg = "(" + in.Key + ", " + in.Version + ")"
	case OpGetIfMatch, OpGetIfNoneMatch:
		arg = "(" + in.Key + ", etag of " + in.Version + ")"
	default:
		arg = "(" + in.Key + ")"
	}
	res := string(out.Result)
	switch out.Result {
	case ResultFound:
		res = out.Version
	case ResultCorrupt, ResultUnknown:
		res += ": " + out.Detail
	}
	return fmt.Sprintf("%s%s -> %s", in.Op, arg, res)
}

func describeState(state any) string {
	if s := state.(string); s != absent {
		return s
	}
	return "(absent)"
}

func hashState(state any) uint64 {
	h := fnv.New64a()
	h.Write([]byte(state.(string)))
	return h.Sum64()
}

// NewModel is the porcupine model of S3 objects as registers, partitioned by key.
func NewModel() porcupine.Model {
	return porcupine.Model{
		Partition:         partitionByKey,
		Init:              func() any { return absent },
		Step:              step,
		Hash:              hashState,
		DescribeOperation: describeOperation,
		DescribeState:     describeState,
		DescribeOperationMetadata: func(m any) string {
			if m == nil {
				return ""
			}
			return fmt.Sprint(m)
		},
	}
}
