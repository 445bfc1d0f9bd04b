package model

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRunRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		data    string
		args    []string
		errPart string
	}{
		{name: "empty body", body: ""},
		{name: "blank body", body: " \n\t"},
		{name: "null body", body: "null"},
		{name: "empty object", body: "{}"},
		{name: "data object kept as sent", body: `{"data": {"b": 1,  "a": [1, 2.50]}}`, data: `{"b": 1,  "a": [1, 2.50]}`},
		{name: "data string", body: `{"data": "x"}`, data: `"x"`},
		{name: "data null", body: `{"data": null}`, data: `null`},
		{name: "args", body: `{"args": ["--v", "", "β"]}`, args: []string{"--v", "", "β"}},
		{name: "args null", body: `{"args": null}`},
		{name: "unknown field", body: `{"data": 1, "other": true}`, errPart: `unknown field "other" (the fields are "data", "args")`},
		{name: "a typo of args", body: `{"arg": ["x"]}`, errPart: `unknown field "arg"`},
		{name: "args not array", body: `{"args": "x"}`, errPart: `"args" must be an array of strings`},
		{name: "args numbers", body: `{"args": [1]}`, errPart: `"args" must be an array of strings`},
		{name: "version is not a run's", body: `{"version": "abc"}`, errPart: `unknown field "version"`},
		{name: "array body", body: `[1]`, errPart: "invalid JSON body: expected a JSON object"},
		{name: "string body", body: `"x"`, errPart: "invalid JSON body"},
		{name: "truncated", body: `{"data":`, errPart: "invalid JSON body: truncated JSON"},
		{name: "syntax", body: `{"data": nope}`, errPart: `invalid JSON body: not valid JSON at byte 11 ("o" in "{\"data\": nope}")`},
		{name: "not JSON at all", body: `not json`, errPart: `invalid JSON body: not valid JSON at byte 2 ("o" in "not json")`},
		{name: "a character of two bytes", body: `{"data": é}`, errPart: `not valid JSON at byte 10 ("é" in "{\"data\": é}")`},
		{name: "window on whole characters", body: `{"data": [` + strings.Repeat("é", 20) + `]}`, errPart: `not valid JSON at byte 11 ("é" in "{\"data\": [ééééééééé")`},
		{name: "long body shown in part", body: `{"data": "` + strings.Repeat("x", 40) + `"` + strings.Repeat("y", 40) + `}`, errPart: `not valid JSON at byte 52 ("y" in "xxxxxxxxxxxxxxx\"yyyyyyyyyyyyyyyyy")`},
		{name: "trailing data", body: `{} {}`, errPart: "unexpected data after the JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeRunRequest([]byte(tc.body))
			if tc.errPart != "" {
				if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err %v, want a bad request saying %q", err, tc.errPart)
				}
				if Code(err) != 400 {
					t.Fatalf("code %d", Code(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(req.Data) != tc.data {
				t.Errorf("data %q, want %q", req.Data, tc.data)
			}
			if strings.Join(req.Args, "|") != strings.Join(tc.args, "|") || len(req.Args) != len(tc.args) {
				t.Errorf("args %q, want %q", req.Args, tc.args)
			}
		})
	}
}

func TestDecodeCreateUpdate(t *testing.T) {
	tests := []struct {
		name, body, errPart string
		update              bool
	}{
		{name: "create", body: `{"name":"a.py","code":""}`},
		{name: "create no name", body: `{"code":"x"}`, errPart: `"name" is required`},
		{name: "create no code", body: `{"name":"a.py"}`, errPart: `"code" is required`},
		{name: "create name number", body: `{"name":1,"code":"x"}`, errPart: `field "name" must be a string`},
		{name: "create empty", body: ``, errPart: `"name" and "code"`},
		{name: "create unknown field", body: `{"name":"a.py","code":"x","mode":"exec"}`, errPart: `unknown field "mode" (the fields are "name", "code")`},
		{name: "update", body: `{"code":"x"}`, update: true},
		{name: "update with a name", body: `{"name":"b.py","code":"x"}`, update: true, errPart: `unknown field "name" (the fields are "code")`},
		{name: "update no code", body: `{}`, update: true, errPart: `"code" is required`},
		{name: "update code array", body: `{"code":[]}`, update: true, errPart: `field "code" must be a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.update {
				_, err = DecodeUpdate([]byte(tc.body))
			} else {
				_, err = DecodeCreate([]byte(tc.body))
			}
			if tc.errPart == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || Code(err) != 400 || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("err %v, want 400 saying %q", err, tc.errPart)
			}
		})
	}
}
