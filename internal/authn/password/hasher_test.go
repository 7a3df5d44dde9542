package password

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

// cheap are parameters that keep the tests fast.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newTestHasher(tb testing.TB, cfg Config) *Hasher {
	tb.Helper()
	if cfg.Params == (Params{}) {
		cfg.Params = cheap
	}
	h, err := NewHasher(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, Config{})
	const pw = "a long enough passphrase"
	encoded, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(ctx, pw, encoded); err != nil {
		t.Errorf("Verify(right password) = %v", err)
	}
	if err := h.Verify(ctx, pw+" ", encoded); err != ErrMismatch {
		t.Errorf("Verify(wrong password) = %v, want ErrMismatch", err)
	}
	again, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if again == encoded {
		t.Error("two hashes of one password are equal: the salt is not fresh")
	}
	if _, err := h.Hash(ctx, "short"); custos.KindOf(err) != custos.Invalid {
		t.Errorf("Hash(short) = %v, want Invalid", err)
	}
}

// derivation is one call of the argon2id function, as a test records it.
type derivation struct {
	Params   Params
	Password string
	SaltLen  int
}

// recordDerivations makes h record its derivations instead of computing them.
func recordDerivations(h *Hasher) *[]derivation {
	var calls []derivation
	next := h.derive
	h.derive = func(password, salt []byte, p Params) []byte {
		calls = append(calls, derivation{p, string(password), len(salt)})
		return next(password, salt, p)
	}
	return &calls
}

// TestUnknownUserSameWork: a wrong password for a real user and any
// password for an unknown user do the same work and get the same answer.
func TestUnknownUserSameWork(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, Config{})
	encoded, err := h.Hash(ctx, "the right passphrase")
	if err != nil {
		t.Fatal(err)
	}
	calls := recordDerivations(h)

	wrongErr := h.Verify(ctx, "a wrong passphrase", encoded)
	wrong := *calls
	*calls = nil
	unknownErr := h.VerifyUnknown(ctx, "a wrong passphrase")
	unknown := *calls

	if len(wrong) != 1 {
		t.Fatalf("a wrong password made %d derivations, want 1", len(wrong))
	}
	if diff := cmp.Diff(wrong, unknown); diff != "" {
		t.Errorf("unknown user's work differs from a wrong password's (-wrong +unknown):\n%s", diff)
	}
	if wrongErr != ErrMismatch || unknownErr != ErrMismatch {
		t.Errorf("answers: wrong password %v, unknown user %v; want ErrMismatch for both", wrongErr, unknownErr)
	}
	// A password over the limit is refused without work on both paths.
	*calls = nil
	long := string(make([]byte, MaxBytes+1))
	if h.Verify(ctx, long, encoded) != ErrMismatch || h.VerifyUnknown(ctx, long) != ErrMismatch || len(*calls) != 0 {
		t.Errorf("an over-long password: %d derivations, want 0 and ErrMismatch", len(*calls))
	}
}

// TestTamperedHashIsRefusedUnhashed: a stored hash whose parameters are out
// of bounds costs nothing and is an internal error, not a mismatch.
func TestTamperedHashIsRefusedUnhashed(t *testing.T) {
	h := newTestHasher(t, Config{})
	calls := recordDerivations(h)
	for _, s := range []string{
		"$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$HRUiJsWZ9ib3WnZCyyNCOw",
		"$argon2id$v=19$m=8192,t=1000,p=1$c29tZXNhbHQ$HRUiJsWZ9ib3WnZCyyNCOw",
		"plaintext",
	} {
		err := h.Verify(context.Background(), "password", s)
		if custos.KindOf(err) != custos.Internal {
			t.Errorf("Verify(%q) = %v, want Internal", s, err)
		}
	}
	if len(*calls) != 0 {
		t.Errorf("%d derivations for refused hashes, want 0", len(*calls))
	}
}

func TestNeedsRehash(t *testing.T) {
	h := newTestHasher(t, Config{})
	current, err := h.Hash(context.Background(), "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if h.NeedsRehash(current) {
		t.Error("NeedsRehash(current parameters) = true")
	}
	if !h.NeedsRehash(goldenHashes[1].encoded) {
		t.Error("NeedsRehash(other parameters) = false")
	}
}

// gate makes h's derivations wait until the test lets them go, and counts
// how many run at once.
type gate struct {
	release            chan struct{}
	running, maxActive atomic.Int32
}

func holdDerivations(h *Hasher) *gate {
	g := &gate{release: make(chan struct{})}
	h.derive = func(password, salt []byte, p Params) []byte {
		n := g.running.Add(1)
		for m := g.maxActive.Load(); n > m && !g.maxActive.CompareAndSwap(m, n); m = g.maxActive.Load() {
		}
		<-g.release
		g.running.Add(-1)
		return make([]byte, p.KeyLen)
	}
	return g
}

// verifyAll runs n unknown-user verifications at once and returns their
// errors once all have answered.
func verifyAll(ctx context.Context, h *Hasher, n int) func() []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = h.VerifyUnknown(ctx, "a wrong passphrase") })
	}
	return func() []error { wg.Wait(); return errs }
}

func TestConcurrencyBound(t *testing.T) {
	t.Run("callers over the bound wait, then are refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newTestHasher(t, Config{MaxConcurrent: 2, Wait: time.Second})
			g := holdDerivations(h)
			wait := verifyAll(context.Background(), h, 5)
			synctest.Wait()
			if n := g.running.Load(); n != 2 {
				t.Fatalf("%d derivations running, want 2", n)
			}
			time.Sleep(2 * time.Second) // the three waiting callers give up
			synctest.Wait()
			close(g.release)
			var unavailable, mismatch int
			for _, err := range wait() {
				switch {
				case custos.KindOf(err) == custos.Unavailable:
					unavailable++
				case err == ErrMismatch:
					mismatch++
				default:
					t.Errorf("unexpected answer %v", err)
				}
			}
			if unavailable != 3 || mismatch != 2 {
				t.Errorf("%d refused and %d answered, want 3 and 2", unavailable, mismatch)
			}
			if err := h.VerifyUnknown(context.Background(), "x"); err != ErrMismatch {
				t.Errorf("after the burst, VerifyUnknown = %v: slots were not released", err)
			}
		})
	})
	t.Run("callers within the wait all get a turn", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newTestHasher(t, Config{MaxConcurrent: 2, Wait: time.Minute})
			g := holdDerivations(h)
			wait := verifyAll(context.Background(), h, 8)
			synctest.Wait()
			close(g.release)
			for _, err := range wait() {
				if err != ErrMismatch {
					t.Errorf("answer %v, want ErrMismatch", err)
				}
			}
			if m := g.maxActive.Load(); m != 2 {
				t.Errorf("at most %d derivations at once, want 2", m)
			}
		})
	})
	t.Run("a cancelled caller stops waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newTestHasher(t, Config{MaxConcurrent: 1, Wait: time.Minute})
			g := holdDerivations(h)
			first := verifyAll(context.Background(), h, 1)
			synctest.Wait()
			ctx, cancel := context.WithCancel(context.Background())
			second := verifyAll(ctx, h, 1)
			synctest.Wait()
			cancel()
			if err := second()[0]; custos.KindOf(err) != custos.Unavailable || !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled caller: %v, want Unavailable wrapping context.Canceled", err)
			}
			close(g.release)
			first()
		})
	})
}

// BenchmarkVerify measures one verification with the default parameters:
// the figure DefaultParams documents. Besides the wall time it reports the
// CPU time of one verification (cpu-ms/op), which other work on the
// machine barely changes: with 2 lanes on 2 idle cores the wall time is
// about half of it.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	h := newTestHasher(b, Config{Params: DefaultParams()})
	encoded, err := h.Hash(ctx, "a long enough passphrase")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if err := h.Verify(ctx, "a long enough passphrase", encoded); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
