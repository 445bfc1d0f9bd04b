package executor

import (
	"fmt"
	"os"
	"testing"
)

func TestResolveRunUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if _, err := ResolveRunUser("root"); err == nil {
			t.Fatal("a server that is not root accepted --run-as root")
		}
		if cred, err := ResolveRunUser(""); err != nil || cred != nil {
			t.Fatalf("default: %v %v", cred, err)
		}
		return
	}
	tests := []struct {
		spec string
		uid  int // -1: the server's own user
		err  bool
	}{
		{"", 65534, false},
		{"nobody", 65534, false},
		{"65534", 65534, false},
		{"4242", 4242, false},
		{"root", -1, false},
		{"0", -1, false},
		{"no-such-user-here", 0, true},
	}
	for _, tt := range tests {
		cred, err := ResolveRunUser(tt.spec)
		switch {
		case tt.err:
			if err == nil {
				t.Errorf("%q: accepted", tt.spec)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.spec, err)
		case tt.uid == -1 && cred != nil:
			t.Errorf("%q: %v, want the server's user", tt.spec, cred)
		case tt.uid >= 0 && (cred == nil || int(cred.Uid) != tt.uid):
			t.Errorf("%q: %v, want uid %d", tt.spec, cred, tt.uid)
		}
	}
	if cred, _ := ResolveRunUser("nobody"); cred == nil || fmt.Sprint(cred.Groups) == "[]" {
		t.Errorf("nobody has no groups: %v", cred)
	}
}
