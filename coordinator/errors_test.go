package coordinator

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/hanode/hanode/meta"
	"github.com/hanode/hanode/s3"
)

func TestToS3(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("complete upload u: %w", meta.ErrTooLarge), s3.CodeEntityTooLarge},
		{fmt.Errorf("put part 1 of u: %w", rpctypes.ErrRequestTooLarge), s3.CodeEntityTooLarge},
		{fmt.Errorf("bucket b: %w", meta.ErrNoSuchBucket), s3.CodeNoSuchBucket},
		{fmt.Errorf("upload u: %w", meta.ErrNoSuchUpload), s3.CodeNoSuchUpload},
		{errors.New("something else"), s3.CodeInternalError},
	} {
		if got := toS3(tc.err).Code; got != tc.code {
			t.Errorf("toS3(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
}
