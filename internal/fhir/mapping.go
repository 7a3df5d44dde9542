package fhir

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

// Code systems this package reads and writes.
const (
	sysRestful     = "http://hl7.org/fhir/restful-interaction"
	sysDCM         = "http://dicom.nema.org/resources/ontology/DCM"
	sysEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	sysEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysActReason   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysParticipate = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	// extPatient is the R5 AuditEvent.patient element carried into R4 as a
	// cross-version extension: the patient the event is about.
	extPatient = "http://hl7.org/fhir/5.0/StructureDefinition/extension-AuditEvent.patient"
)

// Unprocessable marks an error of a resource that is valid FHIR R4 but that
// Custos cannot hold (a value longer than the Custos field it maps to):
// FHIR answers it 422, not 400.
type Unprocessable struct{ Err *custos.Error }

func (u *Unprocessable) Error() string { return u.Err.Error() }
func (u *Unprocessable) Unwrap() error { return u.Err }

// mapping is the Custos event being built, with the element each field
// came from, so that a field Custos refuses is reported by its element.
type mapping struct {
	e    custos.Event
	from map[string]string // Custos field → FHIRPath
}

func (m *mapping) set(field, path string) { m.from[field] = path }

// toEvent maps a checked AuditEvent to a Custos client event. The rules are
// in the README (FHIR): the requestor is the user, the patient entity (or
// the R5 patient extension) the patient, and so on.
func toEvent(ae *auditEvent, path string, lim custos.Limits) (custos.Event, error) {
	m := &mapping{from: map[string]string{}}
	m.e.Kind = custos.KindClient
	m.e.Action = actionOf(ae)
	m.set("action", path+".type")
	t := recordedTime(ae.Recorded)
	m.e.OccurredAt = &t
	m.e.Outcome = custos.OutcomeSuccess
	if ae.Outcome != "" && ae.Outcome != "0" {
		m.e.Outcome = custos.OutcomeFailure
	}
	m.e.RequestMethod = methodOf(ae)
	m.user(ae, path)
	m.address(ae, path)
	m.patient(ae, path)
	m.resource(ae, path)
	m.purpose(ae, path)
	if o := ae.Source.Observer; o != nil {
		m.e.Source = refText(o)
		m.set("source", path+".source.observer")
	}
	for i, en := range ae.Entity {
		if en.Type != nil && en.Type.Code == "XrequestId" && en.What != nil && en.What.Identifier != nil {
			m.e.RequestID = string(en.What.Identifier.Value)
			m.set("request_id", fmt.Sprintf("%s.entity[%d].what.identifier.value", path, i))
			break
		}
	}
	if err := m.e.Normalize(lim, ""); err != nil {
		return custos.Event{}, m.translate(err, path)
	}
	return m.e, nil
}

// translate reports the fields Normalize refused by their elements.
func (m *mapping) translate(err error, path string) error {
	var ce *custos.Error
	if !errors.As(err, &ce) {
		return err
	}
	out := &custos.Error{Op: opDecode, Kind: custos.Invalid,
		Detail: "the AuditEvent is valid FHIR, but Custos cannot hold a value it carries; nothing was stored"}
	for _, f := range ce.Fields {
		field := f.Field
		if i := strings.IndexByte(field, '['); i >= 0 {
			field = field[:i]
		}
		el, ok := m.from[field]
		if !ok {
			el = path
		}
		out.Fields = append(out.Fields, custos.FieldError{Field: el, Message: f.Message + " (its Custos field " + f.Field + ")"})
	}
	return &Unprocessable{out}
}

func recordedTime(s fInstant) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.Replace(string(s), ":60", ":59", 1))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// actionOf derives the one Custos action: from a RESTful interaction
// subtype, else from the DICOM event (login, logout, export, import), else
// from the action code (E, execute, is a READ: a query or an access).
func actionOf(ae *auditEvent) custos.Action {
	for _, s := range ae.Subtype {
		if s.System == sysRestful {
			switch s.Code {
			case "create":
				return custos.ActionCreate
			case "read", "vread", "search", "search-type", "search-system", "history", "history-instance", "history-type", "history-system":
				return custos.ActionRead
			case "update", "patch":
				return custos.ActionUpdate
			case "delete":
				return custos.ActionDelete
			}
		}
		if s.System == sysDCM {
			switch s.Code {
			case "110122":
				return custos.ActionLogin
			case "110123":
				return custos.ActionLogout
			}
		}
	}
	if ae.Type.System == sysDCM {
		switch ae.Type.Code {
		case "110106":
			return custos.ActionExport
		case "110107":
			return custos.ActionImport
		case "110114":
			return custos.ActionLogin
		}
	}
	switch ae.Action {
	case "C":
		return custos.ActionCreate
	case "U":
		return custos.ActionUpdate
	case "D":
		return custos.ActionDelete
	}
	return custos.ActionRead
}

func methodOf(ae *auditEvent) string {
	for _, s := range ae.Subtype {
		if s.System != sysRestful {
			continue
		}
		switch s.Code {
		case "create":
			return "POST"
		case "read", "vread", "search-type", "search-system", "search", "history", "history-instance", "history-type", "history-system":
			return "GET"
		case "update":
			return "PUT"
		case "patch":
			return "PATCH"
		case "delete":
			return "DELETE"
		}
	}
	return ""
}

// refText is the text that identifies a reference: the identifier's
// value, else the literal reference, else the display.
func refText(r *reference) string {
	switch {
	case r == nil:
		return ""
	case r.Identifier != nil && r.Identifier.Value != "":
		return string(r.Identifier.Value)
	case r.Reference != "":
		return string(r.Reference)
	}
	return string(r.Display)
}

// user takes the requestor (else the first agent that names someone) as
// the user; with no such agent, the observer that recorded the event.
func (m *mapping) user(ae *auditEvent, path string) {
	pick := -1
	for i, a := range ae.Agent {
		if a.Requestor != nil && *a.Requestor && agentID(&a) != "" {
			pick = i
			break
		}
	}
	for i := range ae.Agent {
		if pick < 0 && agentID(&ae.Agent[i]) != "" {
			pick = i
		}
	}
	if pick < 0 {
		m.e.User.ID = refText(ae.Source.Observer)
		m.set("user.id", path+".source.observer")
		m.e.User.Roles = []string{}
		return
	}
	a := &ae.Agent[pick]
	ap := fmt.Sprintf("%s.agent[%d]", path, pick)
	m.e.User.ID = agentID(a)
	m.set("user.id", ap+".who")
	switch {
	case a.Name != "":
		m.e.User.Name = string(a.Name)
	case a.Who != nil && string(a.Who.Display) != m.e.User.ID:
		m.e.User.Name = string(a.Who.Display)
	}
	m.set("user.name", ap+".name")
	m.e.User.Roles = []string{}
	for _, r := range a.Role {
		for _, c := range r.Coding {
			if c.Code != "" {
				m.e.User.Roles = append(m.e.User.Roles, string(c.Code))
			}
		}
		if len(r.Coding) == 0 && r.Text != "" {
			m.e.User.Roles = append(m.e.User.Roles, string(r.Text))
		}
	}
	m.set("user.roles", ap+".role")
}

func agentID(a *agent) string {
	if id := refText(a.Who); id != "" {
		return id
	}
	if a.AltID != "" {
		return string(a.AltID)
	}
	return string(a.Name)
}

// address takes the requestor's network address when it is an IP address,
// else the first agent's that is.
func (m *mapping) address(ae *auditEvent, path string) {
	pick := -1
	for i, a := range ae.Agent {
		if a.Network == nil || !isIP(string(a.Network.Address)) {
			continue
		}
		if a.Requestor != nil && *a.Requestor {
			pick = i
			break
		}
		if pick < 0 {
			pick = i
		}
	}
	if pick >= 0 {
		m.e.IPAddress = string(ae.Agent[pick].Network.Address)
		m.set("ip_address", fmt.Sprintf("%s.agent[%d].network.address", path, pick))
	}
}

func isIP(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Zone() == ""
}

// patientEntity returns the index of the entity that is the patient, or -1.
func patientEntity(ae *auditEvent) int {
	for i, en := range ae.Entity {
		if en.Role != nil && en.Role.Code == "1" && (en.Role.System == sysObjectRole || en.Role.System == "") {
			return i
		}
	}
	for i, en := range ae.Entity {
		if en.What != nil && patientRef(string(en.What.Reference)) != "" {
			return i
		}
	}
	return -1
}

// patientRef returns the id of a literal reference to a Patient, or "".
func patientRef(ref string) string {
	typ, id := splitRef(ref)
	if typ != "Patient" {
		return ""
	}
	return id
}

// splitRef splits a literal reference, relative or absolute, with or
// without a version, into its type and id.
func splitRef(ref string) (typ, id string) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return "", ""
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

func (m *mapping) patient(ae *auditEvent, path string) {
	for i, x := range ae.Extension {
		if x.URL == extPatient && x.ValueReference != nil {
			if id := patientID(x.ValueReference); id != "" {
				m.e.PatientID = id
				m.set("patient_id", fmt.Sprintf("%s.extension[%d].valueReference", path, i))
				return
			}
		}
	}
	if i := patientEntity(ae); i >= 0 && ae.Entity[i].What != nil {
		m.e.PatientID = patientID(ae.Entity[i].What)
		m.set("patient_id", fmt.Sprintf("%s.entity[%d].what", path, i))
	}
}

// patientID is the patient a reference names: the id of its literal
// reference, else its identifier's value.
func patientID(r *reference) string {
	if id := patientRef(string(r.Reference)); id != "" {
		return id
	}
	if r.Identifier != nil {
		return string(r.Identifier.Value)
	}
	return ""
}

// resource takes the first entity that is not the patient and names a
// resource; else the patient; else a description of the event.
func (m *mapping) resource(ae *auditEvent, path string) {
	pi := patientEntity(ae)
	for i, en := range ae.Entity {
		if i == pi || en.What == nil {
			continue
		}
		if typ, id := splitRef(string(en.What.Reference)); typ != "" {
			m.e.ResourceType, m.e.ResourceID = typ, id
			p := fmt.Sprintf("%s.entity[%d].what.reference", path, i)
			m.set("resource_type", p)
			m.set("resource_id", p)
			return
		}
	}
	if m.e.PatientID != "" && pi >= 0 {
		m.e.ResourceType, m.e.ResourceID = "Patient", m.e.PatientID
		m.set("resource_type", fmt.Sprintf("%s.entity[%d].what", path, pi))
		m.set("resource_id", fmt.Sprintf("%s.entity[%d].what", path, pi))
		return
	}
	// Nothing names a resource (a login, an application start): the kind
	// of event stands in, clipped to the field's length.
	name := string(ae.Type.Display)
	if name == "" {
		name = string(ae.Type.Code)
	}
	if name == "" {
		name = "AuditEvent"
	}
	m.e.ResourceType = custos.Clip(name, custos.MaxLength("resource_type"))
	m.set("resource_type", path+".type")
}

// purpose takes the requestor's first purpose of use, else the event's;
// the v3 code BTG (break the glass) marks emergency access.
func (m *mapping) purpose(ae *auditEvent, path string) {
	var concepts []codeableConcept
	cp := path + ".purposeOfEvent"
	for i, a := range ae.Agent {
		if a.Requestor != nil && *a.Requestor && len(a.PurposeOfUse) > 0 {
			concepts, cp = a.PurposeOfUse, fmt.Sprintf("%s.agent[%d].purposeOfUse", path, i)
			break
		}
	}
	if concepts == nil {
		concepts = ae.PurposeOfEvent
	}
	for _, c := range concepts {
		text := string(c.Text)
		for _, cd := range c.Coding {
			if m.e.PurposeOfUse == "" && cd.Code != "" {
				m.e.PurposeOfUse = string(cd.Code)
			}
			if cd.Code == "BTG" && (cd.System == sysActReason || cd.System == "") {
				m.e.BreakGlass = true
				m.e.BreakGlassReason = "BTG: break the glass"
				if text != "" {
					m.e.BreakGlassReason = text
				}
			}
		}
		if m.e.PurposeOfUse == "" && text != "" {
			m.e.PurposeOfUse = text
		}
	}
	m.set("purpose_of_use", cp)
	m.set("break_glass_reason", cp)
}
