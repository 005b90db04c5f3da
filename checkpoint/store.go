package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Sizes of the badger database. The store is small (a few thousand keys
// plus spilled transactions), so memory tables and caches are kept small.
const (
	memTableSize     = 8 << 20
	numMemtables     = 2
	blockCacheSize   = 8 << 20
	indexCacheSize   = 4 << 20
	valueLogFileSize = 16 << 20
	// Values at least this big go to the value log instead of the LSM tree,
	// so that big values (spilled transactions) are not rewritten by every
	// compaction; value-log GC reclaims their space.
	valueThreshold = 64 << 10

	// gcDiscardRatio is the share of a value log file that must be garbage
	// before GC rewrites it.
	gcDiscardRatio = 0.5
	// defaultGCInterval is used by StartGC when given no positive interval.
	defaultGCInterval = 10 * time.Minute
	// updateRetries bounds how often Update re-runs its function after a
	// conflict with a concurrent Update; it waits a random time, growing up
	// to maxConflictBackoff, before each retry.
	updateRetries      = 100
	maxConflictBackoff = 50 * time.Millisecond
	// deleteBatch is how many keys DeletePrefix collects per round.
	deleteBatch = 10000
	// lockFileName is the name of badger's lock file in the state dir.
	lockFileName = "LOCK"
)

// Store is a pipeline's local state, a badger database in its state dir.
// It is safe for concurrent use. Close it when done; methods called after
// Close return an error.
type Store struct {
	dir string
	db  *badger.DB
	log *slog.Logger

	mu     sync.Mutex // guards closing the store and starting GC loops
	closed atomic.Bool
	stop   chan struct{} // closed by Close to stop GC loops
	wg     sync.WaitGroup
}

// InUseError is the error Open returns when another process (or this one)
// already has the state dir open. Match it with errors.As.
type InUseError struct {
	// Dir is the state dir.
	Dir string
	// PID is the process id recorded in the dir's lock file, 0 if unknown.
	PID int
	// Err is badger's error.
	Err error
}

// Error says which dir is in use, by which process, and what to do.
func (e *InUseError) Error() string {
	holder := "pid unknown"
	switch {
	case e.PID == os.Getpid():
		holder = fmt.Sprintf("pid %d: this process already has it open", e.PID)
	case e.PID > 0:
		holder = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("checkpoint: state dir %s is in use by another sluice process (%s); "+
		"stop that process, or give this pipeline its own state dir", e.Dir, holder)
}

// Unwrap returns badger's error.
func (e *InUseError) Unwrap() error { return e.Err }

// Open opens the state dir dir, creating it if needed. The dir gets
// owner-only permissions (0700), also when it exists already. Badger's
// warnings and errors go to log (nil discards them).
//
// Opening a dir that another process holds open fails with an *InUseError.
func Open(ctx context.Context, dir string, log *slog.Logger) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint: open state dir %s: %w", dir, err)
	}
	if dir == "" {
		return nil, errors.New("checkpoint: open state dir: no dir given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: create state dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: set permissions 0700 on state dir %s: %w", dir, err)
	}

	opts := badger.DefaultOptions(dir).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		WithNumCompactors(2).
		WithSyncWrites(true).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log: log.With("component", "badger", "dir", dir)})

	db, err := badger.Open(opts)
	if err != nil {
		if isLockError(err) {
			return nil, &InUseError{Dir: dir, PID: lockPID(dir), Err: err}
		}
		return nil, fmt.Errorf("checkpoint: open state dir %s: %w", dir, err)
	}
	return &Store{dir: dir, db: db, log: log, stop: make(chan struct{})}, nil
}

// isLockError reports whether err is badger failing to lock its directory
// because another process holds the lock. Badger flattens the error into
// text, so the text is checked too.
func isLockError(err error) bool {
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Another process is using this Badger database") ||
		strings.Contains(msg, "resource temporarily unavailable")
}

// lockPID reads the process id that badger wrote into the dir's lock file;
// 0 when it cannot be read.
func lockPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// Dir returns the state dir.
func (s *Store) Dir() string { return s.dir }

// Close stops the GC loops started by StartGC, runs value-log GC once and
// closes the database. Calling Close again returns nil. Close must not run
// concurrently with other methods of s.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()

	gcErr := s.runGC()
	if err := s.db.Close(); err != nil {
		return errors.Join(gcErr, fmt.Errorf("checkpoint: close state dir %s: %w", s.dir, err))
	}
	return gcErr
}

// RunGC runs badger's value-log GC until it finds nothing more to rewrite.
// A GC already running elsewhere is not an error.
func (s *Store) RunGC() error {
	if err := s.check(); err != nil {
		return err
	}
	return s.runGC()
}

func (s *Store) runGC() error {
	for {
		err := s.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue // a file was rewritten; there may be more
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("checkpoint: value log GC in %s: %w", s.dir, err)
		}
	}
}

// StartGC runs RunGC every interval (10 minutes when interval <= 0) in a
// goroutine until ctx ends or the store is closed. GC errors are logged as
// warnings.
func (s *Store) StartGC(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = defaultGCInterval
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case <-t.C:
				if err := s.runGC(); err != nil {
					s.log.WarnContext(ctx, "checkpoint: periodic value log GC failed", "dir", s.dir, "err", err)
				}
			}
		}
	}()
}

// check returns an error when the store is closed.
func (s *Store) check() error {
	if s.closed.Load() {
		return fmt.Errorf("checkpoint: state dir %s: store is closed", s.dir)
	}
	return nil
}

// Get reads key and decodes its JSON value into v. found is false (and v
// untouched) when the key does not exist. v may be nil to test presence.
func (s *Store) Get(key string, v any) (found bool, err error) {
	if err := s.check(); err != nil {
		return false, err
	}
	err = s.db.View(func(txn *badger.Txn) error {
		found, err = txGet(txn, key, v)
		return err
	})
	return found, err
}

// Put stores v, JSON-encoded, under key. The write is durable when Put
// returns nil.
func (s *Store) Put(key string, v any) error {
	return s.Update(func(tx *Tx) error { return tx.Put(key, v) })
}

// Delete removes key. Deleting a missing key is not an error.
func (s *Store) Delete(key string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(key) })
}

// DeletePrefix removes every key that starts with prefix, which must not be
// empty. A prefix with many keys is removed in several transactions: after
// a crash, part of them may remain (call DeletePrefix again). Use Update to
// delete a few keys atomically.
func (s *Store) DeletePrefix(prefix string) error {
	if err := s.check(); err != nil {
		return err
	}
	if prefix == "" {
		return errors.New("checkpoint: delete prefix: empty prefix would delete everything")
	}
	if err := s.deletePrefix([]byte(prefix), nil, nil); err != nil {
		return fmt.Errorf("checkpoint: delete prefix %q: %w", prefix, err)
	}
	return nil
}

// deletePrefix removes every key with prefix. first, when not nil, runs
// before the deletions and last after them, in the same transaction when
// everything fits in one: then the whole operation is atomic. Deletions that
// do not fit spill into further transactions, committed in order, so that
// first's writes commit no later than the first deletions and last's writes
// no earlier than the last ones.
func (s *Store) deletePrefix(prefix []byte, first, last func(*badger.Txn) error) error {
	for {
		keys, err := s.collectKeys(prefix, deleteBatch)
		if err != nil {
			return err
		}
		if len(keys) < deleteBatch {
			return s.writeSpill(first, keys, last)
		}
		if err := s.writeSpill(first, keys, nil); err != nil {
			return err
		}
		first = nil
	}
}

// collectKeys returns up to limit keys with prefix, in key order.
func (s *Store) collectKeys(prefix []byte, limit int) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix) && len(keys) < limit; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, err
}

// writeSpill runs first (if any), deletes keys and then runs last (if any),
// committing when a transaction gets too big and continuing in a new one.
// The operations commit in the order given.
func (s *Store) writeSpill(first func(*badger.Txn) error, keys [][]byte, last func(*badger.Txn) error) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }() // the last transaction; no-op after Commit
	if first != nil {
		if err := first(txn); err != nil {
			return err
		}
	}
	for _, k := range keys {
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = txn.Delete(k)
		}
		if err != nil {
			return err
		}
	}
	if last != nil {
		err := last(txn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = last(txn)
		}
		if err != nil {
			return err
		}
	}
	return txn.Commit()
}

// Scan calls fn for every key that starts with prefix, in key order, with
// the key and its raw (JSON) value. fn may keep raw. It may call other
// methods of s, but sees a snapshot taken when Scan began. An error from fn
// stops the scan and is returned as is.
func (s *Store) Scan(prefix string, fn func(key string, raw []byte) error) error {
	if err := s.check(); err != nil {
		return err
	}
	p := []byte(prefix)
	var fnErr error
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchSize = 16
		opts.Prefix = p
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			item := it.Item()
			raw, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("checkpoint: scan %q: read %q: %w", prefix, item.Key(), err)
			}
			if err := fn(string(item.Key()), raw); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("checkpoint: scan %q: %w", prefix, err)
	}
	return nil
}

// Tx is a write transaction handed to the function given to Update. Its
// writes commit together, or not at all. A Tx is valid only during that
// function and is not safe for concurrent use.
type Tx struct {
	txn *badger.Txn
}

// Get reads key as of the transaction, including the transaction's own
// writes, and decodes its JSON value into v (which may be nil to test
// presence).
func (t *Tx) Get(key string, v any) (found bool, err error) {
	return txGet(t.txn, key, v)
}

// Put stores v, JSON-encoded, under key when the transaction commits.
func (t *Tx) Put(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("checkpoint: encode %q: %w", key, err)
	}
	return t.putRaw(key, raw)
}

func (t *Tx) putRaw(key string, raw []byte) error {
	if err := t.txn.Set([]byte(key), raw); err != nil {
		return fmt.Errorf("checkpoint: write %q: %w", key, txErr(err))
	}
	return nil
}

// Delete removes key when the transaction commits.
func (t *Tx) Delete(key string) error {
	if err := t.txn.Delete([]byte(key)); err != nil {
		return fmt.Errorf("checkpoint: delete %q: %w", key, txErr(err))
	}
	return nil
}

// txErr adds advice to badger's "too big" error.
func txErr(err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("too many or too large writes for one atomic update (split it): %w", err)
	}
	return err
}

// Update runs fn with a write transaction and commits its writes
// atomically and durably when fn returns nil; when fn returns an error
// nothing is written and that error is returned as is. If a concurrent
// Update changed a key fn read, fn runs again with a fresh Tx, so fn must
// have no effects outside tx.
func (s *Store) Update(fn func(tx *Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var fnErr error
		err := s.db.Update(func(txn *badger.Txn) error {
			fnErr = fn(&Tx{txn: txn})
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if errors.Is(err, badger.ErrConflict) && attempt < updateRetries {
			backoff := min(time.Millisecond<<min(attempt, 10), maxConflictBackoff)
			time.Sleep(rand.N(backoff) + time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("checkpoint: commit update in %s: %w", s.dir, err)
		}
		return nil
	}
}

// txGet reads key in txn and decodes its JSON value into v (if not nil).
func txGet(txn *badger.Txn, key string, v any) (bool, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint: read %q: %w", key, err)
	}
	if v == nil {
		return true, nil
	}
	err = item.Value(func(raw []byte) error {
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return true, fmt.Errorf("checkpoint: decode %q: %w", key, err)
	}
	return true, nil
}

// badgerLogger passes badger's warnings and errors to a slog.Logger and
// drops its info and debug messages.
type badgerLogger struct {
	log *slog.Logger
}

func (l badgerLogger) Errorf(format string, args ...any) {
	l.log.Error(trimMsg(format, args))
}

func (l badgerLogger) Warningf(format string, args ...any) {
	l.log.Warn(trimMsg(format, args))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

func trimMsg(format string, args []any) string {
	return strings.TrimSpace(fmt.Sprintf(format, args...))
}
