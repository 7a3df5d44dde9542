package httpapi

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/google/go-cmp/cmp"
)

// fuzzQueryAPI is an API with what parsing a query needs: the cursor key and
// the limits of the READ record.
func fuzzQueryAPI() *API {
	return &API{cfg: Config{CursorKey: []byte("fuzz cursor key"), Limits: custos.DefaultLimits}}
}

// FuzzParseEventQuery: no query string panics the parser; a refused one is
// Invalid and names a parameter; an accepted one parses with
// url.ParseQuery, drops nothing (every filter given is applied), gives
// each known parameter once with a non-empty text value, re-encodes to the
// same search, and its READ record is valid, carrying the searched patient.
// Seeds: below and in testdata/fuzz/FuzzParseEventQuery.
func FuzzParseEventQuery(f *testing.F) {
	a := fuzzQueryAPI()
	cursor := a.encodeCursor(store.Cursor{Timestamp: time.Date(2026, 11, 25, 8, 0, 0, 123456000, time.UTC), Index: 42})
	for _, s := range []string{
		"", "patient_id=p-1", "patient_id=p-1&limit=3&cursor=" + cursor,
		"patient_id=p-1%zz", "patient_id=p-1;", "patient_id=p-1;limit=5", "patient_id=", "patient_id",
		"patient_id=p-1&patient_id=p-2", "Patient_ID=p-1", "patient_id=%ff", "patient_id=%00", "user=a+b",
		"ip_address=::ffff:203.0.113.7", "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00.5%2B01:00",
		"limit=0005", "limit=+5", "action=READ&outcome=failure&source=ehr&resource_type=Patient&resource_id=p-1",
		"&&patient_id=p-1&", "%70atient_id=p-1", "patient_id=%C3%A9", "cursor=" + cursor + "A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		search, err := a.parseEventQuery(raw)
		if err != nil {
			var e *custos.Error
			if !errors.As(err, &e) || e.Kind != custos.Invalid || len(e.Fields) == 0 {
				t.Fatalf("refused with %v, want an invalid-input error naming a parameter", err)
			}
			if f := e.Fields[0].Field; f == "" || !utf8.ValidString(f) || strings.ContainsFunc(f, unicode.IsControl) {
				t.Fatalf("refused naming %q", f)
			}
			return
		}
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("accepted a query string url.ParseQuery refuses: %v", err)
		}
		for name, vals := range v {
			if !eventParams[name] || len(vals) != 1 || vals[0] == "" || !utf8.ValidString(vals[0]) ||
				strings.ContainsFunc(vals[0], unicode.IsControl) || search.params[name] != vals[0] {
				t.Fatalf("accepted %s=%q", name, vals)
			}
		}
		if len(search.params) != len(v) {
			t.Fatalf("params %v, want %v", search.params, v)
		}
		q := search.q
		for name, got := range map[string]string{"user": q.User, "action": q.Action, "resource_type": q.ResourceType,
			"resource_id": q.ResourceID, "patient_id": q.PatientID, "ip_address": q.IPAddress, "outcome": q.Outcome, "source": q.Source} {
			if (got == "") != (v.Get(name) == "") || name != "ip_address" && got != v.Get(name) {
				t.Fatalf("filter %s=%q searched as %q", name, v.Get(name), got)
			}
		}
		if search.limit < 1 || search.limit > store.MaxLimit || q.Limit != search.limit+1 || (q.After != nil) != v.Has("cursor") {
			t.Fatalf("search %+v for %q", search, raw)
		}
		// The parameters as recorded mean the same search.
		again, err := a.parseEventQuery(url.Values(fuzzValues(search.params)).Encode())
		if err != nil {
			t.Fatalf("re-encoded query refused: %v", err)
		}
		if diff := cmp.Diff(search, again, cmp.AllowUnexported(eventSearch{})); diff != "" {
			t.Fatalf("re-encoded query differs (-first +again):\n%s", diff)
		}
		// Its READ record is valid by construction.
		r := httptest.NewRequest("GET", "/v1/events", nil)
		r.Header.Set("User-Agent", strings.Repeat("é", 600))
		e, err := a.readEvent(r, searchRead(search, store.MaxLimit))
		if err != nil {
			t.Fatalf("READ record of %q: %v", raw, err)
		}
		if e.PatientID != q.PatientID || e.Action != custos.ActionRead || e.ResourceType != "AuditEvent" {
			t.Fatalf("READ record %+v", e)
		}
	})
}

func fuzzValues(m map[string]string) map[string][]string {
	v := make(map[string][]string, len(m))
	for k, s := range m {
		v[k] = []string{s}
	}
	return v
}

// FuzzDecodeCursor: no text panics the cursor decoder, and one it accepts
// is the one spelling of a cursor this server issued. Seeds: below (real
// cursors) and in testdata/fuzz/FuzzDecodeCursor.
func FuzzDecodeCursor(f *testing.F) {
	a := fuzzQueryAPI()
	for _, c := range []store.Cursor{
		{Timestamp: time.Date(2026, 11, 25, 8, 0, 0, 123456000, time.UTC), Index: 42},
		{Timestamp: time.UnixMicro(0).UTC(), Index: 0},
		{Timestamp: time.UnixMicro(-1).UTC(), Index: 1<<64 - 1},
	} {
		s := a.encodeCursor(c)
		f.Add(s)
		f.Add(s[:len(s)-1] + "B")
		f.Add(s + "=")
		f.Add(s[:20] + "\n" + s[20:])
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := a.decodeCursor(s)
		if err != nil {
			if custos.KindOf(err) != custos.Invalid {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if again := a.encodeCursor(*c); again != s {
			t.Fatalf("accepted %q, which is issued as %q", s, again)
		}
	})
}

// FuzzCursorRoundTrip: every position encodes to a cursor that decodes to
// it.
func FuzzCursorRoundTrip(f *testing.F) {
	a := fuzzQueryAPI()
	f.Add(int64(0), uint64(0))
	f.Add(int64(1795593600123456), uint64(42))
	f.Add(int64(-1<<63), uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, us int64, index uint64) {
		want := store.Cursor{Timestamp: time.UnixMicro(us).UTC(), Index: index}
		got, err := a.decodeCursor(a.encodeCursor(want))
		if err != nil || !got.Timestamp.Equal(want.Timestamp) || got.Index != want.Index {
			t.Fatalf("cursor %+v decodes to %+v, %v", want, got, err)
		}
	})
}

// TestCursorOneSpelling: a cursor altered in any one character is refused,
// including the spellings base64 would decode to the same bytes.
func TestCursorOneSpelling(t *testing.T) {
	a := fuzzQueryAPI()
	s := a.encodeCursor(store.Cursor{Timestamp: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC), Index: 7})
	if _, err := a.decodeCursor(s); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range s {
		for _, c := range alphabet {
			if byte(c) == s[i] {
				continue
			}
			alt := s[:i] + string(c) + s[i+1:]
			if _, err := a.decodeCursor(alt); err == nil {
				t.Fatalf("the cursor %q is also accepted as %q", s, alt)
			}
		}
	}
	for _, alt := range []string{s + "=", s + "\n", "\r" + s, s[:10] + "\n" + s[10:]} {
		if _, err := a.decodeCursor(alt); err == nil {
			t.Fatalf("the cursor %q is also accepted as %q", s, alt)
		}
	}
}
