package engine

import "github.com/sluicehq/sluice/plugins/postgres"

// defaultRecentXids bounds the transactions recentXids remembers, over all
// tables (a few bytes each).
const defaultRecentXids = 1 << 16

// recentXids remembers, per source table, the transactions the stream
// delivered that a later chunk's snapshot may not see yet: PostgreSQL
// writes a commit record, which the stream decodes, before it removes the
// transaction from its list of running ones, and that can take long (a
// synchronous standby that does not answer keeps it there until the
// wait is cancelled). A chunk read while such a transaction still counts
// as running misses its change, which the stream already applied before
// the chunk's low mark: the chunk would write the older value over it.
//
// A transaction is forgotten as soon as a snapshot of the source taken
// after it ended sees it (the horizon: every later snapshot sees it too),
// so what is kept is the transactions of the last moments and those still
// waiting, not the backlog of a lagging stream. Past the limit everything
// is forgotten and the highest id forgotten is remembered instead: until
// a horizon shows that all transactions up to it have ended, a chunk whose
// snapshot may have one of them running is read again.
//
// The stream loop owns it.
type recentXids struct {
	byTable map[uint32]map[uint32]struct{}
	n       int
	limit   int
	// The last pair added, to skip the other changes of a transaction.
	lastXid, lastOID uint32
	hasLast          bool
	// horizon is the latest snapshot applied.
	horizon *postgres.XidSnapshot
	// lost says transactions were forgotten at the limit; lostHi is the
	// highest of them.
	lost   bool
	lostHi uint32
}

func newRecentXids(limit int) *recentXids {
	if limit <= 0 {
		limit = defaultRecentXids
	}
	return &recentXids{byTable: map[uint32]map[uint32]struct{}{}, limit: limit}
}

// advance applies a newer horizon: the transactions it sees are forgotten.
func (t *recentXids) advance(h *postgres.XidSnapshot) {
	if h == nil || h == t.horizon {
		return
	}
	t.horizon = h
	t.hasLast = false
	for oid, xids := range t.byTable {
		for x := range xids {
			if h.Sees(x) {
				delete(xids, x)
				t.n--
			}
		}
		if len(xids) == 0 {
			delete(t.byTable, oid)
		}
	}
	if t.lost && postgres.XidBefore(t.lostHi, h.Xmin) {
		t.lost = false // every transaction up to lostHi had ended
	}
}

// add notes that committed transaction xid changed table oid.
func (t *recentXids) add(xid, oid uint32) {
	if t.hasLast && xid == t.lastXid && oid == t.lastOID {
		return
	}
	t.lastXid, t.lastOID, t.hasLast = xid, oid, true
	if t.horizon != nil && t.horizon.Sees(xid) {
		return // every chunk read from now on sees it
	}
	xids := t.byTable[oid]
	if xids == nil {
		xids = map[uint32]struct{}{}
		t.byTable[oid] = xids
	}
	if _, ok := xids[xid]; ok {
		return
	}
	if t.n >= t.limit {
		t.forgetAll()
		xids = map[uint32]struct{}{}
		t.byTable[oid] = xids
	}
	xids[xid] = struct{}{}
	t.n++
}

// forgetAll forgets every transaction, remembering the highest.
func (t *recentXids) forgetAll() {
	for _, xids := range t.byTable {
		for x := range xids {
			if !t.lost || postgres.XidBefore(t.lostHi, x) {
				t.lostHi = x
			}
			t.lost = true
		}
	}
	clear(t.byTable)
	t.n = 0
}

// of returns the transactions remembered for a table, and whether (and up
// to which id) some were forgotten at the limit.
func (t *recentXids) of(oid uint32) (xids []uint32, lost bool, lostHi uint32) {
	for x := range t.byTable[oid] {
		xids = append(xids, x)
	}
	return xids, t.lost, t.lostHi
}
