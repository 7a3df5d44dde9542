package httpapi_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/google/go-cmp/cmp"
)

func deliveryEvents(patients ...string) []custos.EventInput {
	out := make([]custos.EventInput, len(patients))
	for i, p := range patients {
		out[i] = custos.EventInput{User: &custos.User{ID: "dr.grey", Roles: []string{"physician"}}, Action: custos.ActionRead,
			ResourceType: "Patient", ResourceID: p, PatientID: p, Source: "ehr-web"}
	}
	return out
}

func statusOf(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

// TestIdempotentDelivery: a request sent again with its key is answered
// with the first request's receipts and appends nothing; the same key with
// other events is refused; keys belong to the credential that sent them.
func TestIdempotentDelivery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := client.New(e.srv.URL, adminToken, nil)
	batch := deliveryEvents("p-1", "p-2", "p-3")
	first, err := c.AppendKeyed(ctx, "batch-0001", batch)
	if err != nil {
		t.Fatal(err)
	}
	size := e.size()
	again, err := c.AppendKeyed(ctx, "batch-0001", batch)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("a retry answered other receipts (-first +retry):\n%s", diff)
	}
	if e.size() != size {
		t.Fatalf("a retry appended %d records", e.size()-size)
	}
	stored, err := e.st.Event(ctx, first[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Delivery == nil || stored.Delivery.Key != "batch-0001" || stored.Delivery.Count != 3 {
		t.Fatalf("the first event's delivery is %+v", stored.Delivery)
	}

	if _, err := c.AppendKeyed(ctx, "batch-0001", deliveryEvents("p-9")); statusOf(err) != http.StatusConflict {
		t.Fatalf("the same key with other events answered %v, want 409", err)
	}
	if e.size() != size {
		t.Fatal("a refused reuse appended records")
	}

	other := client.New(e.srv.URL, e.newKey(custos.ScopeIngest), nil)
	size = e.size()
	if _, err := other.AppendKeyed(ctx, "batch-0001", batch); err != nil {
		t.Fatalf("another credential's key of the same name: %v", err)
	}
	if got := e.size() - size; got != 3 {
		t.Fatalf("another credential's batch appended %d records, want 3", got)
	}

	if r := e.do("POST", "/v1/events", adminToken, "application/json", ev("p-1"),
		"Idempotency-Key", "k-a", "Idempotency-Key", "k-b"); r.code != http.StatusBadRequest {
		t.Errorf("two keys: %d %s, want 400", r.code, r.body)
	}
	for _, key := range []string{"", "has space", "caf\u00e9", strings.Repeat("k", 129)} {
		r := e.do("POST", "/v1/events", adminToken, "application/json", ev("p-1"), "Idempotency-Key", key)
		if r.code != http.StatusBadRequest {
			t.Errorf("key %q: %d %s, want 400", key, r.code, r.body)
		}
	}
}

// TestIdempotentDeliveryRace: the same request sent by many goroutines at
// once is appended once, and every sender gets the same receipts.
func TestIdempotentDeliveryRace(t *testing.T) {
	e := newEnv(t)
	c := client.New(e.srv.URL, adminToken, nil)
	before := e.size()
	batch := deliveryEvents("p-1", "p-2")
	var wg sync.WaitGroup
	got := make([][]custos.Receipt, 16)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = c.AppendKeyed(context.Background(), "race-key", batch) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("sender %d: %v", i, errs[i])
		}
		if diff := cmp.Diff(got[0], got[i]); diff != "" {
			t.Fatalf("sender %d got other receipts:\n%s", i, diff)
		}
	}
	if n := e.size() - before; n != 2 {
		t.Fatalf("16 senders of one keyed request appended %d records, want 2", n)
	}
}

// TestPlantedDeliveryRow: a row written into the deliveries table behind
// Custos's back cannot make a request look delivered: the request is not
// acknowledged (its sender keeps it and retries), and nothing is appended.
func TestPlantedDeliveryRow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := client.New(e.srv.URL, adminToken, nil)
	rc, err := c.Append(ctx, deliveryEvents("p-1"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.st.Event(ctx, rc[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+e.st.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO deliveries (submitted_by, key, idx) VALUES (?, ?, ?)`,
		stored.SubmittedBy, "planted", int64(rc[0].Index)); err != nil {
		t.Fatal(err)
	}
	size := e.size()
	_, err = c.AppendKeyed(ctx, "planted", deliveryEvents("p-1"))
	if err == nil || statusOf(err) < 400 {
		t.Fatalf("a planted delivery row acknowledged a request: %v", err)
	}
	if e.size() != size {
		t.Fatal("records were appended")
	}
}
