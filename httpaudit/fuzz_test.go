package httpaudit

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseFHIR: any path parses without panicking, and what it accepts
// has a type in FHIR's syntax and ids in FHIR's.
func FuzzParseFHIR(f *testing.F) {
	for _, s := range []string{"/Patient/123", "/Observation/9/_history/2", "/Patient", "/Patient/1/$everything",
		"/$export", "/Patient/1/Observation", "//", "/Patient/1/_history/x", "/Group/g/$export"} {
		f.Add(s, "patient=Patient/1")
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		q, _ := url.ParseQuery(query)
		fr, ok := parseFHIR(path, q)
		if !ok {
			return
		}
		if fr.Type != "System" && !fhirType(fr.Type) {
			t.Errorf("%q: type %q", path, fr.Type)
		}
		for _, id := range []string{fr.ID, fr.PatientID} {
			if id != "" && !fhirID(id) {
				t.Errorf("%q: id %q", path, id)
			}
		}
	})
}

// FuzzParseForwarded: any header parses without panicking into at most
// one hop per comma.
func FuzzParseForwarded(f *testing.F) {
	for _, s := range []string{`for=192.0.2.43`, `for="[2001:db8:cafe::17]:4711";proto=http, for=unknown`,
		`For="\"quoted\""`, `for=a;for=b`, `"unterminated`, `;,;,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		hops := parseForwarded(h)
		if len(hops) > strings.Count(h, ",")+1 {
			t.Errorf("%q: %d hops", h, len(hops))
		}
		for _, hop := range hops {
			hopAddr(hop)
		}
	})
}

// FuzzDecodeSegment: any bytes decode without panicking; the valid
// prefix decodes alone to the same records without error, and encoding
// them again gives that prefix back.
func FuzzDecodeSegment(f *testing.F) {
	seg := encodeHeader("0123456789abcdef0123456789abcdef")
	for _, r := range recs(0, 3) {
		seg = appendRecord(seg, r)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add([]byte(segMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, got, valid, err := decodeSegment(data)
		if valid > len(data) {
			t.Fatalf("valid %d > %d", valid, len(data))
		}
		if key == "" {
			return
		}
		key2, again, valid2, err2 := decodeSegment(data[:valid])
		if err2 != nil || key2 != key || valid2 != valid || len(again) != len(got) {
			t.Fatalf("the valid prefix: %v %d records (had %d, err %v)", err2, len(again), len(got), err)
		}
		enc := encodeHeader(key)
		for _, r := range got {
			enc = appendRecord(enc, r)
		}
		if !bytes.Equal(enc, data[:valid]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
