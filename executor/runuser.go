package executor

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Who a run is: the server's own user, or, when the server is root, the
// user of --run-as (nobody by default, root only when asked for by name).
// ResolveRunUser finds that user before anything starts; Preflight
// (preflight_linux.go) checks, as a node starts, that the user can run the
// scripts there.

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

// DefaultRunUser is the user scripts run as when the server runs as root
// and --run-as is not given.
const DefaultRunUser = "nobody"

// ResolveRunUser is the user scripts run as, by --run-as spec (a name or
// a uid; "" for the default): nil for the server's own user. As root, the
// default is DefaultRunUser, and root only when asked for by name.
// Otherwise the server cannot switch users, and spec may only name the
// server's own.
func ResolveRunUser(spec string) (*Credential, error) {
	euid := os.Geteuid()
	if spec == "" {
		if euid != 0 {
			return nil, nil
		}
		spec = DefaultRunUser
	}
	cred, err := lookupUser(spec)
	if err != nil {
		return nil, err
	}
	if int(cred.Uid) == euid {
		return nil, nil
	}
	if euid != 0 {
		return nil, fmt.Errorf("--run-as %s: the server runs as uid %d; only root can run scripts as another user", spec, euid)
	}
	return cred, nil
}

// lookupUser finds a user by name or uid. A uid that names no user is
// taken with a group of the same number (containers often run ids that
// have no entry); nobody without an entry is 65534.
func lookupUser(spec string) (*Credential, error) {
	n, numErr := strconv.ParseUint(spec, 10, 32)
	var u *user.User
	var err error
	if numErr == nil {
		u, err = user.LookupId(spec)
	} else {
		u, err = user.Lookup(spec)
	}
	var unknownID user.UnknownUserIdError
	var unknown user.UnknownUserError
	switch {
	case err == nil:
	case numErr == nil && errors.As(err, &unknownID):
		return &Credential{Name: spec, Uid: uint32(n), Gid: uint32(n), Groups: []uint32{uint32(n)}, Home: "/nonexistent"}, nil
	case spec == "nobody" && errors.As(err, &unknown):
		return &Credential{Name: spec, Uid: 65534, Gid: 65534, Groups: []uint32{65534}, Home: "/nonexistent"}, nil
	default:
		return nil, fmt.Errorf("--run-as %s: %w", spec, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--run-as %s: uid %q, gid %q are not numbers", spec, u.Uid, u.Gid)
	}
	cred := &Credential{Name: u.Username, Uid: uint32(uid), Gid: uint32(gid), Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		ids = []string{u.Gid}
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	return cred, nil
}

// PreflightConfig is what Preflight needs to know beyond the runner's
// configuration.
type PreflightConfig struct {
	// Fork is set in fork mode, whose warm interpreter runs as the server.
	Fork bool
	// ScriptsDir is the folder of the node's scripts; "" is not checked.
	ScriptsDir string
	// DefaultUser is set when the run user is the default one
	// (DefaultRunUser, as root) rather than one --run-as names: spawn
	// mode then refuses to start if that user cannot run the interpreter.
	DefaultUser bool
}
