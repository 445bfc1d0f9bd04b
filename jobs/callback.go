package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// callbackTimeout bounds one callback POST.
const callbackTimeout = 10 * time.Second

// maxBackoff bounds the wait between two callback attempts.
const maxBackoff = 5 * time.Minute

// callbacks POSTs ended jobs to their X-Callback-Url: each is a message
// of the callback stream, acknowledged on a 2xx answer and otherwise
// delivered again after a backoff that doubles, until the retries are
// spent (the consumer's MaxDeliver).
func (m *Manager) callbacks() {
	defer m.wg.Done()
	client := &http.Client{Timeout: callbackTimeout}
	for m.ctx.Err() == nil {
		// The pull ends when the manager closes, not up to 2 s later.
		fetch, cancel := context.WithTimeout(m.ctx, 2*time.Second)
		batch, err := m.st.cbCons.Fetch(1, jetstream.FetchContext(fetch))
		if err != nil {
			cancel()
			select {
			case <-time.After(time.Second):
			case <-m.ctx.Done():
			}
			continue
		}
		for msg := range batch.Messages() {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.callback(client, msg)
			}()
		}
		cancel()
	}
}

func (m *Manager) callback(client *http.Client, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		msg.Term()
		return
	}
	var job struct {
		ID          string `json:"id"`
		CallbackURL string `json:"callback_url"`
	}
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.CallbackURL == "" {
		msg.Term()
		return
	}
	attempt := int(meta.NumDelivered)
	err = post(m.ctx, client, job.CallbackURL, msg.Data())
	if err == nil {
		msg.Ack()
		m.cfg.Log.Info("job callback", "job", job.ID, "url", job.CallbackURL, "attempt", attempt)
		return
	}
	if attempt > m.cfg.CallbackRetries {
		m.cfg.Log.Warn("job callback: giving up", "job", job.ID, "url", job.CallbackURL, "attempts", attempt, "err", err)
		msg.Term()
		return
	}
	delay := m.cfg.CallbackBackoff << (attempt - 1)
	if delay > maxBackoff || delay <= 0 {
		delay = maxBackoff
	}
	m.cfg.Log.Info("job callback failed; retrying", "job", job.ID, "url", job.CallbackURL, "attempt", attempt, "retry_in", delay, "err", err)
	msg.NakWithDelay(delay)
}

// errStatus is a callback answered with a status other than 2xx.
var errStatus = errors.New("callback answered")

func post(ctx context.Context, client *http.Client, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, callbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scripthost-callback")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}
