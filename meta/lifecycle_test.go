package meta

import (
	"testing"
	"time"
)

func TestExpiryDay(t *testing.T) {
	for _, tc := range []struct {
		modified string
		days     int
		want     string
	}{
		{"2026-12-03T21:05:00Z", 1, "2026-12-05T00:00:00Z"}, // a day later, then the next midnight
		{"2026-12-03T00:00:00Z", 1, "2026-12-04T00:00:00Z"}, // written at midnight: exactly a day
		{"2026-12-31T23:59:59Z", 30, "2027-01-31T00:00:00Z"},
	} {
		m, _ := time.Parse(time.RFC3339, tc.modified)
		if got := ExpiryDay(m, tc.days).Format(time.RFC3339); got != tc.want {
			t.Errorf("ExpiryDay(%s, %d) = %s, want %s", tc.modified, tc.days, got, tc.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	modified := time.Date(2026, 12, 3, 21, 5, 0, 0, time.UTC)
	date := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	obj := &Object{Size: 100, Modified: modified, Tags: map[string]string{"key1": "tag1", "key5": "tag5"}}
	for _, tc := range []struct {
		name   string
		key    string
		rules  []LifecycleRule
		want   string // RFC 3339 expiry, "" for none
		wantID string
	}{
		{name: "no rules", key: "k"},
		{name: "days, prefix matches", key: "days1/foo",
			rules: []LifecycleRule{{ID: "rule1", Enabled: true, Prefix: "days1/", ExpireDays: 1}},
			want:  "2026-12-05T00:00:00Z", wantID: "rule1"},
		{name: "prefix does not match", key: "other",
			rules: []LifecycleRule{{ID: "rule1", Enabled: true, Prefix: "days1/", ExpireDays: 1}}},
		{name: "disabled", key: "days1/foo",
			rules: []LifecycleRule{{ID: "rule1", Prefix: "days1/", ExpireDays: 1}}},
		{name: "tag matches", key: "obj",
			rules: []LifecycleRule{{ID: "t", Enabled: true, Tags: map[string]string{"key1": "tag1"}, ExpireDays: 1}},
			want:  "2026-12-05T00:00:00Z", wantID: "t"},
		{name: "one of two tags differs", key: "obj",
			rules: []LifecycleRule{{ID: "t", Enabled: true, Tags: map[string]string{"key1": "tag1", "key5": "tag6"}, ExpireDays: 1}}},
		{name: "size bound excludes", key: "obj",
			rules: []LifecycleRule{{ID: "s", Enabled: true, SizeGreater: 100, ExpireDays: 1}}},
		{name: "no expiration action", key: "obj",
			rules: []LifecycleRule{{ID: "nc", Enabled: true, NoncurrentDays: 1, AbortDays: 1, ExpiredDeleteMarker: true}}},
		{name: "the earliest of several", key: "logs/a",
			rules: []LifecycleRule{
				{ID: "late", Enabled: true, Prefix: "logs/", ExpireDays: 30},
				{ID: "date", Enabled: true, ExpireDate: date},
				{ID: "early", Enabled: true, Prefix: "logs/", ExpireDays: 2},
			},
			want: "2026-12-04T00:00:00Z", wantID: "date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, id, ok := Expiry(tc.rules, tc.key, obj)
			got := ""
			if ok {
				got = at.Format(time.RFC3339)
			}
			if got != tc.want || id != tc.wantID {
				t.Errorf("Expiry = %q, %q; want %q, %q", got, id, tc.want, tc.wantID)
			}
		})
	}
}
