package bus

import (
	"errors"
	"net/url"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// RunPermissions are what a run-only client of the embedded server may do:
// publish run requests, list and read scripts, submit, read, cancel and
// list jobs and follow their events, ask the services who they are
// ($SRV), and receive its replies. The catalog's write subjects
// (script.create, script.update.>, script.delete.>), JetStream and the
// executors' own protocol are out of its reach.
func RunPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{RunAll, ListSubject, GetPrefix + ">", "$SRV.>", "_INBOX.>",
				JobSubmitPrefix + ">", JobGetPrefix + "*", JobCancelPrefix + "*", JobListSubject},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{"_INBOX.>", JobEventPrefix + ">"},
		},
	}
}

// auth sets the users of the embedded server: none (anyone may connect),
// one with every right, or that one and a run-only user.
func (cfg ServerConfig) auth(opts *server.Options) error {
	switch {
	case cfg.User == "" && cfg.Password != "":
		return errors.New("nats server: a password without a user")
	case cfg.RunUser == "":
		if cfg.RunPassword != "" {
			return errors.New("nats server: a run-only password without a run-only user")
		}
		opts.Username, opts.Password = cfg.User, cfg.Password
		return nil
	case cfg.User == "":
		return errors.New("nats server: a run-only user needs a user with every right for the server's own connections")
	case cfg.RunUser == cfg.User:
		return errors.New("nats server: the run-only user must differ from the user with every right")
	}
	opts.Users = []*server.User{
		{Username: cfg.User, Password: cfg.Password},
		{Username: cfg.RunUser, Password: cfg.RunPassword, Permissions: RunPermissions()},
	}
	return nil
}

// Redact returns a NATS URL list (comma-separated) with the passwords
// hidden, for logs and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
