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
		{name: "args numbers", body: `{"args": ["a", 1]}`, errPart: `"args" must be an array of strings: "args"[1] is not a string`},
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
		{name: "an argument null", body: `{"args": [null, "a"]}`, errPart: `"args" must be an array of strings: "args"[0] is null`},
		{name: "an argument with NUL", body: `{"args": ["a", "b\u0000c"]}`, errPart: `"args"[1] contains a NUL byte`},
		{name: "an argument with half a surrogate pair", body: `{"args": ["\ud800"]}`, errPart: `"args"[0] contains \ud800, half of a UTF-16 surrogate pair`},
		{name: "an argument with the low half alone", body: `{"args": ["x\uDC01y"]}`, errPart: `contains \uDC01, half`},
		{name: "an argument with a surrogate pair", body: `{"args": ["\ud83d\ude00", "\\ud800", "\u00e9"]}`, args: []string{"😀", `\ud800`, "é"}},
		{name: "not UTF-8", body: "{\"args\": [\"a\xffb\"]}", errPart: "invalid JSON body: not valid UTF-8 at byte 13"},
		{name: "data not UTF-8", body: "{\"data\": \"\xc3\"}", errPart: "not valid UTF-8 at byte 11"},
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
		code, scriptName    string
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
		{name: "create fields are named as written", body: `{"NAME":"a.py","code":"x"}`, errPart: `unknown field "NAME" (the fields are "name", "code")`},
		{name: "update fields are named as written", body: `{"CODE":"x"}`, update: true, errPart: `unknown field "CODE" (the fields are "code")`},
		{name: "create code null", body: `{"name":"a.py","code":null}`, errPart: `"code" is required`},
		{name: "code with half a surrogate pair", body: `{"code":"print('\ud800')"}`, update: true, errPart: `"code" contains \ud800, half of a UTF-16 surrogate pair`},
		{name: "code not UTF-8", body: "{\"code\":\"\xff\xfe\"}", update: true, errPart: "not valid UTF-8 at byte 10"},
		{name: "code kept as sent", body: `{"code":"print('\ud83d\ude00 \\ud800 \ufffd')"}`, update: true, code: "print('😀 \\ud800 \ufffd')"},
		{name: "name kept as sent", body: `{"name":"\u00e9\ud83d\ude00.py","code":"x"}`, code: "x", scriptName: "é😀.py"},
		{name: "name with half a surrogate pair", body: `{"name":"\udc00.py","code":"x"}`, errPart: `"name" contains \udc00, half of a UTF-16 surrogate pair`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			var code, name *string
			if tc.update {
				var req UpdateRequest
				req, err = DecodeUpdate([]byte(tc.body))
				code = req.Code
			} else {
				var req CreateRequest
				req, err = DecodeCreate([]byte(tc.body))
				code, name = req.Code, req.Name
			}
			if tc.errPart == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.code != "" && *code != tc.code {
					t.Fatalf("code %q, want %q", *code, tc.code)
				}
				if tc.scriptName != "" && *name != tc.scriptName {
					t.Fatalf("name %q, want %q", *name, tc.scriptName)
				}
				return
			}
			if err == nil || Code(err) != 400 || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("err %v, want 400 saying %q", err, tc.errPart)
			}
		})
	}
}
