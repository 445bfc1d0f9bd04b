package executor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Run cgroups: under the sandbox, each run's processes are in cgroups of
// their own, which bound their memory (all processes and the tmpfs they
// write, together) and their number, and through which whatever is left of
// a run is found and killed. The memory and pids controllers may each be
// on a cgroup v2 hierarchy or on a v1 hierarchy of their own (machines with
// both have them on one or the other); a run has one cgroup per hierarchy
// used. The groups sit under this process's own cgroup, in a parent
// scripthost-<pid> made at start and removed at Close, and are reused from
// run to run: a run's cgroup is given back only once it is empty.

// cgroupHierarchy is one mounted hierarchy with the controllers used on it.
type cgroupHierarchy struct {
	// base is this process's cgroup in the hierarchy, as a folder.
	base        string
	v2          bool
	controllers []string // "memory", "pids"
}

// cgroupPool makes, limits and reuses the runs' cgroups.
type cgroupPool struct {
	hier      []cgroupHierarchy
	parents   []string // one per hierarchy: base/scripthost-<pid>
	maxMemory int64
	maxProcs  int

	mu    sync.Mutex
	free  []*runCgroup
	all   []*runCgroup
	next  int
	close bool
}

// runCgroup is the cgroups of one run, one folder per hierarchy.
type runCgroup struct {
	dirs []string
}

// procs are the cgroup.procs files a run's process writes itself into.
func (c *runCgroup) procs() []string {
	out := make([]string, len(c.dirs))
	for i, d := range c.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// errNoCgroups says that no usable memory or pids controller was found.
var errNoCgroups = errors.New("no cgroup memory or pids controller that this process may use")

// findCgroupHierarchies finds where the memory and pids controllers are,
// from this process's mounts and cgroups. want lists the controllers needed.
func findCgroupHierarchies(want []string) ([]cgroupHierarchy, []string, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, want, err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, want, err
	}
	hier, missing := cgroupHierarchiesFrom(mounts, own, want)
	return hier, missing, nil
}

// cgroupHierarchiesFrom reads the hierarchies off the contents of
// /proc/self/mountinfo and /proc/self/cgroup; a v2 hierarchy's
// controllers are read from its cgroup.controllers file.
func cgroupHierarchiesFrom(mounts, own []byte, want []string) ([]cgroupHierarchy, []string) {
	// Our cgroup path by v1 controller, and in v2 ("").
	paths := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			paths[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			paths[c] = f[2]
		}
	}
	var out []cgroupHierarchy
	missing := slices.Clone(want)
	for _, line := range strings.Split(string(mounts), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		root, point := unescapeMount(fields[3]), unescapeMount(fields[4])
		var h cgroupHierarchy
		switch tail[0] {
		case "cgroup2":
			cg, ok := paths[""]
			if !ok {
				continue
			}
			h = cgroupHierarchy{base: joinCgroup(point, root, cg), v2: true}
			avail, err := os.ReadFile(filepath.Join(h.base, "cgroup.controllers"))
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(avail)) {
				if slices.Contains(missing, c) {
					h.controllers = append(h.controllers, c)
				}
			}
		case "cgroup":
			for _, opt := range strings.Split(tail[2], ",") {
				if slices.Contains(missing, opt) {
					h.controllers = append(h.controllers, opt)
				}
			}
			if len(h.controllers) == 0 {
				continue
			}
			cg, ok := paths[h.controllers[0]]
			if !ok {
				continue
			}
			h.base = joinCgroup(point, root, cg)
		default:
			continue
		}
		if len(h.controllers) == 0 {
			continue
		}
		if unix.Access(h.base, unix.W_OK) != nil {
			continue
		}
		for _, c := range h.controllers {
			missing = slices.DeleteFunc(missing, func(m string) bool { return m == c })
		}
		out = append(out, h)
	}
	return out, missing
}

// joinCgroup is the folder of cgroup path cg in a hierarchy mounted at
// point whose mount shows the hierarchy from root.
func joinCgroup(point, root, cg string) string {
	rel := cg
	if root != "/" {
		rel = strings.TrimPrefix(cg, root)
	}
	return filepath.Join(point, rel)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// newCgroupPool makes the parent cgroups of this runner's runs. The
// controllers needed follow from the limits: memory for maxMemory, pids
// for maxProcs (both are used to find and kill a run's processes when
// there). missing lists those not found: their limits fall back to
// rlimits.
func newCgroupPool(maxMemory int64, maxProcs int) (pool *cgroupPool, missing []string, err error) {
	want := []string{"memory", "pids"}
	hier, missing, err := findCgroupHierarchies(want)
	if err != nil {
		return nil, want, err
	}
	if len(hier) == 0 {
		return nil, missing, errNoCgroups
	}
	p, err := newCgroupPoolOn(hier, maxMemory, maxProcs)
	if err != nil {
		return nil, want, err
	}
	return p, missing, nil
}

// newCgroupPoolOn makes the parent cgroups of this runner's runs under the
// hierarchies found (hier).
func newCgroupPoolOn(hier []cgroupHierarchy, maxMemory int64, maxProcs int) (*cgroupPool, error) {
	p := &cgroupPool{hier: hier, maxMemory: maxMemory, maxProcs: maxProcs}
	name := fmt.Sprintf("scripthost-%d", os.Getpid())
	for _, h := range hier {
		removeStaleCgroups(h.base)
		dir := filepath.Join(h.base, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			p.Close()
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		p.parents = append(p.parents, dir)
		if h.v2 {
			// Our own cgroup must hand the controllers down, and so must
			// the parent to the runs' groups.
			ctl := "+" + strings.Join(h.controllers, " +")
			if err := writeCgroup(h.base, "cgroup.subtree_control", ctl); err != nil && !hasControllers(h.base, h.controllers) {
				p.Close()
				return nil, fmt.Errorf("cgroup %s: cannot enable %s for sub-groups (a cgroup v2 group with processes cannot; run the server in a delegated cgroup of its own): %w", h.base, ctl, err)
			}
			if err := writeCgroup(dir, "cgroup.subtree_control", ctl); err != nil {
				p.Close()
				return nil, fmt.Errorf("cgroup %s: %w", dir, err)
			}
		}
	}
	return p, nil
}

func hasControllers(dir string, want []string) bool {
	got, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(got))
	for _, c := range want {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}

// removeStaleCgroups removes the empty groups of servers that died
// without removing theirs (scripthost-<pid> whose pid is gone).
func removeStaleCgroups(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		pidStr, ok := strings.CutPrefix(e.Name(), "scripthost-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // alive (or not ours to judge)
		}
		dir := filepath.Join(base, e.Name())
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if s.IsDir() {
				_ = unix.Rmdir(filepath.Join(dir, s.Name()))
			}
		}
		_ = unix.Rmdir(dir)
	}
}

func writeCgroup(dir, file, value string) error {
	return os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
}

// acquire gives a run an empty cgroup with the limits set.
func (p *cgroupPool) acquire() (*runCgroup, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.next++
	name := fmt.Sprintf("run-%d", p.next)
	p.mu.Unlock()
	c := &runCgroup{}
	for i, h := range p.hier {
		dir := filepath.Join(p.parents[i], name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			c.remove()
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		c.dirs = append(c.dirs, dir)
		if err := p.limit(h, dir); err != nil {
			c.remove()
			return nil, err
		}
	}
	p.mu.Lock()
	p.all = append(p.all, c)
	p.mu.Unlock()
	return c, nil
}

// limit sets the limits of a run's cgroup in one hierarchy.
func (p *cgroupPool) limit(h cgroupHierarchy, dir string) error {
	for _, s := range p.settings(h) {
		err := writeCgroup(dir, s[0], s[1])
		if err != nil && strings.Contains(s[0], "sw") && errors.Is(err, os.ErrNotExist) {
			continue // no swap accounting: nothing to bound there
		}
		if err != nil {
			return fmt.Errorf("cgroup %s: %s: %w", dir, s[0], err)
		}
	}
	return nil
}

// slotLimits are, for each parent, the files and values that limit a run's
// cgroup under it: what the warm interpreter writes into the cgroups of
// its sandbox slots ("memory.memsw.*" and "memory.swap.*" may be missing).
func (p *cgroupPool) slotLimits() [][2]any {
	var out [][2]any
	for i, h := range p.hier {
		out = append(out, [2]any{p.parents[i], p.settings(h)})
	}
	return out
}

// settings are the limit files of a run's cgroup in one hierarchy.
func (p *cgroupPool) settings(h cgroupHierarchy) [][2]string {
	settings := [][2]string{}
	for _, c := range h.controllers {
		switch {
		case c == "memory" && p.maxMemory > 0 && h.v2:
			n := strconv.FormatInt(p.maxMemory, 10)
			settings = append(settings, [2]string{"memory.max", n}, [2]string{"memory.swap.max", "0"})
		case c == "memory" && p.maxMemory > 0:
			n := strconv.FormatInt(p.maxMemory, 10)
			settings = append(settings, [2]string{"memory.limit_in_bytes", n}, [2]string{"memory.memsw.limit_in_bytes", n})
		case c == "pids" && p.maxProcs > 0:
			settings = append(settings, [2]string{"pids.max", strconv.Itoa(p.maxProcs)})
		}
	}
	return settings
}

// release kills whatever is left in a run's cgroup and gives the group
// back once it is empty; a group that does not empty in time is dropped.
func (p *cgroupPool) release(c *runCgroup) {
	if c == nil {
		return
	}
	if !c.empty(2 * time.Second) {
		p.mu.Lock()
		p.all = slices.DeleteFunc(p.all, func(x *runCgroup) bool { return x == c })
		p.mu.Unlock()
		c.remove()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.close {
		c.remove()
		return
	}
	p.free = append(p.free, c)
}

// empty kills the group's processes until none is left, or wait passes.
func (c *runCgroup) empty(wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	delay := 100 * time.Microsecond
	for {
		left := false
		for _, d := range c.dirs {
			pids := cgroupPids(d)
			if len(pids) == 0 {
				continue
			}
			left = true
			if writeCgroup(d, "cgroup.kill", "1") == nil {
				continue
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if !left {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// cgroupPids lists the processes in a cgroup (not its sub-groups).
func cgroupPids(dir string) []int {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *runCgroup) remove() {
	for _, d := range c.dirs {
		_ = unix.Rmdir(d)
	}
}

// Close empties and removes every cgroup of the pool and its parents.
func (p *cgroupPool) Close() {
	p.mu.Lock()
	p.close = true
	all := p.all
	p.all, p.free = nil, nil
	p.mu.Unlock()
	for _, c := range all {
		c.empty(2 * time.Second)
		c.remove()
	}
	// And the groups of the warm interpreter's slots, if it left any.
	for _, d := range p.parents {
		subs, _ := os.ReadDir(d)
		for _, s := range subs {
			if s.IsDir() {
				c := &runCgroup{dirs: []string{filepath.Join(d, s.Name())}}
				c.empty(2 * time.Second)
				c.remove()
			}
		}
		_ = unix.Rmdir(d)
	}
}
