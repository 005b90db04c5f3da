package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// Keys of the domain state; see the package documentation.
const (
	keyIdentity   = "v1/identity"
	keyPhase      = "v1/phase"
	keyPosition   = "v1/position"
	keyPostData   = "v1/post_data_done"
	prefixPlan    = "v1/plan/"
	prefixDone    = "v1/done/"
	chunkIDDigits = 10
)

// KeyPart escapes s for use as one segment of a key: every byte other than
// an ASCII letter, digit, '_', '.' or '-' becomes %XX (upper-case hex). The
// result never contains '/', and different inputs give different results,
// so "<area>/" + KeyPart(a) + "/" is never a prefix of a key built from
// another name b.
func KeyPart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keptByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

func keptByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// planKey is the key of a table's plan.
func planKey(table string) string { return prefixPlan + KeyPart(table) }

// donePrefix is the prefix of the done marks of one table, ending in '/'.
func donePrefix(table string) string { return prefixDone + KeyPart(table) + "/" }

// doneKey is the key of the done mark of one chunk.
func doneKey(table string, chunk int) string {
	return fmt.Sprintf("%s%0*d", donePrefix(table), chunkIDDigits, chunk)
}

// chunkFromDoneKey parses the chunk id at the end of a done key that starts
// with prefix.
func chunkFromDoneKey(key, prefix string) (int, error) {
	id, err := strconv.Atoi(strings.TrimPrefix(key, prefix))
	if err != nil || id < 0 {
		return 0, fmt.Errorf("malformed chunk key %q", key)
	}
	return id, nil
}
