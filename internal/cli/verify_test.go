package cli

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

const ledgerSize = 40

// newLedger writes ledgerSize events in batches of 3 with a checkpoint every
// 10 leaves, closes cleanly (so the tail is signed) and returns the data dir.
// Checkpoints fall on batch boundaries: sizes 3 (the first commit), 15, 27,
// 39 and 40 (the tail, signed at close).
func newLedger(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l := ledgertest.Open(t, dir, "custos.test/verify", ledger.Config{CheckpointEvery: 10})
	for i := 0; i < ledgerSize; i += 3 {
		var evs []custos.Event
		for j := i; j < min(i+3, ledgerSize); j++ {
			evs = append(evs, custos.Event{User: custos.User{ID: fmt.Sprintf("user-%d", j), Roles: []string{}},
				Action: custos.ActionRead, ResourceType: "Patient", PatientID: fmt.Sprintf("p-%d", j%4),
				Outcome: custos.OutcomeSuccess})
		}
		if _, err := l.Seq.Append(ctx, "apikey:test", evs); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return dir
}

func runVerify(t *testing.T, dir string, extra ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"verify", "--data", dir, "--quiet"}, extra...), &out, &errb)
	return code, out.String() + errb.String()
}

func tamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func expectFailure(t *testing.T, dir, want string) {
	t.Helper()
	code, out := runVerify(t, dir)
	if code != exitProblem {
		t.Fatalf("verify exit %d, want %d (tampering found):\n%s", code, exitProblem, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("verify output does not name %q:\n%s", want, out)
	}
}

func TestVerifyIntact(t *testing.T) {
	dir := newLedger(t)
	code, out := runVerify(t, dir)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("OK: %d records", ledgerSize)) {
		t.Fatalf("verify of an intact ledger: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "signed checkpoints are intact") {
		t.Fatalf("no checkpoint summary:\n%s", out)
	}
}

func TestVerifyDetectsChangedField(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir, `UPDATE events SET user_id = 'mallory' WHERE idx = 17`)
	expectFailure(t, dir, "record 17: content does not match")
}

func TestVerifyDetectsChangedChanges(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir, `UPDATE events SET changes = '{"note":"added later"}' WHERE idx = 3`)
	expectFailure(t, dir, "record 3:")
}

func TestVerifyDetectsDeletedRecord(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir, `DELETE FROM events WHERE idx = 12`)
	expectFailure(t, dir, "record 12: missing")
}

func TestVerifyDetectsSwappedRecords(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir,
		`UPDATE events SET idx = -1 WHERE idx = 20`,
		`UPDATE events SET idx = 20 WHERE idx = 21`,
		`UPDATE events SET idx = 21 WHERE idx = -1`)
	expectFailure(t, dir, "record 20:")
}

func TestVerifyDetectsInsertedRecord(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir,
		`UPDATE events SET idx = idx + 1000000 WHERE idx >= 9`,
		`UPDATE events SET idx = idx - 1000000 + 1 WHERE idx >= 1000000`,
		`INSERT INTO events SELECT 9, ts, occurred_at, 'mallory', user_name, user_roles, action, resource_type,
			resource_id, patient_id, ip_address, user_agent, request_method, request_path, changes, outcome,
			status_code, source, request_id, session_id, purpose_of_use, break_glass, break_glass_reason,
			leaf_version, leaf_kind, submitted_by, ext
			FROM events WHERE idx = 8`)
	expectFailure(t, dir, "record 9:")
}

func TestVerifyDetectsTruncatedTail(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir,
		fmt.Sprintf(`DELETE FROM events WHERE idx >= %d`, ledgerSize-4),
		fmt.Sprintf(`DELETE FROM tree_nodes WHERE pos >= %d`, ledger.NodeCount(ledgerSize-4)))
	expectFailure(t, dir, fmt.Sprintf("record %d: missing: the signed checkpoint covers 39 records but only %d are stored", ledgerSize-4, ledgerSize-4))
}

func TestVerifyDetectsChangedTreeNode(t *testing.T) {
	dir := newLedger(t)
	pos := ledger.NodePos(compact.NewNodeID(2, 3)) // covers records 12–15
	tamper(t, dir, fmt.Sprintf(`UPDATE tree_nodes SET hash = zeroblob(32) WHERE pos = %d`, pos))
	expectFailure(t, dir, "record 12: stored tree node at level 2, index 3")
}

func TestVerifyDetectsAlteredCheckpoint(t *testing.T) {
	dir := newLedger(t)
	// Change the size line of the checkpoint for size 15: the signature no
	// longer matches.
	tamper(t, dir, `UPDATE checkpoints SET note = CAST(replace(CAST(note AS TEXT), char(10)||'15'||char(10), char(10)||'16'||char(10)) AS BLOB) WHERE size = 15`)
	expectFailure(t, dir, "record 14: the checkpoint stored for tree size 15 does not verify")
}

func TestVerifyDetectsForgedCheckpoint(t *testing.T) {
	dir := newLedger(t)
	// A checkpoint signed by another key with the log's origin, over a
	// rewritten history.
	skey, _, err := note.GenerateKey(nil, "custos.test/verify")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := ledger.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.Sign(27, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, dir, fmt.Sprintf(`UPDATE checkpoints SET note = X'%x' WHERE size = 27`, forged))
	expectFailure(t, dir, "record 26: the checkpoint stored for tree size 27 does not verify")
}

// TestVerifyDetectsConsistentRewrite: an attacker who rewrites a record and
// recomputes every tree node to match is still caught by the signed
// checkpoints, which they cannot re-sign.
func TestVerifyDetectsConsistentRewrite(t *testing.T) {
	dir := newLedger(t)
	tamper(t, dir, `UPDATE events SET user_id = 'mallory' WHERE idx = 5`)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng := ledger.NewEmptyRange()
	var stmts []string
	st.ScanEvents(ctx, 0, func(e custos.Event) error {
		rng.Append(leaf.LeafHash(&e), func(id compact.NodeID, h []byte) {
			stmts = append(stmts, fmt.Sprintf(`UPDATE tree_nodes SET hash = X'%x' WHERE pos = %d`, h, ledger.NodePos(id)))
		})
		return nil
	})
	st.Close()
	tamper(t, dir, stmts...)
	expectFailure(t, dir, "record 3: records 3–14 do not match the signed checkpoint at tree size 15")
}

func TestVerifyWithPinnedKey(t *testing.T) {
	dir := newLedger(t)
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"public-key", "--data", dir}, &out, &out); code != exitOK {
		t.Fatalf("public-key: %d %s", code, out.String())
	}
	pinned := strings.TrimSpace(out.String())
	if code, o := runVerify(t, dir, "--public-key", pinned); code != exitOK {
		t.Fatalf("verify with the pinned key: %d\n%s", code, o)
	}
	_, other, _ := note.GenerateKey(nil, "custos.test/verify")
	if code, o := runVerify(t, dir, "--public-key", other); code != exitProblem || !strings.Contains(o, "does not verify") {
		t.Fatalf("verify with another log's key: %d\n%s", code, o)
	}
}

func TestVerifyRefusesMissingStore(t *testing.T) {
	_, vkey, _ := note.GenerateKey(nil, "custos.test/verify")
	code, out := runVerify(t, filepath.Join(t.TempDir(), "nothing-here"), "--public-key", vkey)
	if code != exitError || !strings.Contains(out, "no data folder") {
		t.Fatalf("verify of a missing store: %d\n%s", code, out)
	}
}

var _ store.Scanner = (*sqlite.Store)(nil)

// TestVerifyIndexDetectsHiddenRecord: an index entry deleted or altered with
// SQL would hide a record from keyed searches; verify --index names it.
func TestVerifyIndexDetectsHiddenRecord(t *testing.T) {
	for name, stmt := range map[string]string{
		"deleted": `DELETE FROM ix_patient WHERE idx = 22`,
		"altered": `UPDATE ix_user SET user_id = 'someone-else' WHERE idx = 22`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := newLedger(t)
			// Let the index catch up (it follows the ledger), as a restart does.
			st, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if code, out := runVerify(t, dir, "--index"); code != exitOK || !strings.Contains(out, "index: every indexed record is findable") {
				t.Fatalf("verify --index of an intact store: %d\n%s", code, out)
			}
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.IndexFileName))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(stmt); err != nil {
				t.Fatal(err)
			}
			db.Close()
			// The default search check finds the hidden record through the
			// API's query path; --index names the index entry.
			code, out := runVerify(t, dir)
			if code != exitProblem || !strings.Contains(out, "record 22: a search by") {
				t.Fatalf("verify after the index was %s: %d\n%s", name, code, out)
			}
			code, out = runVerify(t, dir, "--index", "--search-sample", "0")
			if code != exitProblem || !strings.Contains(out, "record 22 has no entry in the secondary index") {
				t.Fatalf("verify --index after the index was %s: %d\n%s", name, code, out)
			}
		})
	}
}
