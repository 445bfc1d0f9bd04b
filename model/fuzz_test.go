package model

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeRunRequest feeds arbitrary bodies to the run request decoder,
// as the bridge and the executors do: it never panics, it fails only with
// a bad-request error that has a message, and what it accepts is valid
// JSON data, string arguments, and survives a round trip.
func FuzzDecodeRunRequest(f *testing.F) {
	for _, s := range []string{
		``, ` `, `null`, `{}`, `[]`, `"x"`, `1`, `{"data":null}`, `{"data":{"a":[1,2.50]}}`,
		`{"args":["a","b c",""]}`, `{"args":null}`, `{"args":[1]}`, `{"args":"a"}`, `{"data":1} {}`,
		`{"version":"abc"}`, `{"data":"\u0000\ud800"}`, `{"data":`, "\xff", `{"extra":true}`,
		`{"args":["\u0000"]}`, `{"data":1e999}`, `{"data":[[[[[[[[[[]]]]]]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRunRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) || Message(err) == "" || Code(err) != 400 {
				t.Fatalf("DecodeRunRequest(%q) = %v, not a bad request with a message", body, err)
			}
			return
		}
		if req.Data != nil && !json.Valid(req.Data) {
			t.Fatalf("DecodeRunRequest(%q): data %q is not valid JSON", body, req.Data)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("DecodeRunRequest(%q) gave %+v, which does not encode: %v", body, req, err)
		}
		back, err := DecodeRunRequest(again)
		if err != nil {
			t.Fatalf("round trip of %q: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(req)) {
			t.Fatalf("round trip of %q: %+v, want %+v", again, back, req)
		}
	})
}

// normalize makes two requests that mean the same comparable: JSON data
// compacted, no arguments as nil.
func normalize(r RunRequest) RunRequest {
	if r.Data != nil {
		var v any
		if json.Unmarshal(r.Data, &v) == nil {
			r.Data, _ = json.Marshal(v)
		}
	}
	if len(r.Args) == 0 {
		r.Args = nil
	}
	if string(r.Data) == "null" {
		r.Data = nil
	}
	return r
}
