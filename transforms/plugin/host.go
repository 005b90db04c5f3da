package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms"
)

// Config says which plugin to run and how. It is what a `type: plugin`
// transform stage of a pipeline file holds.
type Config struct {
	// Path is the plugin executable. A relative path is taken from the
	// working directory (the pipeline loader resolves it against the
	// pipeline file first).
	Path string
	// SHA256, when set, pins the executable to the hex SHA-256 of its
	// contents: go-plugin checks it before every start, restarts included,
	// and a binary that does not match is refused with a permanent
	// *ChecksumError.
	SHA256 string
	// Env lists extra "KEY=value" environment variables for the plugin
	// process, on top of (and overriding) sluice's own environment: how a
	// stage passes its settings to the plugin.
	Env []string
	// Log receives go-plugin's messages and the plugin's stderr, every
	// record with plugin=<path>. Nil discards them.
	Log *slog.Logger
	// MaxRestarts is how many times a plugin that crashed (its process
	// died, or its connection broke) is started again within
	// RestartWindow; the crash after that makes Process return a permanent
	// *CrashError. Zero means 3; negative means a crash is never retried.
	MaxRestarts int
	// RestartWindow is the period over which crashes are counted. Zero
	// means 10 minutes.
	RestartWindow time.Duration
	// StartTimeout bounds how long a plugin may take to start and
	// handshake. Zero means one minute.
	StartTimeout time.Duration
	// Timeout, when set, bounds one call: a plugin that has not answered
	// a batch by then is taken as hung and handled as a crash (killed,
	// started again, the batch retried; counted against MaxRestarts).
	Timeout time.Duration
}

// Defaults applied to a zero Config field.
const (
	DefaultMaxRestarts   = 3
	DefaultRestartWindow = 10 * time.Minute
	DefaultStartTimeout  = time.Minute
)

// Error is an error a plugin returned for a batch: its own message, with
// the plugin's path. The batch was not applied; retrying it is up to the
// engine's retry policy.
type Error struct {
	Path    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("plugin %s: %s", e.Path, e.Message) }

// CrashError says a plugin crashed more often than Config.MaxRestarts
// allows within Config.RestartWindow. Process returns it wrapped in a
// transforms.PermanentError, so the pipeline parks: the batch was not
// applied and the position is saved.
type CrashError struct {
	Path     string
	Crashes  int           // crashes within the window, this one included
	Restarts int           // restarts allowed within the window
	Window   time.Duration // the window
	// LastWords is the panic line of the last crash, or the last line the
	// process wrote to stderr.
	LastWords string
	Err       error // the last crash as the host saw it
}

func (e *CrashError) Error() string {
	msg := fmt.Sprintf("plugin %s crashed %d times within %s (max_restarts %d); parking the pipeline with the batch not applied: %v",
		e.Path, e.Crashes, e.Window, e.Restarts, e.Err)
	if e.LastWords != "" {
		msg += "; its last words: " + e.LastWords
	}
	return msg
}

// Unwrap returns the last crash.
func (e *CrashError) Unwrap() error { return e.Err }

// ChecksumError says the plugin binary does not match the SHA256 pin. It
// is returned wrapped in a transforms.PermanentError.
type ChecksumError struct {
	Path   string
	Pinned string // hex SHA-256 from the pipeline
	Actual string // hex SHA-256 of the file (empty if it could not be read)
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("plugin %s: sha256 of the file is %s but the pipeline pins %s: refusing to start it (if this binary is the one you trust, set sha256 to its digest)",
		e.Path, e.Actual, e.Pinned)
}

// Transform runs one plugin process and sends it each batch. It
// implements transforms.Transform; Open returns it started.
type Transform struct {
	cfg  Config
	path string // absolute
	pin  []byte // nil: no pin
	log  *slog.Logger

	mu       sync.Mutex
	cur      *instance
	crashes  []time.Time // within the window
	restarts int         // since Open
	closed   bool

	cacheMu sync.Mutex
	cache   relCache
}

var _ transforms.Transform = (*Transform)(nil)

// instance is one plugin process.
type instance struct {
	client *goplugin.Client
	stub   *stub
	stderr *tail
}

// Open checks cfg, starts the plugin and returns it ready for Process. A
// checksum mismatch, a binary that is not a sluice transform plugin, or an
// invalid Config is a permanent error.
func Open(ctx context.Context, cfg Config) (*Transform, error) {
	if cfg.Path == "" {
		return nil, transforms.Permanent(errors.New("plugin: path is empty"))
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, transforms.Permanent(fmt.Errorf("plugin %s: %w", cfg.Path, err))
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, transforms.Permanent(fmt.Errorf("plugin %s: %w", path, err))
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return nil, transforms.Permanent(fmt.Errorf("plugin %s: not an executable file (mode %s)", path, st.Mode()))
	}
	t := &Transform{cfg: cfg, path: path, log: cfg.Log, cache: relCache{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("plugin", path)
	if cfg.SHA256 != "" {
		pin, err := hex.DecodeString(strings.TrimSpace(cfg.SHA256))
		if err != nil || len(pin) != sha256.Size {
			return nil, transforms.Permanent(fmt.Errorf("plugin %s: sha256 %q is not 64 hex digits", path, cfg.SHA256))
		}
		t.pin = pin
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, transforms.Permanent(fmt.Errorf("plugin %s: env entry %q is not KEY=value", path, kv))
		}
	}
	if t.cfg.MaxRestarts == 0 {
		t.cfg.MaxRestarts = DefaultMaxRestarts
	}
	if t.cfg.RestartWindow <= 0 {
		t.cfg.RestartWindow = DefaultRestartWindow
	}
	if t.cfg.StartTimeout <= 0 {
		t.cfg.StartTimeout = DefaultStartTimeout
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inst, err := t.start()
	if err != nil {
		return nil, err
	}
	t.cur = inst
	return t, nil
}

// Restarts returns how many times the plugin has been started again after
// a crash since Open.
func (t *Transform) Restarts() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.restarts
}

// Process sends b to the plugin and returns its result; b is not modified.
// An error the plugin returns comes back as *Error. If the plugin crashed
// or its connection broke, it is started again and the batch sent again,
// up to MaxRestarts times within RestartWindow; past that Process returns
// a *CrashError wrapped in a transforms.PermanentError.
func (t *Transform) Process(ctx context.Context, b *record.Batch) (*record.Batch, error) {
	if b == nil || len(b.Records) == 0 {
		return b, nil
	}
	req, rels := encodeBatch(b, nil)
	for {
		inst, err := t.instance()
		if err != nil {
			return nil, err
		}
		resp, err := t.call(ctx, inst, req)
		if err == nil {
			return t.result(b, resp, rels)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %s: %w", t.path, context.Cause(ctx))
		}
		switch status.Code(err) {
		case codes.Unimplemented:
			return nil, transforms.Permanent(fmt.Errorf("plugin %s is not a sluice transform plugin, or was built with an incompatible SDK: %w", t.path, err))
		case codes.ResourceExhausted:
			return nil, fmt.Errorf("plugin %s: %w", t.path, err)
		}
		if err := t.crashed(inst, err); err != nil {
			return nil, err
		}
	}
}

// call sends one request to inst within Config.Timeout.
func (t *Transform) call(ctx context.Context, inst *instance, req []byte) ([]byte, error) {
	if t.cfg.Timeout <= 0 {
		return inst.stub.call(ctx, req)
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, t.cfg.Timeout, errHung)
	defer cancel()
	resp, err := inst.stub.call(callCtx, req)
	if err != nil && ctx.Err() == nil && context.Cause(callCtx) == errHung {
		err = fmt.Errorf("no answer within %s (timeout): %w", t.cfg.Timeout, err)
	}
	return resp, err
}

var errHung = errors.New("plugin call timed out")

// result decodes the plugin's answer to b.
func (t *Transform) result(b *record.Batch, resp []byte, rels []*record.Relation) (*record.Batch, error) {
	t.cacheMu.Lock()
	d, err := decodeFrame(resp, rels, t.cache)
	t.cacheMu.Unlock()
	if err != nil {
		return nil, &Error{Path: t.path, Message: "returned an unreadable result: " + err.Error()}
	}
	if d.kind == kindError {
		return nil, &Error{Path: t.path, Message: d.msg}
	}
	if err := validate(d.batch); err != nil {
		return nil, &Error{Path: t.path, Message: "returned an invalid batch: " + err.Error()}
	}
	d.batch.End = b.End
	return d.batch, nil
}

// instance returns the running plugin process, starting it again if it
// exited since the last call (which counts as a crash).
func (t *Transform) instance() (*instance, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("plugin %s: transform is closed", t.path)
	}
	if t.cur != nil && t.cur.client.Exited() {
		if err := t.countCrash(t.cur, errors.New("plugin process exited")); err != nil {
			return nil, err
		}
	}
	for t.cur == nil {
		inst, err := t.start()
		if err == nil {
			t.cur = inst
			break
		}
		if transforms.IsPermanent(err) {
			return nil, err
		}
		if err := t.countCrash(nil, err); err != nil {
			return nil, err
		}
	}
	return t.cur, nil
}

// crashed handles a call to inst that failed for a reason other than the
// caller's context: the process is killed and the crash counted, unless
// another call already did so.
func (t *Transform) crashed(inst *instance, cause error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != inst {
		return nil // already replaced
	}
	return t.countCrash(inst, cause)
}

// countCrash records a crash of inst (nil: a failed start), kills it, and
// returns a permanent error if that is one crash too many. t.mu is held.
func (t *Transform) countCrash(inst *instance, cause error) error {
	var last string
	if inst != nil {
		inst.client.Kill() // waits until its stderr is read
		last = inst.stderr.lastWords()
		t.cur = nil
	}
	now := time.Now()
	kept := t.crashes[:0]
	for _, c := range t.crashes {
		if now.Sub(c) < t.cfg.RestartWindow {
			kept = append(kept, c)
		}
	}
	t.crashes = append(kept, now)
	allowed := max(t.cfg.MaxRestarts, 0)
	if len(t.crashes) > allowed {
		return transforms.Permanent(&CrashError{Path: t.path, Crashes: len(t.crashes), Restarts: allowed,
			Window: t.cfg.RestartWindow, LastWords: last, Err: cause})
	}
	t.restarts++
	t.log.Warn("plugin crashed; restarting it and retrying the batch",
		"error", cause.Error(), "last_words", last, "restart", len(t.crashes), "max_restarts", allowed)
	return nil
}

// start starts a plugin process and connects to it.
func (t *Transform) start() (*instance, error) {
	cmd := exec.Command(t.path)
	cmd.Env = append(os.Environ(), t.cfg.Env...)
	var secure *goplugin.SecureConfig
	if t.pin != nil {
		// A fresh hash each time: SecureConfig writes the file into it.
		secure = &goplugin.SecureConfig{Checksum: t.pin, Hash: sha256.New()}
	}
	stderr := &tail{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          goplugin.PluginSet{pluginName: &grpcPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has it, with cfg.Env taking precedence
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     t.cfg.StartTimeout,
		Logger:           newHCLogger(t.log),
		Stderr:           stderr,
		SyncStdout:       &lineLogger{l: t.log, level: slog.LevelInfo, args: []any{"stream", "stdout"}},
		SyncStderr:       &lineLogger{l: t.log, level: slog.LevelInfo, args: []any{"stream", "stderr"}},
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window),
			grpc.WithReadBufferSize(buffer), grpc.WithWriteBufferSize(buffer),
		},
	})
	inst := &instance{client: client, stderr: stderr}
	fail := func(err error) (*instance, error) {
		client.Kill()
		return nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
			return fail(transforms.Permanent(&ChecksumError{Path: t.path, Pinned: hex.EncodeToString(t.pin), Actual: fileSHA256(t.path)}))
		}
		if strings.Contains(err.Error(), "Incompatible API version") || strings.Contains(err.Error(), "Unsupported plugin protocol") {
			return fail(transforms.Permanent(fmt.Errorf("plugin %s: %w", t.path, err)))
		}
		client.Kill() // waits until its stderr is read
		if last := stderr.lastWords(); last != "" {
			err = fmt.Errorf("%w; its last words: %s", err, last)
		}
		return nil, fmt.Errorf("plugin %s: start: %w", t.path, err)
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		return fail(transforms.Permanent(fmt.Errorf("plugin %s: %w", t.path, err)))
	}
	inst.stub = raw.(*stub)
	return inst, nil
}

func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Close stops the plugin process. Process is not called after Close.
func (t *Transform) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.cur != nil {
		t.cur.client.Kill()
		t.cur = nil
	}
	return nil
}
