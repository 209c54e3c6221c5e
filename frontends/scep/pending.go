package scep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certgate/certgate/backends"
	"github.com/certgate/certgate/gateway"
	"github.com/certgate/certgate/gateway/cmp"
	"github.com/certgate/certgate/gateway/store"
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

// pendingTable maps a profile and SCEP transactionID to a pending enrollment, in
// memory. The Handler uses it when it has no Store.
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

// put records entry. It returns false when the table is full of unexpired entries.
func (t *pendingTable) put(entry *pendingEnrollment, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[string]*pendingEnrollment{}
	}
	if _, exists := t.entries[entry.tx.key]; !exists && len(t.entries) >= maxPending {
		for key, old := range t.entries {
			if now.After(old.expires) {
				delete(t.entries, key)
			}
		}
		if len(t.entries) >= maxPending {
			return false
		}
	}
	t.entries[entry.tx.key] = entry
	return true
}

func (t *pendingTable) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// pendingRecord is a pending enrollment as the store keeps it, so that a client can
// poll after a restart or through another instance that shares the store.
type pendingRecord struct {
	Profile          string             `json:"profile"`
	Requester        backends.Requester `json:"requester"`
	Sender           []byte             `json:"sender"`
	SignerKey        []byte             `json:"signer_key"`
	CMPTransactionID []byte             `json:"cmp_transaction_id"`
	RecipNonce       []byte             `json:"recip_nonce"`
}

// storeFrontend names the SCEP frontend's rows among the store's pending requests.
const storeFrontend = "scep"

// getPending returns the unexpired pending enrollment for key, or nil.
func (h *Handler) getPending(ctx context.Context, key string) (*pendingEnrollment, error) {
	now := time.Now()
	if h.Store == nil {
		return h.pending.get(key, now), nil
	}
	state, err := h.Store.Pending(ctx, storeFrontend, key, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var record pendingRecord
	if err := json.Unmarshal(state, &record); err != nil {
		return nil, fmt.Errorf("stored pending SCEP enrollment: %w", err)
	}
	requester := record.Requester
	return &pendingEnrollment{
		tx: transaction{
			key:       key,
			origin:    gateway.Origin{Frontend: "scep", Profile: record.Profile, Verified: &requester},
			sender:    cmp.GeneralName{Raw: record.Sender},
			signerKey: record.SignerKey,
		},
		cmpTransactionID: record.CMPTransactionID,
		recipNonce:       record.RecipNonce,
	}, nil
}

// putPending records the router's latest waiting response for tx. It returns false
// when the limit of pending enrollments is reached, and the client's poll then fails
// with badCertId.
func (h *Handler) putPending(ctx context.Context, tx *transaction, resp *cmp.Message) (bool, error) {
	now := time.Now()
	entry := &pendingEnrollment{tx: *tx, cmpTransactionID: resp.Header.TransactionID,
		recipNonce: resp.Header.SenderNonce, expires: now.Add(pendingTTL)}
	if h.Store == nil {
		return h.pending.put(entry, now), nil
	}
	if existing, err := h.getPending(ctx, tx.key); err != nil {
		return false, err
	} else if existing == nil {
		n, err := h.Store.CountPending(ctx, storeFrontend, now)
		if err != nil {
			return false, err
		}
		if n >= maxPending {
			return false, nil
		}
	}
	state, err := json.Marshal(pendingRecord{
		Profile: tx.origin.Profile, Requester: *tx.origin.Verified, Sender: tx.sender.Raw,
		SignerKey: tx.signerKey, CMPTransactionID: entry.cmpTransactionID, RecipNonce: entry.recipNonce,
	})
	if err != nil {
		return false, err
	}
	return true, h.Store.PutPending(ctx, storeFrontend, tx.key, state, entry.expires)
}

// removePending deletes the pending enrollment for key.
func (h *Handler) removePending(ctx context.Context, key string) error {
	if h.Store == nil {
		h.pending.remove(key)
		return nil
	}
	return h.Store.DeletePending(ctx, storeFrontend, key)
}
