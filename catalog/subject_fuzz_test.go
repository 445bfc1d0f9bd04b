package catalog_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// FuzzSubjectName takes arbitrary subjects apart as the services do (the
// name after the prefix, then the name rule): a name that passes is a
// plain file of the scripts folder and makes a subject with no wildcard,
// space or empty token; one that fails is a bad request with a message.
func FuzzSubjectName(f *testing.F) {
	for _, s := range []string{
		"script.run.hello.py", "script.run.", "script.run", "script.run.>", "script.run.*.py",
		"script.get.../etc/passwd.py", "script.update.a..py", "script.delete. a.py", "script.run.a.py.",
		"script.get.$SRV.py", "script.run.a\x00.py", "script.run.a b.py", "script.runx.a.py",
		"scripthost.spare.a.py", "script.get." + strings.Repeat("x", 200) + ".py",
	} {
		f.Add(s)
	}
	prefixes := []string{bus.RunPrefix, bus.GetPrefix, bus.UpdatePrefix, bus.DeletePrefix,
		strings.TrimSuffix(bus.NewInternal("").SpareSubject("x"), "x")}
	dir := filepath.Join(string(filepath.Separator), "srv", "scripts")
	f.Fuzz(func(t *testing.T, subject string) {
		for _, prefix := range prefixes {
			name, ok := bus.NameFrom(subject, prefix)
			if !ok {
				if strings.HasPrefix(subject, prefix) && len(subject) > len(prefix) {
					t.Fatalf("NameFrom(%q, %q) refused a name", subject, prefix)
				}
				continue
			}
			if prefix+name != subject || name == "" {
				t.Fatalf("NameFrom(%q, %q) = %q", subject, prefix, name)
			}
			err := model.ValidateName(name)
			if err != nil {
				if !errors.Is(err, model.ErrBadRequest) || model.Message(err) == "" {
					t.Fatalf("ValidateName(%q) = %v, not a bad request with a message", name, err)
				}
				continue
			}
			if strings.ContainsAny(subject, "*> \t\r\n\x00") {
				t.Fatalf("accepted %q from subject %q with a wildcard or space", name, subject)
			}
			for _, tok := range strings.Split(subject, ".") {
				if tok == "" {
					t.Fatalf("accepted %q from subject %q with an empty token", name, subject)
				}
			}
			if filepath.Base(name) != name || filepath.Dir(filepath.Join(dir, name)) != dir {
				t.Fatalf("accepted %q, which leaves the scripts folder", name)
			}
		}
	})
}
