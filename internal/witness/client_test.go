package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeSetup is a checkpoint, and a Witness pointing at a process-boundary
// fake server: for the error paths only, the protocol is tested against
// litewitness.
type fakeSetup struct {
	w    *Witness
	c    *testCosigner
	cp   []byte // signed checkpoint
	text []byte // its text
}

func newFake(t *testing.T, h http.HandlerFunc) *fakeSetup {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := newTestCosigner(t, "fake.example/w", seedFor("fake"))
	w, err := Parse(srv.URL + "/prefix/," + c.vkey)
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLog(t, "custos.test/log")
	l.append("a", "b", "c")
	cp := l.checkpoint(t, 3)
	text, _, err := splitNote(cp)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeSetup{w: w, c: c, cp: cp, text: text}
}

func TestAddCheckpointRequest(t *testing.T) {
	var got []byte
	var f *fakeSetup
	f = newFake(t, func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/prefix/add-checkpoint" {
			http.Error(rw, "wrong endpoint", http.StatusNotFound)
			return
		}
		got, _ = io.ReadAll(r.Body)
		other := newTestCosigner(t, "other.example/w", seedFor("other"))
		rw.Write(other.line(f.text, 5))
		rw.Write(f.c.line(f.text, 6))
	})
	p := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
	cosig, err := f.w.AddCheckpoint(context.Background(), nil, 2, p, f.cp)
	if err != nil {
		t.Fatal(err)
	}
	want := "old 2\n" + base64.StdEncoding.EncodeToString(p[0]) + "\n" +
		base64.StdEncoding.EncodeToString(p[1]) + "\n\n" + string(f.cp)
	if string(got) != want {
		t.Errorf("request body:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Equal(cosig, f.c.line(f.text, 6)) {
		t.Errorf("cosignatures %q, want only the pinned key's line", cosig)
	}
}

func TestAddCheckpointErrors(t *testing.T) {
	big := strings.Repeat("x", MaxResponseSize+1)
	for _, tc := range []struct {
		name    string
		status  int
		ctype   string
		body    func(f *fakeSetup) string
		want    error
		code    int    // of the *StatusError, if any
		size    uint64 // of the *ConflictError, if any
		message string
	}{
		{name: "garbage 200", status: 200, body: constant("<html>hello</html>\n"), want: ErrBadResponse},
		{name: "empty 200", status: 200, body: constant(""), want: ErrBadResponse},
		{name: "no newline", status: 200, body: func(f *fakeSetup) string {
			return strings.TrimSuffix(string(f.c.line(f.text, 1)), "\n")
		}, want: ErrBadResponse},
		{name: "other key only", status: 200, body: func(f *fakeSetup) string {
			return string(newTestCosigner(t, "fake.example/w", seedFor("x")).line(f.text, 1))
		}, want: ErrBadResponse, message: "no cosignature by fake.example/w"},
		{name: "cosignature of another text", status: 200, body: func(f *fakeSetup) string {
			return string(f.c.line(append([]byte("x"), f.text...), 1))
		}, want: ErrBadResponse, message: "does not verify"},
		{name: "valid then bad", status: 200, body: func(f *fakeSetup) string {
			l := f.c.line(f.text, 1)
			bad := bytes.Clone(l)
			bad[len(bad)-30] ^= 'A' ^ 'B' // in the Ed25519 signature
			return string(l) + string(bad)
		}, want: ErrBadResponse},
		{name: "too large", status: 200, body: constant(big), want: ErrBadResponse, message: "larger than"},
		{name: "400", status: 400, body: constant("invalid input\n"), want: ErrBadRequest, code: 400},
		{name: "403", status: 403, body: constant("invalid signature\n"), want: ErrForbidden, code: 403, message: "invalid signature"},
		{name: "404", status: 404, body: constant("unknown log\n"), want: ErrUnknownLog, code: 404},
		{name: "422", status: 422, body: constant("bad consistency proof\n"), want: ErrInconsistent, code: 422},
		{name: "409 size", status: 409, ctype: "text/x.tlog.size", body: constant("51\n"), want: ErrConflict, size: 51},
		{name: "409 size params", status: 409, ctype: "Text/X.Tlog.Size; charset=utf-8", body: constant("0\n"), want: ErrConflict},
		{name: "409 plain", status: 409, ctype: "text/plain", body: constant("51\n"), want: ErrConflict, code: 409},
		{name: "409 bad size", status: 409, ctype: "text/x.tlog.size", body: constant("051\n"), want: ErrBadResponse},
		{name: "409 no newline", status: 409, ctype: "text/x.tlog.size", body: constant("51"), want: ErrBadResponse},
		{name: "409 huge", status: 409, ctype: "text/x.tlog.size", body: constant("99999999999999999999999\n"), want: ErrBadResponse},
		{name: "409 too large", status: 409, ctype: "text/x.tlog.size", body: constant(big), want: ErrBadResponse},
		{name: "500", status: 500, body: constant("boom\x00\xff" + big[:300]), want: ErrUnexpectedStatus, code: 500, message: "HTTP 500 Internal Server Error: boom"},
		{name: "503", status: 503, code: 503, want: ErrUnexpectedStatus, body: constant("")},
		{name: "302", status: 302, ctype: "text/html", code: 302, want: ErrUnexpectedStatus, body: constant("moved")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f *fakeSetup
			f = newFake(t, func(rw http.ResponseWriter, r *http.Request) {
				if tc.ctype != "" {
					rw.Header().Set("Content-Type", tc.ctype)
				}
				rw.WriteHeader(tc.status)
				io.WriteString(rw, tc.body(f))
			})
			cosig, err := f.w.AddCheckpoint(context.Background(), nil, 0, nil, f.cp)
			if err == nil {
				t.Fatalf("got cosignatures %q, want an error", cosig)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want errors.Is %v", err, tc.want)
			}
			var se *StatusError
			if got := errors.As(err, &se); got != (tc.code != 0) || got && se.StatusCode != tc.code {
				t.Errorf("got %v (%T), want a *StatusError with code %d: %v", err, errors.Unwrap(err), tc.code, got)
			}
			var ce *ConflictError
			if got := errors.As(err, &ce); got != (tc.want == ErrConflict && tc.code == 0) || got && ce.Size != tc.size {
				t.Errorf("got %v, want *ConflictError{%d}: %v", err, tc.size, got)
			}
			if !strings.HasPrefix(err.Error(), "witness: add-checkpoint to "+f.w.URL+": ") || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q, want the operation and %q", err, tc.message)
			}
			if len(err.Error()) > 600 || strings.ContainsAny(err.Error(), "\x00\n") {
				t.Errorf("error message too long or with control characters: %q", err)
			}
		})
	}
}

func constant(s string) func(*fakeSetup) string { return func(*fakeSetup) string { return s } }

func TestAddCheckpointTimeout(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.w.AddCheckpoint(ctx, nil, 0, nil, f.cp)
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrUnreachable and context.DeadlineExceeded", err)
	}

	// A client timeout while the body trickles in.
	f = newFake(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(200)
		rw.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	_, err = f.w.AddCheckpoint(context.Background(), &http.Client{Timeout: 50 * time.Millisecond}, 0, nil, f.cp)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}

func TestAddCheckpointUnreachable(t *testing.T) {
	f := newFake(t, func(http.ResponseWriter, *http.Request) {})
	srv := httptest.NewServer(http.NotFoundHandler())
	f.w.URL = srv.URL
	srv.Close() // nothing listens there now
	_, err := f.w.AddCheckpoint(context.Background(), nil, 0, nil, f.cp)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}

func TestAddCheckpointBadInput(t *testing.T) {
	called := false
	f := newFake(t, func(http.ResponseWriter, *http.Request) { called = true })
	h := make([]byte, 32)
	for _, tc := range []struct {
		name  string
		w     Witness
		old   uint64
		proof [][]byte
		cp    []byte
	}{
		{"proof from 0", *f.w, 0, [][]byte{h}, f.cp},
		{"short hash", *f.w, 1, [][]byte{h[:31]}, f.cp},
		{"long proof", *f.w, 1, bytes.Fields(bytes.Repeat([]byte("0123456789abcdef0123456789abcdef "), 64)), f.cp},
		{"unsigned", *f.w, 0, nil, f.text},
		{"not a checkpoint", *f.w, 0, nil, append([]byte("hello\n\n"), f.cp[len(f.text)+1:]...)},
		{"bad witness key", Witness{URL: f.w.URL, VKey: "x+1+2"}, 0, nil, f.cp},
	} {
		if _, err := tc.w.AddCheckpoint(context.Background(), nil, tc.old, tc.proof, tc.cp); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v is not an input error", tc.name, err)
		}
	}
	if called {
		t.Error("a bad request was sent")
	}
}
