# scripthost: `make help` lists the targets.
GO      ?= go
# As root, scripts run as nobody, who cannot run an interpreter under /root
# (a pyenv shim): make run takes the first python3 that the run user can
# run, python3 on PATH first. PYTHON=... chooses another.
PYTHON  ?= $(shell for p in "$$(command -v python3)" /usr/bin/python3 /usr/local/bin/python3; do \
             [ -x "$$p" ] || continue; \
             if [ "$$(id -u)" != 0 ] || setpriv --reuid=65534 --regid=65534 --clear-groups "$$p" -S -c pass 2>/dev/null; then echo "$$p"; exit; fi; \
           done; echo python3)
BIN     := bin/scripthost
FUZZTIME ?= 10000x
SOAKFOR ?= 3m

REDOCLY ?= redocly
# Other systems the binary builds for: the client commands, and serve
# without an executor (runs need Linux).
CROSS   ?= darwin/arm64 windows/amd64

.PHONY: help build run test fuzz bench soak vet cross lint clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/scripthost
	$(GO) build -o $(BIN) ./cmd/scripthost

run: build ## serve ./scripts on :3000 (NATS on 127.0.0.1:4222)
	./$(BIN) serve --scripts ./scripts --python $(PYTHON)

vet: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

cross: ## build every package for the systems of CROSS (default darwin/arm64 windows/amd64)
	@for p in $(CROSS); do echo "GOOS=$${p%/*} GOARCH=$${p#*/} go build ./..."; GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; done

lint: ## redocly lint of httpbridge/openapi.json (rules: redocly.yaml; npm install -g @redocly/cli@2.77.0)
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint httpbridge/openapi.json

test: vet cross ## the cross builds, all tests with the race detector, then each fuzz target briefly
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz

fuzz: ## run every fuzz target for FUZZTIME (default 10000x: a count, since Go 1.26's fuzz coordinator can fail a duration's end with "context deadline exceeded", go.dev/issue/75804)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench: ## bare spawn, spawn and fork modes (hello.py and numpy), sandbox on/off, streamed runs, cache hits, ratios (BASELINE=rev: compare)
	$(GO) run ./cmd/bench --python /usr/bin/python3 $(if $(BASELINE),--baseline $(BASELINE))

soak: ## a longer mixed load against a real server (SOAKFOR, default 3m)
	$(GO) test -race -count=1 -timeout 30m -v -run '^TestSoak$$' ./cmd/scripthost -args -soak -soak-for=$(SOAKFOR)

clean: ## remove build output
	rm -rf bin
