package executor

import "fmt"

// Credential is the user a run takes: every process of the run has these
// user and group ids (real, effective and saved) and supplementary groups.
type Credential struct {
	// Name is for messages only.
	Name     string
	Uid, Gid uint32
	Groups   []uint32
	// Home is the user's home folder: the runs' HOME when they are not
	// sandboxed (a sandboxed run has a HOME of its own); empty keeps the
	// server's HOME.
	Home string
}

func (c *Credential) String() string {
	if c == nil {
		return "the server's user"
	}
	return fmt.Sprintf("%s (uid %d, gid %d)", c.Name, c.Uid, c.Gid)
}
