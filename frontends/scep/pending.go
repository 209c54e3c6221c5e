package scep

import (
	"sync"
	"time"

	"github.com/certgate/certgate/gateway/cmp"
)

// Limits of the table of pending enrollments. A client polls for as long as its
// operator lets it; a day covers a manual approval over a working day. The count bounds
// the memory that clients whose requests wait can take.
const (
	pendingTTL = 24 * time.Hour
	maxPending = 10000
)

// pendingEnrollment is a PKCSReq or RenewalReq to which the router responded with
// waiting, and the state that the next pollReq of its CMP transaction needs.
type pendingEnrollment struct {
	tx               transaction
	cmpTransactionID []byte
	recipNonce       []byte // senderNonce of the router's last response, echoed in pollReq
	expires          time.Time
}

// pendingTable maps a profile and SCEP transactionID to a pending enrollment.
//
// TODO: the table lives in memory, so pending enrollments are lost on restart, and with
// several gateway instances the client must reach the same one. The store has no
// place for this state yet.
type pendingTable struct {
	mu      sync.Mutex
	entries map[string]*pendingEnrollment
}

func pendingKey(p *Profile, req *Request) string {
	return p.Name + "\x00" + req.TransactionID
}

// get returns a copy of the unexpired entry for key, or nil.
func (t *pendingTable) get(key string, now time.Time) *pendingEnrollment {
	t.mu.Lock()
	defer t.mu.Unlock()
	entry, ok := t.entries[key]
	if !ok || now.After(entry.expires) {
		return nil
	}
	copied := *entry
	return &copied
}

// put records the router's latest waiting response for tx. It returns false when the
// table is full of unexpired entries, and the client's poll then fails with badCertId.
func (t *pendingTable) put(tx *transaction, resp *cmp.Message, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[string]*pendingEnrollment{}
	}
	if _, exists := t.entries[tx.key]; !exists && len(t.entries) >= maxPending {
		for key, entry := range t.entries {
			if now.After(entry.expires) {
				delete(t.entries, key)
			}
		}
		if len(t.entries) >= maxPending {
			return false
		}
	}
	t.entries[tx.key] = &pendingEnrollment{
		tx: *tx, cmpTransactionID: resp.Header.TransactionID, recipNonce: resp.Header.SenderNonce,
		expires: now.Add(pendingTTL),
	}
	return true
}

func (t *pendingTable) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}
