package bus

import "strings"

// Subjects and queue groups. A script name is always a valid subject suffix
// (the catalog's name rule forbids wildcards, spaces and empty tokens).
const (
	// RunPrefix starts the subject of a run request: script.run.<name>.
	RunPrefix = "script.run."
	// RunAll is the wildcard every executor node serves.
	RunAll = RunPrefix + ">"
	// ExecutorQueue is the queue group executor nodes share, so that each
	// run request reaches exactly one node.
	ExecutorQueue = "scripthost-executors"

	// ListSubject answers the sorted list of script names.
	ListSubject = "script.list"
	// GetPrefix starts script.get.<name>: the code and version of a script.
	GetPrefix = "script.get."
	// CreateSubject creates a script from {"name","code"}.
	CreateSubject = "script.create"
	// UpdatePrefix starts script.update.<name>: replace the code.
	UpdatePrefix = "script.update."
	// DeletePrefix starts script.delete.<name>.
	DeletePrefix = "script.delete."
	// CatalogQueue is the queue group of catalog instances.
	CatalogQueue = "scripthost-catalog"
)

// Headers carried on replies.
const (
	// HeaderNode names the executor node that produced a run result.
	HeaderNode = "X-Scripthost-Node"
	// HeaderCache is "hit" or "miss" on run replies.
	HeaderCache = "X-Cache"
	// HeaderNoCache on a run request ("true") bypasses the result cache.
	HeaderNoCache = "X-Scripthost-No-Cache"
	// HeaderErrorCode and HeaderError follow the NATS services (micro)
	// convention for error replies.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
	// HeaderRetryAfter on a 503 says in how many seconds to try again,
	// as HTTP's Retry-After does.
	HeaderRetryAfter = "Retry-After"
)

// Streaming and cancellation of a run (README: "Streaming and cancellation").
const (
	// HeaderStream ("true") on a run request asks for the run's output as
	// it comes: several messages to the request's reply subject before the
	// final result, each marked by HeaderEvent.
	HeaderStream = "X-Scripthost-Stream"
	// HeaderEvent marks the messages of a streamed run: EventStart (the
	// run has a node and an id, in HeaderRunID; no body), EventStdout and
	// EventStderr (the body is a chunk of that output, raw bytes), and
	// EventResult on the final reply.
	HeaderEvent = "X-Scripthost-Event"
	// HeaderRunID names a run in progress, for CancelSubject.
	HeaderRunID = "X-Scripthost-Run-Id"

	EventStart  = "start"
	EventStdout = "stdout"
	EventStderr = "stderr"
	EventResult = "result"

	// CancelPrefix starts script.cancel.<run id>: a request there kills the
	// run's process group and frees its slot. A run id is two tokens (the
	// node's, then the run's), both random.
	CancelPrefix = "script.cancel."
)

// CancelSubject is the subject that cancels the run with the given id.
func CancelSubject(runID string) string { return CancelPrefix + runID }

// NodeCancelAll is the subject a node serves for the cancels of its runs,
// whose ids all start with nodeToken.
func NodeCancelAll(nodeToken string) string { return CancelPrefix + nodeToken + ".*" }

// ValidRunID reports whether id has the shape of a run id: two non-empty
// tokens of letters and digits.
func ValidRunID(id string) bool {
	node, run, ok := strings.Cut(id, ".")
	return ok && alnum(node) && alnum(run)
}

func alnum(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// RunSubject is the subject that runs the named script.
func RunSubject(name string) string { return RunPrefix + name }

// GetSubject is the subject that reads the named script.
func GetSubject(name string) string { return GetPrefix + name }

// UpdateSubject is the subject that replaces the named script's code.
func UpdateSubject(name string) string { return UpdatePrefix + name }

// DeleteSubject is the subject that deletes the named script.
func DeleteSubject(name string) string { return DeletePrefix + name }

// NameFrom returns the script name that follows prefix in subject, and
// whether subject had that prefix and a non-empty name.
func NameFrom(subject, prefix string) (string, bool) {
	name, ok := strings.CutPrefix(subject, prefix)
	return name, ok && name != ""
}

// Scale-out: what executor nodes on other machines use.
const (
	// ScriptsBucket is the JetStream key-value bucket where the catalog
	// publishes every script (key: name, value: Script JSON) for nodes
	// that do not share its folder.
	ScriptsBucket = "scripthost-scripts"
	// FilesBucket holds the data files beside the scripts (key: file
	// name, value: its bytes), for the same nodes.
	FilesBucket = "scripthost-files"
	// SpareQueue is the queue group of the offers of runs to nodes with
	// a free slot (Internal.SpareSubject).
	SpareQueue = "scripthost-spare"
)

// Headers of the scale-out protocol.
const (
	// HeaderAck on a run request names a subject where the node that takes
	// the run announces itself (body: its alive subject; header: its name).
	HeaderAck = "X-Scripthost-Ack"
	// HeaderReplyTo carries the caller's reply subject on a handed-over run.
	HeaderReplyTo = "X-Scripthost-Reply-To"
)
