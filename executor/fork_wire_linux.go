package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// controlMsgMax is the size of the largest message of the control
// protocol, in either direction: what a reader's buffer takes (the warm
// interpreter is told it). Whatever may be larger travels in a memfd: the
// jobs from here always do (no job's arguments may sit in the warm
// interpreter's memory), and a job the warm interpreter hands a child
// does when it is larger.
const controlMsgMax = 64 << 10

// forkMsg is one message of the control protocol (see forkserver.py).
type forkMsg struct {
	Op   string   `json:"op"`
	ID   uint64   `json:"id,omitempty"`
	Path string   `json:"path,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	Args []string `json:"args,omitempty"`
	// The same as bytes, when they are not all UTF-8 (JSON would change
	// them): the child decodes them as CPython decodes its command line.
	BPath  []byte   `json:"bpath,omitempty"`
	BDir   []byte   `json:"bdir,omitempty"`
	BArgs  [][]byte `json:"bargs,omitempty"`
	Pid    int      `json:"pid,omitempty"`
	Status int      `json:"status,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Unbuffered runs the job with unbuffered stdout and stderr, as
	// PYTHONUNBUFFERED=1 does (a streamed run).
	Unbuffered bool `json:"unbuffered,omitempty"`
	// Imports are the modules a warm parent imported ("ready").
	Imports []string `json:"imports,omitempty"`
	// Memory is a warm parent's own memory once it has imported them.
	Memory int64 `json:"memory,omitempty"`
	fd     int   // a pidfd that came with "started" or a warm parent's "ready"
}

// read reads one message, with the pidfd it may carry.
func (w *warm) read() (forkMsg, error) {
	if w.rbuf == nil {
		w.rbuf, w.oob = make([]byte, controlMsgMax), make([]byte, unix.CmsgSpace(4*4))
	}
	buf, oob := w.rbuf, w.oob
	n, oobn, _, _, err := w.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return forkMsg{}, err
	}
	if n == 0 && oobn == 0 {
		return forkMsg{}, io.EOF
	}
	m := forkMsg{fd: -1}
	var fds []int
	if oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, scm := range scms {
				if got, err := unix.ParseUnixRights(&scm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeFds(fds)
		return forkMsg{}, fmt.Errorf("bad message from the warm interpreter: %w", err)
	}
	if len(fds) > 0 {
		m.fd = fds[0]
		closeFds(fds[1:])
	}
	return m, nil
}

func (w *warm) readLoop() {
	var err error
	for {
		var m forkMsg
		if m, err = w.read(); err != nil {
			break
		}
		w.mu.Lock()
		run := w.runs[m.ID]
		if m.Op == "exited" || m.Op == "failed" {
			delete(w.runs, m.ID)
		}
		w.mu.Unlock()
		if run == nil {
			if m.fd >= 0 {
				_ = unix.Close(m.fd)
			}
			continue
		}
		run.msgs <- m // never blocks: a run gets at most three messages
	}
	w.mu.Lock()
	w.deadErr = err
	if errors.Is(err, io.EOF) {
		w.deadErr = errWarmDead
	}
	close(w.dead)
	w.runs = nil
	w.mu.Unlock()
	_ = w.conn.Close()
	// Reap it now: it may be exiting, or be alive but unable to talk.
	select {
	case <-w.exited:
	case <-time.After(time.Second):
		w.kill()
	}
	if w.parent {
		w.r.parentDied(w)
		return
	}
	w.r.died(w)
}

// start registers run and sends its job with the child's ends of pio. The
// job itself travels in a memfd that the warm interpreter passes on to the
// child unread: no job's arguments ever sit in the warm interpreter's
// memory, which later children inherit (under the sandbox, the message
// names the run's folder).
func (w *warm) start(id uint64, run *forkRun, job Job, pio *procIO) error {
	w.mu.Lock()
	if w.runs == nil {
		w.mu.Unlock()
		return errWarmDead
	}
	w.runs[id] = run
	w.mu.Unlock()

	msg := forkMsg{Op: "run", ID: id, Path: job.Path, Dir: filepath.Dir(job.Path), Args: job.Args}
	if !allUTF8(job) {
		msg = forkMsg{Op: "run", ID: id, BPath: []byte(msg.Path), BDir: []byte(msg.Dir)}
		for _, a := range job.Args {
			msg.BArgs = append(msg.BArgs, []byte(a))
		}
	}
	msg.Unbuffered = job.Output != nil
	fds := []int{int(pio.child[0].Fd()), int(pio.child[1].Fd()), int(pio.child[2].Fd())}
	body, err := json.Marshal(msg)
	if err == nil {
		var memfd int
		if memfd, err = bigJob(body); err == nil {
			defer unix.Close(memfd)
			fds = append(fds, memfd)
			outer := forkMsg{Op: "run", ID: id}
			if w.r.sb != nil {
				// Under the sandbox, the run's folder (not its arguments)
				// beside the job: a sandbox slot keeps the last run's in
				// place where the slot's /tmp covers it.
				outer.Dir, outer.BDir = msg.Dir, msg.BDir
			}
			body, err = json.Marshal(outer)
		}
	}
	if err == nil {
		err = w.sendRaw(body, fds)
	}
	if err != nil {
		w.forget(id)
		if w.isDead() {
			return errWarmDead
		}
		return err
	}
	return nil
}

func allUTF8(job Job) bool {
	if !utf8.ValidString(job.Path) {
		return false
	}
	for _, a := range job.Args {
		if !utf8.ValidString(a) {
			return false
		}
	}
	return true
}

func bigJob(body []byte) (int, error) {
	fd, err := unix.MemfdCreate("scripthost-job", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	for rest := body; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err != nil {
			_ = unix.Close(fd)
			return -1, err
		}
		rest = rest[n:]
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (w *warm) forget(id uint64) {
	w.mu.Lock()
	if w.runs != nil {
		delete(w.runs, id)
	}
	w.mu.Unlock()
}

func (w *warm) send(m forkMsg, fds []int) {
	body, _ := json.Marshal(m)
	if err := w.sendRaw(body, fds); err != nil && !w.isDead() {
		w.r.cfg.Log.Error("writing to the warm interpreter", "err", err)
	}
}

func (w *warm) sendRaw(body []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := w.conn.WriteMsgUnix(body, oob, nil)
	return err
}

func closeFds(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
