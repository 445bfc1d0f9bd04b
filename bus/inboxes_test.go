package bus

import "testing"

// TestInboxesOpenBeforeSubscribe: a wait opened before the subscription
// exists (a request that arrives while a node starts) is kept, and does not
// crash the server.
func TestInboxesOpenBeforeSubscribe(t *testing.T) {
	var in Inboxes
	subject, ch := in.Open(1)
	if subject == "" || ch == nil {
		t.Fatalf("Open gave %q, %v", subject, ch)
	}
	in.Close(subject)
}
