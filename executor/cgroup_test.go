package executor

import (
	"os"
	"path/filepath"
	"reflect"
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
