package fhir

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

// shapes returns one event of every shape Custos can hold: each action,
// with and without a patient, failed, Custos's own reads and searches, a
// disclosure, emergency access, an original in another format (a DICOM
// audit message from ATNA), identifiers that are not FHIR ids, and the
// longest values of every field.
func shapes() map[string]custos.Event {
	ts := time.Date(2026, 11, 25, 8, 0, 0, 123456000, time.UTC)
	occ := ts.Add(-time.Second)
	base := func() custos.Event {
		return custos.Event{Index: 42, Timestamp: ts, Kind: custos.KindClient, SubmittedBy: "key-1",
			User: custos.User{ID: "dr.grey", Name: "Meredith Grey", Roles: []string{"physician"}}, Action: custos.ActionRead,
			ResourceType: "Patient", ResourceID: "p-123", PatientID: "p-123", IPAddress: "203.0.113.7",
			UserAgent: "Mozilla/5.0", RequestMethod: "GET", RequestPath: "/Patient/p-123", Outcome: custos.OutcomeSuccess,
			StatusCode: 200, Source: "ehr-web", RequestID: "req-1", SessionID: "s-1", PurposeOfUse: "TREAT", LeafVersion: 2}
	}
	out := map[string]custos.Event{}
	for _, a := range custos.Actions {
		e := base()
		e.Action = a
		out["patient "+string(a)] = e
		e.PatientID, e.ResourceType, e.ResourceID = "", "Observation", "o-1"
		out["no patient "+string(a)] = e
	}
	e := base()
	e.Outcome, e.StatusCode = custos.OutcomeFailure, 403
	out["failure"] = e
	e.StatusCode = 503
	out["server failure"] = e
	e = custos.Event{Index: 7, Timestamp: ts, Kind: custos.KindServer, User: custos.User{ID: "key-1", Name: "admin", Roles: []string{}},
		Action: custos.ActionRead, ResourceType: "AuditEvent", PatientID: "p-9", IPAddress: "::1", RequestMethod: "GET",
		RequestPath: "/fhir/AuditEvent", Changes: json.RawMessage(`{"query":{"patient":["p-9"]},"results":3}`),
		Outcome: custos.OutcomeSuccess, StatusCode: 200, Source: "custos", LeafVersion: 2}
	out["server search"] = e
	e.Changes, e.PatientID, e.ResourceID = nil, "", "12"
	out["server read"] = e
	e = custos.Event{Index: 0, Timestamp: ts, User: custos.User{ID: "u", Roles: []string{}}, Action: custos.ActionLogin,
		ResourceType: "Session", Outcome: custos.OutcomeFailure, LeafVersion: 1}
	out["minimal v1 login"] = e
	e = base()
	e.Action, e.Disclosure = custos.ActionExport, &custos.Disclosure{Recipient: "Acme Insurance", Address: "https://acme.example", Purpose: "payment"}
	out["disclosure"] = e
	e = base()
	e.BreakGlass, e.BreakGlassReason, e.PurposeOfUse = true, "patient unconscious", ""
	out["break glass"] = e
	e = base()
	e.Original = &custos.Original{Format: "application/xml", Data: []byte(`<AuditMessage><EventIdentification EventActionCode="R"/></AuditMessage>`)}
	out["atna original"] = e
	e = base()
	e.OccurredAt = &occ
	e.Changes = json.RawMessage(`{"name":["a","b"],"n":1}`)
	out["changes and occurred_at"] = e
	e = base()
	e.PatientID, e.ResourceID, e.ResourceType = "12345^^^&1.3.6.1.4.1.21367.2005.3.7&ISO", "doc with spaces", "Document Reference"
	e.User.ID = "CN=Dr Grey, O=Hospital"
	out["identifiers that are not FHIR ids"] = e
	e = base()
	e.User.ID = string(make([]byte, 255))
	for i := range []byte(e.User.ID) {
		_ = i
	}
	e.User.ID = fmt.Sprintf("%0255d", 1)
	e.UserAgent = fmt.Sprintf("%0512d", 2)
	e.RequestPath = fmt.Sprintf("/%0254d", 3)
	e.IPAddress = "2001:db8::1"
	out["longest values, IPv6"] = e
	return out
}

func TestRenderEveryShapeValidates(t *testing.T) {
	for name, e := range shapes() {
		t.Run(name, func(t *testing.T) {
			b, err := Render(&e)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, "AuditEvent", b)
			// What is served reads back through the strict decoder.
			if _, err := decodeAuditEvent(b, "AuditEvent"); err != nil {
				t.Errorf("served resource refused by the decoder: %v\n%s", err, b)
			}
		})
	}
}

func TestRoundTripExamples(t *testing.T) {
	ts := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for name, raw := range examples(t) {
		t.Run(name, func(t *testing.T) {
			e, err := DecodeResource(raw, "AuditEvent", custos.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			e.Index, e.Timestamp = 99, ts
			b, err := Render(&e)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, "AuditEvent", b)
			var sent, served map[string]any
			if err := json.Unmarshal(raw, &sent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &served); err != nil {
				t.Fatal(err)
			}
			// Lossless: every element as sent, but id and meta's version
			// and time, which are Custos's.
			if served["id"] != "99" {
				t.Errorf("id = %v", served["id"])
			}
			m := served["meta"].(map[string]any)
			if m["versionId"] != "1" || m["lastUpdated"] != "2026-11-25T08:00:00.000000Z" {
				t.Errorf("meta = %v", m)
			}
			delete(m, "versionId")
			delete(m, "lastUpdated")
			if len(m) == 0 {
				delete(served, "meta")
			}
			if sm, ok := sent["meta"].(map[string]any); ok {
				delete(sm, "versionId")
				delete(sm, "lastUpdated")
				if len(sm) == 0 {
					delete(sent, "meta")
				}
			}
			delete(sent, "id")
			delete(served, "id")
			if d := cmp.Diff(sent, served); d != "" {
				t.Errorf("served resource differs from the one sent (-sent +served):\n%s", d)
			}
		})
	}
}

// The hand-written writer of built records writes what encoding/json
// writes for the same values (without HTML escaping, as every answer).
func TestAuditEventJSONMatchesEncodingJSON(t *testing.T) {
	for name, e := range shapes() {
		ae := build(&e)
		want, err := marshal(ae)
		if err != nil {
			t.Fatal(err)
		}
		if got := auditEventJSON(ae); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	s := "a\"b\\c\n\r\t\x01\u2028é\xff<&>"
	want, _ := marshal(s)
	if got := appendJSONString(nil, s); string(got) != string(want) {
		t.Errorf("string: got %s, want %s", got, want)
	}
}
