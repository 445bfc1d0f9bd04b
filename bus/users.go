package bus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// The users of the embedded server, when it demands credentials. Each
// part of scripthost connects as a user that may publish and subscribe
// only what its job needs (allow lists), and each user has an inbox
// prefix of its own (_INBOX.<user>) that only it may subscribe to:
//
//   - the service user (--nats-user): executor nodes, in the serve process
//     and on other machines. It serves script.run.> and the internal
//     subjects; it may publish only into inboxes (its replies), on the
//     internal subjects, and read the scripts bucket.
//   - the run-only user (--nats-run-user): callers. It may request runs,
//     the list and the scripts, and ask the services who they are ($SRV);
//     it may subscribe to its own inboxes alone.
//   - three users internal to the serve process, with passwords drawn at
//     start that never leave it: the HTTP bridge (it sends the catalog's
//     write requests), the catalog (it answers them) and the catalog's
//     key-value publisher (it writes the bucket).
//
// A reply subject is chosen by the requester, and every part that answers
// publishes on it. So no user that answers requests may publish anywhere
// but into inboxes and internal subjects: a run request whose reply
// subject is script.delete.x, a $KV subject or an internal subject is
// refused by the server when the answer is published, and nothing happens.
// (allow_responses would let an answering user publish on any reply
// subject at all, even past a deny list: it is not used.) JetStream
// subjects cannot be reply subjects at all (the server refuses them).
//
// New subjects go in the lists below: a subject a caller may request goes
// in callerPublish (the run-only user) and bridgePublish covers script.>;
// the subjects a node serves go in nodeSubscribe, what it publishes other
// than replies in nodePublish. The jobs (script.job.*) belong there too.

// InboxRoot starts every inbox subject: _INBOX.<user>.<id> for a user of
// the embedded server, _INBOX.<id> for an anonymous client.
const InboxRoot = "_INBOX"

// InboxPrefix is the inbox prefix of a user (nats.CustomInboxPrefix):
// the only inboxes that user may subscribe to.
func InboxPrefix(user string) string { return InboxRoot + "." + user }

// allInboxes is every inbox, of every user: where answers may go.
const allInboxes = InboxRoot + ".>"

// userName is what a user name may be: one subject token (it is part of
// the user's inbox prefix).
var userName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidUser checks a user name of the embedded server.
func ValidUser(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("nats user %q: use 1 to 64 letters, digits, '-' or '_'", name)
	}
	if strings.HasPrefix(name, internalUserPrefix) {
		return fmt.Errorf("nats user %q: names starting with %q are the server's own", name, internalUserPrefix)
	}
	return nil
}

// Role is a part of scripthost that connects to the bus.
type Role int

const (
	// RoleNode is an executor node: the service user.
	RoleNode Role = iota
	// RoleBridge is the HTTP bridge, which sends every kind of request.
	RoleBridge
	// RoleCatalog answers the catalog's subjects.
	RoleCatalog
	// RoleKV writes the scripts bucket.
	RoleKV
	// RoleJobs is the job service: it answers script.job.* and keeps the
	// jobs' streams and bucket.
	RoleJobs
)

const internalUserPrefix = "scripthost-internal-"

var internalUsers = map[Role]string{
	RoleBridge:  internalUserPrefix + "bridge",
	RoleCatalog: internalUserPrefix + "catalog",
	RoleKV:      internalUserPrefix + "kv",
	RoleJobs:    internalUserPrefix + "jobs",
}

func subjects(s ...string) *server.SubjectPermission {
	return &server.SubjectPermission{Allow: s}
}

// callerPublish is what a run-only caller may request: runs, the
// cancels of its runs (a run id is random, told to its caller alone), the
// list, the scripts, jobs (submit, get, cancel, list) and the services'
// descriptions. It follows a job by its id (script.job.get); the jobs'
// events, which carry every caller's results, are not its to subscribe.
func callerPublish() []string {
	return []string{RunAll, CancelPrefix + ">", ListSubject, GetPrefix + ">", "$SRV.>",
		JobSubmitPrefix + ">", JobGetPrefix + "*", JobCancelPrefix + "*", JobListSubject}
}

// RunPermissions are what the run-only user may do: request runs, the
// list and the scripts, ask the services who they are, and receive its
// replies in its own inboxes. The catalog's write subjects, JetStream,
// the internal subjects and every other user's inboxes are out of its
// reach.
func RunPermissions(user string) *server.Permissions {
	return &server.Permissions{
		Publish:   subjects(callerPublish()...),
		Subscribe: subjects(InboxPrefix(user) + ".>"),
	}
}

// nodePublish is what an executor node publishes besides replies: the
// offers of runs to other nodes, and reads of the buckets of scripts and
// of their data files (its mirror: stream info, direct gets, an ordered
// consumer and its flow control).
func nodePublish(in Internal) []string {
	jobsKV := "KV_" + JobsBucket
	pub := []string{allInboxes, in.All(), "$JS.API.INFO",
		// Jobs: a node pulls them from the work queue's consumer, acks
		// them, reads and writes their records and publishes their
		// events, output and callbacks (jobs/worker.go), and no more of
		// the JetStream API: it cannot change, purge or delete a stream
		// (an update could route a subject of its own into the scripts
		// bucket), nor make consumers. The server refuses $JS subjects as
		// reply subjects, and a node answers no request on the bus's own
		// subjects (ReservedReply), so these cannot be steered.
		"$JS.API.CONSUMER.INFO." + JobsStream + "." + JobsConsumer,
		"$JS.API.CONSUMER.MSG.NEXT." + JobsStream + "." + JobsConsumer,
		"$JS.API.STREAM.INFO." + jobsKV, "$JS.API.STREAM.MSG.GET." + jobsKV,
		"$JS.API.DIRECT.GET." + jobsKV, "$JS.API.DIRECT.GET." + jobsKV + ".>",
		"$JS.ACK." + JobsStream + ".>", "$KV." + JobsBucket + ".>",
		JobEventPrefix + ">", JobOutputPrefix + ">", JobCallbackSubject}
	for _, bucket := range []string{ScriptsBucket, FilesBucket} {
		stream := "KV_" + bucket
		pub = append(pub,
			"$JS.API.STREAM.INFO."+stream,
			"$JS.API.STREAM.MSG.GET."+stream,
			"$JS.API.DIRECT.GET."+stream, "$JS.API.DIRECT.GET."+stream+".>",
			"$JS.API.CONSUMER.CREATE."+stream, "$JS.API.CONSUMER.CREATE."+stream+".>",
			"$JS.API.CONSUMER.DELETE."+stream+".>",
			"$JS.API.CONSUMER.INFO."+stream+".>",
			"$JS.FC."+stream+".>",
		)
	}
	return pub
}

// NodePermissions are what the service user (executor nodes) may do.
func NodePermissions(user string, in Internal) *server.Permissions {
	return &server.Permissions{
		Publish:   subjects(nodePublish(in)...),
		Subscribe: subjects(RunAll, CancelPrefix+">", in.All(), JobKillPrefix+"*", "$SRV.>", InboxPrefix(user)+".>"),
	}
}

// internalPermissions are those of the serve process's own users.
func internalPermissions(role Role, in Internal) *server.Permissions {
	own := InboxPrefix(internalUsers[role]) + ".>"
	switch role {
	case RoleBridge:
		// It answers nothing: it may send every request, and ping the
		// nodes it watches.
		// It follows jobs by their events: an ordered consumer of the
		// events stream, made, read (pulled into its own inbox), asked
		// about and deleted by it, and nothing else of JetStream's.
		events := "$JS.API.CONSUMER.%s." + JobEventsStream + ".>"
		return &server.Permissions{
			Publish: subjects("script.>", in.All(), fmt.Sprintf(events, "CREATE"), fmt.Sprintf(events, "MSG.NEXT"),
				fmt.Sprintf(events, "INFO"), fmt.Sprintf(events, "DELETE")),
			Subscribe: subjects(own, JobEventPrefix+">", JobOutputPrefix+">")}
	case RoleCatalog:
		return &server.Permissions{
			Publish:   subjects(allInboxes),
			Subscribe: subjects(ListSubject, GetPrefix+">", CreateSubject, UpdatePrefix+">", DeletePrefix+">", "$SRV.>", own),
		}
	case RoleKV:
		// It answers nothing either.
		return &server.Permissions{
			Publish:   subjects("$JS.API.>", "$KV."+ScriptsBucket+".>", "$KV."+FilesBucket+".>"),
			Subscribe: subjects(own),
		}
	case RoleJobs:
		// It answers script.job.* and keeps the jobs on JetStream on one
		// connection: its answers go to inboxes only (ReservedReply, and
		// the server refuses $JS reply subjects).
		return &server.Permissions{
			Publish: subjects(allInboxes, "$JS.API.>", "$JS.ACK.>", "$KV."+JobsBucket+".>",
				"scripthost.jobs.>", JobEventPrefix+">", JobOutputPrefix+">"),
			Subscribe: subjects("script.job.>", "$SRV.>", "$JS.EVENT.ADVISORY.>", "scripthost.jobs.>", own),
		}
	}
	return &server.Permissions{Publish: subjects(), Subscribe: subjects()}
}

// auth sets the users of the embedded server: none (anyone may connect,
// as the seed did), or the service user, the server's own users and an
// optional run-only user.
func (s *Server) auth(cfg ServerConfig, opts *server.Options) error {
	switch {
	case cfg.User == "" && (cfg.Password != "" || cfg.RunUser != "" || cfg.RunPassword != ""):
		return errors.New("nats server: credentials without a service user")
	case cfg.User == "":
		return nil
	case cfg.Password == "":
		return errors.New("nats server: the service user needs a password")
	case cfg.RunUser == "" && cfg.RunPassword != "":
		return errors.New("nats server: a run-only password without a run-only user")
	case cfg.RunUser != "" && cfg.RunPassword == "":
		return errors.New("nats server: the run-only user needs a password")
	case cfg.RunUser != "" && cfg.RunUser == cfg.User:
		return errors.New("nats server: the run-only user must differ from the service user")
	}
	if err := ValidUser(cfg.User); err != nil {
		return err
	}
	if cfg.RunUser != "" {
		if err := ValidUser(cfg.RunUser); err != nil {
			return err
		}
	}
	in := NewInternal(cfg.Password)
	opts.Users = []*server.User{{Username: cfg.User, Password: cfg.Password, Permissions: NodePermissions(cfg.User, in)}}
	if cfg.RunUser != "" {
		opts.Users = append(opts.Users, &server.User{Username: cfg.RunUser, Password: cfg.RunPassword, Permissions: RunPermissions(cfg.RunUser)})
	}
	s.creds = map[Role]ConnConfig{RoleNode: {User: cfg.User, Password: cfg.Password}}
	for role, name := range internalUsers {
		pw, err := Secret()
		if err != nil {
			return err
		}
		opts.Users = append(opts.Users, &server.User{Username: name, Password: pw, Permissions: internalPermissions(role, in)})
		s.creds[role] = ConnConfig{User: name, Password: pw, InboxPrefix: InboxPrefix(name)}
	}
	return nil
}

// ReservedReply tells whether a reply subject (or a subject a header
// names for an answer) is one of the bus's own subjects, where no part of
// scripthost answers a request: the server's permissions keep the parts
// that answer off most of them; this check covers the rest (a node's
// jobs, the job service's streams).
func ReservedReply(subject string) bool {
	return strings.HasPrefix(subject, "$") || strings.HasPrefix(subject, "script.") || strings.HasPrefix(subject, "scripthost.")
}

// Secret is a new random secret: 32 bytes, hex.
func Secret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
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
