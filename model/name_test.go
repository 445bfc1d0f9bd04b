package model_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

var nameRule = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.py$`)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{"simple", "hello.py", true},
		{"digits underscore dash", "a_1-b.py", true},
		{"dotted", "pkg.sub.mod.py", true},
		{"single char", "x.py", true},
		{"upper case", "Hello.py", true},
		{"at the limit", strings.Repeat("a", 125) + ".py", true},
		{"over the limit", strings.Repeat("a", 126) + ".py", false},
		{"empty", "", false},
		{"only extension", ".py", false},
		{"py alone", "py", false},
		{"no extension", "hello", false},
		{"other extension", "hello.txt", false},
		{"upper extension", "hello.PY", false},
		{"extension then more", "hello.py.bak", false},
		{"leading dot", ".hello.py", false},
		{"double dot", "a..py", false},
		{"empty inner token", "a..b.py", false},
		{"path traversal", "../x.py", false},
		{"slash", "dir/x.py", false},
		{"backslash", `dir\x.py`, false},
		{"space", "my script.py", false},
		{"star", "*.py", false},
		{"greater than", ">.py", false},
		{"tab", "a\t.py", false},
		{"newline", "a\n.py", false},
		{"nul", "a\x00.py", false},
		{"non ascii", "héllo.py", false},
		{"dollar", "$SRV.py", false},
		{"temp file", ".scripthost-tmp-123", false},
		{"trailing space", "hello.py ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := model.ValidateName(tt.input)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateName(%q) = nil, want an error", tt.input)
			}
			if !errors.Is(err, model.ErrBadRequest) || model.Code(err) != 400 {
				t.Fatalf("ValidateName(%q) = %v (code %d), want a bad request", tt.input, err, model.Code(err))
			}
			if msg := model.Message(err); !strings.Contains(msg, "invalid script name") || !strings.Contains(msg, "end in .py") {
				t.Fatalf("message %q does not say what is wrong", msg)
			}
		})
	}
}

func TestValidateNameMessageBounded(t *testing.T) {
	err := model.ValidateName(strings.Repeat("a/", 10000) + ".py")
	if err == nil || len(model.Message(err)) > 600 {
		t.Fatalf("message of %d bytes for a huge name", len(model.Message(err)))
	}
}

// FuzzValidateName holds ValidateName to the documented rule, and checks
// that every accepted name is a valid NATS subject suffix.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"hello.py", "a.b.py", "../x.py", "a..py", ".py", "a b.py", "*.py", "a.>.py", "a/b.py", "", "x.py\n", strings.Repeat("z", 126) + ".py"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := model.ValidateName(name)
		want := nameRule.MatchString(name) && len(name) <= model.MaxNameLen
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, rule says valid=%v", name, err, want)
		}
		if err != nil {
			if !errors.Is(err, model.ErrBadRequest) {
				t.Fatalf("ValidateName(%q) = %v, not a bad request", name, err)
			}
			return
		}
		if len(name) > model.MaxNameLen {
			t.Fatalf("accepted %d bytes", len(name))
		}
		if strings.ContainsAny(name, "*> /\\\t\r\n\x00") {
			t.Fatalf("accepted %q with a wildcard, space or separator", name)
		}
		for _, tok := range strings.Split(bus.GetSubject(name), ".") {
			if tok == "" {
				t.Fatalf("subject %q has an empty token", bus.GetSubject(name))
			}
		}
		if got, ok := bus.NameFrom(bus.GetSubject(name), bus.GetPrefix); !ok || got != name {
			t.Fatalf("NameFrom round trip of %q gave %q, %v", name, got, ok)
		}
	})
}

func TestValidateFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"data.csv", true}, {"README", true}, {"model-v2.bin", true}, {"a_b.tar.gz", true},
		{"a.py", false}, {"", false}, {".hidden", false}, {"a..b", false}, {"trailing.", false},
		{"with space.txt", false}, {"../up.txt", false}, {"a/b.txt", false}, {"a*b", false},
		{strings.Repeat("x", model.MaxNameLen+1), false},
	} {
		if err := model.ValidateFileName(tc.name); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

var hexVersion = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestVersion(t *testing.T) {
	a, b := model.Version([]byte("print(1)\n")), model.Version([]byte("print(2)\n"))
	if !hexVersion.MatchString(a) || a == b || a != model.Version([]byte("print(1)\n")) {
		t.Fatalf("versions %q, %q", a, b)
	}
}
