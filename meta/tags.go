package meta

import (
	"context"
)

// SetTags replaces the current version's tag set (nil removes it), in a transaction that
// requires the record it read to be unchanged: a concurrent write of the key is never undone,
// and the object's data and chunks stay as they are. ErrNoSuchKey or ErrNoSuchBucket when
// absent. UpdateVersion does it for any version.
func (s *Store) SetTags(ctx context.Context, bucket, key string, tags map[string]string) error {
	return s.UpdateVersion(ctx, bucket, key, "", func(o *Object) error {
		o.Tags = tags
		return nil
	})
}
