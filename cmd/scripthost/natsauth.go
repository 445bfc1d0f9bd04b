package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/scripthost/scripthost/bus"
)

// The bus is never weaker than the API: with an HTTP token set and no
// NATS credentials given, the embedded server's listener demands
// credentials that the server generates at its first start and keeps
// under --data-dir, readable by its own user alone.

// Users of generated credentials.
const (
	generatedUser    = "scripthost"
	generatedRunUser = "scripthost-run"
)

// credsDir is where generated credentials are kept.
func credsDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

// generatedCreds are the credentials of the embedded server's two users,
// and the files where other processes find them.
type generatedCreds struct {
	User, Password       string
	RunUser, RunPassword string
	// Files: the password and nats CLI context of each user.
	ServicePassword, ServiceContext string
	RunPasswordFile, RunContext     string
	// Created reports credentials made at this start (not read back).
	Created bool
}

// needsGeneratedCreds tells whether the embedded server must demand
// credentials that nobody gave.
func (c *serveConfig) needsGeneratedCreds() bool {
	return c.NATS == "" && c.NATSListen != bus.ListenNone && c.NATSUser == "" &&
		(c.Token != "" || c.RunToken != "")
}

// loadOrCreateCreds reads the credentials kept under dataDir, or makes
// new ones. A password file that others may read is replaced (its secret
// may have leaked).
func loadOrCreateCreds(dataDir string, log *slog.Logger) (generatedCreds, error) {
	if dataDir == "" {
		return generatedCreds{}, errors.New("generated credentials need a --data-dir to be kept in")
	}
	dir := credsDir(dataDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return generatedCreds{}, fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return generatedCreds{}, fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return generatedCreds{}, fmt.Errorf("--data-dir: %w", err)
	}
	g := generatedCreds{
		User: generatedUser, RunUser: generatedRunUser,
		ServicePassword: filepath.Join(dir, "service.password"), ServiceContext: filepath.Join(dir, "service.json"),
		RunPasswordFile: filepath.Join(dir, "run.password"), RunContext: filepath.Join(dir, "run.json"),
	}
	var err error
	var made bool
	if g.Password, made, err = keptSecret(g.ServicePassword, log); err != nil {
		return g, err
	}
	g.Created = made
	if g.RunPassword, made, err = keptSecret(g.RunPasswordFile, log); err != nil {
		return g, err
	}
	g.Created = g.Created || made
	return g, nil
}

// keptSecret reads the secret in path, or writes a new one there (0600).
func keptSecret(path string, log *slog.Logger) (secret string, created bool, err error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0:
		data, err := os.ReadFile(path)
		if err != nil {
			return "", false, err
		}
		if s := strings.TrimSpace(string(data)); s != "" {
			return s, false, nil
		}
	case err == nil:
		log.Warn("replacing NATS credentials that other users could read, or that are not a plain file", "file", path, "mode", fi.Mode().String())
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, err
	}
	secret, err = bus.Secret()
	if err != nil {
		return "", false, err
	}
	if err := writePrivate(path, []byte(secret+"\n")); err != nil {
		return "", false, err
	}
	return secret, true, nil
}

// writePrivate replaces path with data, readable by the owner alone.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// natsContext is a context file of the nats CLI (nats --context FILE),
// which other services can read too.
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	InboxPrefix string `json:"inbox_prefix"`
}

// writeContexts writes the nats CLI contexts of both users for url.
func (g generatedCreds) writeContexts(url string) error {
	for _, c := range []struct {
		path, desc, user, password string
	}{
		{g.ServiceContext, "scripthost service user: executor nodes", g.User, g.Password},
		{g.RunContext, "scripthost run-only user: run, list and read scripts", g.RunUser, g.RunPassword},
	} {
		data, err := json.MarshalIndent(natsContext{Description: c.desc, URL: url, User: c.user, Password: c.password,
			InboxPrefix: bus.InboxPrefix(c.user)}, "", "  ")
		if err != nil {
			return err
		}
		if err := writePrivate(c.path, append(data, '\n')); err != nil {
			return err
		}
	}
	return nil
}
