package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Where the memory and pids controllers are, as the mounts and our
// cgroups say: v1 hierarchies of their own (this machine), a v2 hierarchy
// that has them, one that has none (v1 then wins), and a container whose
// mounts show the hierarchy from its own cgroup.
func TestCgroupHierarchies(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, controllers string) string {
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if controllers != "-" {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(controllers+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	v1mem := mk("v1/memory/svc", "-")
	v1pids := mk("v1/pids", "-")
	v2empty := mk("unified", "")
	v2full := mk("v2/svc", "cpu memory pids")
	ctr := mk("ctr/memory", "-")
	v1 := "35 31 0:32 / " + root + "/v1/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"39 31 0:36 / " + root + "/v1/pids rw,relatime - cgroup cgroup rw,pids\n" +
		"40 31 0:37 / " + root + "/v1/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	tests := []struct {
		name        string
		mounts, own string
		want        []cgroupHierarchy
		missing     []string
	}{
		{"v1 only, with a v2 hierarchy without controllers",
			v1 + "41 31 0:38 / " + root + "/unified rw,relatime - cgroup2 cgroup2 rw\n",
			"8:pids:/\n4:memory:/svc\n1:cpu,cpuacct:/\n0::/\n",
			[]cgroupHierarchy{{base: v1mem, controllers: []string{"memory"}}, {base: v1pids, controllers: []string{"pids"}}},
			[]string{}},
		{"v2",
			"30 23 0:26 / " + root + "/v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
			"0::/svc\n",
			[]cgroupHierarchy{{base: v2full, v2: true, controllers: []string{"memory", "pids"}}},
			[]string{}},
		{"a container's view",
			"35 31 0:32 /docker/abc " + root + "/ctr/memory rw - cgroup cgroup rw,memory\n",
			"4:memory:/docker/abc\n",
			[]cgroupHierarchy{{base: ctr, controllers: []string{"memory"}}},
			[]string{"pids"}},
		{"nothing", "", "0::/\n", nil, []string{"memory", "pids"}},
	}
	_ = v2empty
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := cgroupHierarchiesFrom([]byte(tt.mounts), []byte(tt.own), []string{"memory", "pids"})
			if !reflect.DeepEqual(got, tt.want) || len(missing) != len(tt.missing) {
				t.Fatalf("got %+v missing %v, want %+v missing %v", got, missing, tt.want, tt.missing)
			}
		})
	}
}

// The files a pool writes on a cgroup v2 hierarchy, against a folder that
// stands for one (this machine has v1 controllers only): the controllers
// handed down by our own cgroup and by the pool's parent, the limits of a
// run's group (memory.max, memory.swap.max, pids.max; no v1 file), the
// same limits for the warm interpreter's slots, and the error when our
// cgroup cannot hand them down.
func TestCgroupPoolV2Files(t *testing.T) {
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := cgroupHierarchy{base: base, v2: true, controllers: []string{"memory", "pids"}}
	p, err := newCgroupPoolOn([]cgroupHierarchy{h}, 64<<20, 32)
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(base, fmt.Sprintf("scripthost-%d", os.Getpid()))
	if !reflect.DeepEqual(p.parents, []string{parent}) {
		t.Fatalf("parents %q, want %q", p.parents, parent)
	}
	for _, dir := range []string{base, parent} {
		if got := read(filepath.Join(dir, "cgroup.subtree_control")); got != "+memory +pids" {
			t.Errorf("%s: cgroup.subtree_control %q, want %q", dir, got, "+memory +pids")
		}
	}
	c, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(parent, "run-1")
	if !reflect.DeepEqual(c.procs(), []string{filepath.Join(run, "cgroup.procs")}) {
		t.Fatalf("procs %q", c.procs())
	}
	want := map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "32"}
	entries, err := os.ReadDir(run)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name()] = read(filepath.Join(run, e.Name()))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("run cgroup files %q, want %q", got, want)
	}
	wantSlots := [][2]any{{parent, [][2]string{{"memory.max", "67108864"}, {"memory.swap.max", "0"}, {"pids.max", "32"}}}}
	if s := p.slotLimits(); !reflect.DeepEqual(s, wantSlots) {
		t.Errorf("slot limits %v, want %v", s, wantSlots)
	}
	// An empty group is given back and reused.
	p.release(c)
	if c2, err := p.acquire(); err != nil || c2 != c {
		t.Errorf("acquire after release: %v, %v; want the same group", c2, err)
	}

	// Our cgroup cannot hand the controllers down (here: its
	// cgroup.subtree_control cannot be written) and does not have them.
	stuck := t.TempDir()
	if err := os.Mkdir(filepath.Join(stuck, "cgroup.subtree_control"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.base = stuck
	if _, err := newCgroupPoolOn([]cgroupHierarchy{h}, 64<<20, 32); err == nil || !strings.Contains(err.Error(), "cannot enable +memory +pids for sub-groups") {
		t.Errorf("a cgroup that cannot hand down its controllers: %v", err)
	}
}
