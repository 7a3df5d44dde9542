package atna_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
)

func TestDecodeCorpus(t *testing.T) {
	for name, xml := range readCorpus(t) {
		t.Run(name, func(t *testing.T) {
			e, err := atna.Decode(xml, atna.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			corpus[name].check(t, e)
			if e.Original == nil || e.Original.Format != atna.Format || !bytes.Equal(e.Original.Data, xml) {
				t.Errorf("the original is not the message as received")
			}
			if e.OccurredAt == nil || e.OccurredAt.Location() != time.UTC {
				t.Errorf("occurred_at = %v, want a UTC time", e.OccurredAt)
			}
		})
	}
}

// message is a small valid audit message with the given event
// identification, event type and requestor.
func message(eventID, typeCode, action, outcome string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<AuditMessage>
  <EventIdentification EventActionCode="` + action + `" EventDateTime="2026-01-02T03:04:05.678+01:00" EventOutcomeIndicator="` + outcome + `">
    <EventID csd-code="` + eventID + `" codeSystemName="DCM" originalText="x"/>
    <EventTypeCode csd-code="` + typeCode + `" codeSystemName="DCM" originalText="y"/>
    <PurposeOfUse csd-code="TREAT" codeSystemName="2.16.840.1.113883.5.8" originalText="treatment"/>
  </EventIdentification>
  <ActiveParticipant UserID="dr.grey" UserName="Meredith Grey" UserIsRequestor="true" NetworkAccessPointID="2001:db8::7" NetworkAccessPointTypeCode="2">
    <RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/>
  </ActiveParticipant>
  <AuditSourceIdentification AuditSourceID="ehr-1"/>
  <ParticipantObjectIdentification ParticipantObjectID="p-123^^^&amp;1.2.3&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>
</AuditMessage>`)
}

func TestDecodeMapping(t *testing.T) {
	for _, c := range []struct {
		name                            string
		eventID, typeCode, act, outcome string
		action                          custos.Action
		result                          custos.Outcome
	}{
		{"login", "110114", "110122", "E", "0", custos.ActionLogin, custos.OutcomeSuccess},
		{"failed login", "110114", "110122", "E", "4", custos.ActionLogin, custos.OutcomeFailure},
		{"logout", "110114", "110123", "E", "0", custos.ActionLogout, custos.OutcomeSuccess},
		{"export", "110106", "ITI-32", "R", "0", custos.ActionExport, custos.OutcomeSuccess},
		{"import", "110107", "ITI-41", "C", "8", custos.ActionImport, custos.OutcomeFailure},
		{"create", "110110", "ITI-8", "C", "0", custos.ActionCreate, custos.OutcomeSuccess},
		{"read", "110110", "ITI-8", "R", "12", custos.ActionRead, custos.OutcomeFailure},
		{"update", "110110", "ITI-8", "U", "0", custos.ActionUpdate, custos.OutcomeSuccess},
		{"delete", "110110", "ITI-8", "D", "0", custos.ActionDelete, custos.OutcomeSuccess},
		{"query", "110112", "ITI-21", "E", "0", custos.ActionRead, custos.OutcomeSuccess},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := atna.Decode(message(c.eventID, c.typeCode, c.act, c.outcome), atna.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if e.Action != c.action || e.Outcome != c.result {
				t.Errorf("action, outcome = %s, %s; want %s, %s", e.Action, e.Outcome, c.action, c.result)
			}
			if e.User.ID != "dr.grey" || e.User.Name != "Meredith Grey" || len(e.User.Roles) != 1 || e.User.Roles[0] != "Source Role ID" {
				t.Errorf("user = %+v", e.User)
			}
			if e.IPAddress != "2001:db8::7" || e.PatientID != "p-123^^^&1.2.3&ISO" || e.Source != "ehr-1" || e.PurposeOfUse != "TREAT" {
				t.Errorf("ip, patient, source, purpose = %q, %q, %q, %q", e.IPAddress, e.PatientID, e.Source, e.PurposeOfUse)
			}
			if want := time.Date(2026, 1, 2, 2, 4, 5, 678e6, time.UTC); !e.OccurredAt.Equal(want) {
				t.Errorf("occurred_at = %v, want %v", e.OccurredAt, want)
			}
		})
	}
}
