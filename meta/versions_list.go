package meta

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// VersionEntry is one listed version or delete marker.
type VersionEntry struct {
	Key    string
	Object *Object // Object.DeleteMarker for a delete marker
	Latest bool
}

// VersionList is one page of ListObjectVersions.
type VersionList struct {
	Versions  []VersionEntry
	Prefixes  []string
	Truncated bool
	// NextKey and NextVersion are where the following page starts (exclusive): after version
	// NextVersion of NextKey, or after everything under NextKey when NextVersion is "" (a
	// common prefix).
	NextKey, NextVersion string
}

// cursor walks one range in key order (a pulled rangeStream).
type cursor struct {
	next func() (*mvccpb.KeyValue, error, bool)
	stop func()
	kv   *mvccpb.KeyValue
}

func (s *Store) cursor(ctx context.Context, from, end string, rev int64) (*cursor, error) {
	seq := func(yield func(*mvccpb.KeyValue, error) bool) {
		err := s.rangeStream(ctx, from, end, rev, false, func(kv *mvccpb.KeyValue) (bool, error) {
			return yield(kv, nil), nil
		})
		if err != nil {
			yield(nil, err)
		}
	}
	c := &cursor{}
	c.next, c.stop = iter.Pull2(seq)
	return c, c.advance()
}

func (c *cursor) advance() error {
	kv, err, ok := c.next()
	if err != nil {
		return err
	}
	c.kv = nil
	if ok {
		c.kv = kv
	}
	return nil
}

// ListVersions lists the versions and delete markers of the keys with prefix, in S3's order
// (key, then newest first), starting after version versionMarker of keyMarker (after every
// version of keyMarker when versionMarker is "", after everything under it when
// markerIsPrefix), rolling keys up at the first delimiter after the prefix, at most max entries
// (versions, markers and prefixes), all as of one revision.
//
// It merges two range reads in step, the current versions (o/) and the others (v/), whose
// keys sort in listing order (versions.go): its work is bounded by the page, as ListObjects',
// and a common prefix holding many versions is stepped over by restarting both reads past it.
func (s *Store) ListVersions(ctx context.Context, bucket, prefix, delimiter, keyMarker, versionMarker string, markerIsPrefix bool, max int) (*VersionList, error) {
	br, err := s.cli.Get(ctx, BucketKey(bucket), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
	}
	if br.Count == 0 {
		return nil, fmt.Errorf("bucket %s: %w", bucket, ErrNoSuchBucket)
	}
	res := &VersionList{}
	if max <= 0 {
		return res, nil
	}
	rev := br.Header.Revision
	obase, vbase := ObjectPrefix+bucket+"/", VersionPrefix+bucket+"/"
	ofrom, vfrom := obase+prefix, vbase+prefix
	prevKey := "" // the key of the last version seen: a v/ version of another key is the latest
	if keyMarker != "" && keyMarker >= prefix {
		switch {
		case markerIsPrefix:
			ofrom, vfrom = clientv3.GetPrefixRangeEnd(obase+keyMarker), clientv3.GetPrefixRangeEnd(vbase+keyMarker)
		case versionMarker == "":
			ofrom, vfrom = obase+keyMarker+"\x00", vbase+keyMarker+"\x01"
		default:
			ofrom, prevKey = obase+keyMarker+"\x00", keyMarker
			if vfrom, err = s.afterVersion(ctx, bucket, keyMarker, versionMarker, rev); err != nil {
				return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
			}
		}
	}
	oend, vend := clientv3.GetPrefixRangeEnd(obase+prefix), clientv3.GetPrefixRangeEnd(vbase+prefix)
	var oc, vc *cursor
	open := func() error {
		if oc != nil {
			oc.stop()
			vc.stop()
		}
		var err error
		if oc, err = s.cursor(ctx, ofrom, oend, rev); err != nil {
			return err
		}
		vc, err = s.cursor(ctx, vfrom, vend, rev)
		return err
	}
	defer func() {
		if oc != nil {
			oc.stop()
		}
		if vc != nil {
			vc.stop()
		}
	}()
	if err := open(); err != nil {
		return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
	}
	entries, bytes, scanned, skipped, lastPrefix := 0, 0, 0, 0, ""
	for {
		var kv *mvccpb.KeyValue
		var name string
		current := false
		switch {
		case oc.kv == nil && vc.kv == nil:
			return res, nil
		case vc.kv == nil || oc.kv != nil && string(oc.kv.Key[len(obase):]) < string(vc.kv.Key[len(vbase):]):
			kv, name, current = oc.kv, string(oc.kv.Key[len(obase):]), true
		default:
			kv, name = vc.kv, string(vc.kv.Key[len(vbase):])
		}
		key := name
		if !current {
			if i := strings.LastIndexByte(name, 0); i >= 0 {
				key = name[:i]
			}
		}
		adv := func() error {
			if current {
				return oc.advance()
			}
			return vc.advance()
		}
		if delimiter != "" {
			if i := strings.Index(key[len(prefix):], delimiter); i >= 0 {
				cp := key[:len(prefix)+i+len(delimiter)]
				if cp == lastPrefix {
					if skipped++; skipped > s.lim.listSkip {
						skipped = 0
						ofrom, vfrom = clientv3.GetPrefixRangeEnd(obase+cp), clientv3.GetPrefixRangeEnd(vbase+cp)
						if err := open(); err != nil {
							return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
						}
						continue
					}
					scanned++
					if err := adv(); err != nil {
						return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
					}
					continue
				}
				if entries == max || entries > 0 && scanned >= s.lim.listKeys {
					res.Truncated = true
					return res, nil
				}
				skipped, lastPrefix = 0, cp
				res.Prefixes = append(res.Prefixes, cp)
				res.NextKey, res.NextVersion = cp, ""
				entries++
				scanned++
				if err := adv(); err != nil {
					return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
				}
				continue
			}
		}
		if entries == max || entries > 0 && (bytes >= s.lim.listBytes || scanned >= s.lim.listKeys) {
			res.Truncated = true
			return res, nil
		}
		o, err := DecodeObject(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("version %q of %s: %w", name, bucket, err)
		}
		res.Versions = append(res.Versions, VersionEntry{Key: key, Object: o, Latest: current || key != prevKey})
		res.NextKey, res.NextVersion = key, o.VersionID()
		prevKey = key
		entries++
		scanned++
		bytes += len(kv.Value)
		if err := adv(); err != nil {
			return nil, fmt.Errorf("list versions %s/%s: %w", bucket, prefix, err)
		}
	}
}

// afterVersion is where the v/ read of a page starting after version id of key begins.
func (s *Store) afterVersion(ctx context.Context, bucket, key, id string, rev int64) (string, error) {
	vbase := VersionPrefix + bucket + "/"
	resp, err := s.cli.Get(ctx, ObjectKey(bucket, key), clientv3.WithRev(rev))
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) > 0 {
		if o, err := DecodeObject(resp.Kvs[0].Value); err == nil && o.VersionID() == id {
			return vbase + key + "\x00", nil // every noncurrent version of the key
		}
	}
	kv, err := s.findVersion(ctx, bucket, key, id, rev)
	if err != nil {
		return "", err
	}
	if kv == nil { // gone meanwhile: go on with the next key
		return vbase + key + "\x01", nil
	}
	return string(kv.Key) + "\x00", nil
}
