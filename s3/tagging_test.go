package s3

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTaggingHeader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		code string
	}{
		{"", nil, ""},
		{"foo=bar&bar", map[string]string{"foo": "bar", "bar": ""}, ""},
		{"a%20b=c%26d", map[string]string{"a b": "c&d"}, ""},
		{"a=1&a=2", nil, CodeInvalidTag},
		{"=v", nil, CodeInvalidTag},
		{strings.Repeat("k", 129) + "=v", nil, CodeInvalidTag},
		{"k=" + strings.Repeat("v", 257), nil, CodeInvalidTag},
		{"k=" + strings.Repeat("é", 256), map[string]string{"k": strings.Repeat("é", 256)}, ""}, // characters, not bytes
		{"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10", map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10"}, ""},
		{"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11", nil, CodeInvalidTag},
		{"%zz", nil, CodeInvalidArgument},
	} {
		got, err := ParseTaggingHeader(tc.in)
		if tc.code != "" {
			checkCode(t, err, tc.code, "ParseTaggingHeader(%.20q)", tc.in)
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTaggingHeader(%.20q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestTaggingBody(t *testing.T) {
	var tg Tagging
	if err := DecodeXML(strings.NewReader(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>b</Key><Value>2</Value></Tag><Tag><Key>a</Key><Value></Value></Tag></TagSet></Tagging>`), 1<<10, &tg); err != nil {
		t.Fatal(err)
	}
	m, err := tg.Tags()
	if err != nil || !reflect.DeepEqual(m, map[string]string{"a": "", "b": "2"}) {
		t.Fatalf("tags %v, %v", m, err)
	}
	if res := NewTaggingResult(m); !reflect.DeepEqual(res.TagSet, []Tag{{"a", ""}, {"b", "2"}}) {
		t.Fatalf("result %+v", res.TagSet)
	}
	dup := Tagging{TagSet: []Tag{{"a", "1"}, {"a", "2"}}}
	_, err = dup.Tags()
	checkCode(t, err, CodeInvalidTag, "duplicate keys")
	if res := NewTaggingResult(nil); res.TagSet == nil {
		t.Fatal("an empty tag set must marshal as <TagSet></TagSet>")
	}
}
