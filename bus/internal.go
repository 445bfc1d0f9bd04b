package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/nats-io/nuid"
)

// Internal names the subjects of the executors' own protocol: the offers
// of runs to nodes with a free slot and the nodes' liveness subjects.
// They carry a token derived from the service credentials, so that a
// client who has not got those credentials cannot name them (to publish
// there, or to make a node publish there by naming one as a reply
// subject or header). Nodes that join with the same credentials derive
// the same token; every user but the service user is refused them by the
// embedded server's permissions (users.go).
type Internal struct {
	token string
}

// NewInternal derives the internal subjects from a secret shared by
// every node of the bus: the service user's password. An empty secret
// (a bus without credentials, open to everyone anyway) gives a fixed
// token.
func NewInternal(secret string) Internal {
	sum := sha256.Sum256([]byte("scripthost internal subjects\x00" + secret))
	return Internal{token: hex.EncodeToString(sum[:12])}
}

// InternalFromURL derives the internal subjects from credentials: the
// password given, else one found in the NATS URL list.
func InternalFromURL(urls, password string) Internal {
	if password == "" {
		for _, p := range strings.Split(urls, ",") {
			if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok {
					password = pw
				} else {
					password = u.User.Username() // a token
				}
				break
			}
		}
	}
	return NewInternal(password)
}

func (in Internal) prefix() string {
	if in.token == "" {
		in = NewInternal("")
	}
	return "scripthost." + in.token + "."
}

// All is the wildcard of every internal subject (for permissions).
func (in Internal) All() string { return in.prefix() + ">" }

// SpareSubject offers a run of the named script to a node with a free
// slot. Only nodes with a free slot are subscribed, in SpareQueue.
func (in Internal) SpareSubject(name string) string { return in.prefix() + "spare." + name }

// SpareAll is the wildcard of the offers.
func (in Internal) SpareAll() string { return in.prefix() + "spare.>" }

// SpareName takes the script name from an offer's subject.
func (in Internal) SpareName(subject string) (string, bool) {
	return NameFrom(subject, in.prefix()+"spare.")
}

// PeersSubject is where an executor node announces itself as it starts
// serving (its alive subject as the body, this subject as the reply), and
// where the nodes that hear it answer with theirs: each then knows it has
// peers, which may offer it runs (SpareSubject).
func (in Internal) PeersSubject() string { return in.prefix() + "peers" }

// NewAlive is a new liveness subject for a node: it answers there while
// it is up, and callers watch the node running their request through it.
func (in Internal) NewAlive() string { return in.prefix() + "alive." + nuid.Next() }

// IsAlive tells whether subject is a liveness subject of this bus, so
// that a caller pings only what a node may have announced.
func (in Internal) IsAlive(subject string) bool {
	rest, ok := strings.CutPrefix(subject, in.prefix()+"alive.")
	return ok && rest != "" && !strings.ContainsAny(rest, ".*> \t\r\n")
}

// Has tells whether subject is one of the internal subjects of this bus:
// a node never answers a request there, whatever its reply subject or
// headers say.
func (in Internal) Has(subject string) bool {
	return strings.HasPrefix(subject, in.prefix())
}
