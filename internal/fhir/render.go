package fhir

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/custos-audit/custos"
)

// BALP 1.1.4 profiles (https://profiles.ihe.net/ITI/BALP/).
const balp = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."

// Render returns the record as an R4 AuditEvent in JSON, whatever way it
// came in. A record received as FHIR is the resource as received, with
// Custos's id (the ledger index) and meta (versionId 1, lastUpdated the
// ledger's timestamp; the client's profiles, tags and security labels
// kept). Any other record is built from its fields, shaped as the IHE BALP
// profile that fits it (render.go: build).
func Render(e *custos.Event) ([]byte, error) {
	if e.Original != nil && e.Original.Format == FormatJSON {
		return spliceIDMeta(e)
	}
	return auditEventJSON(build(e)), nil
}

// view returns the record as an AuditEvent to match search parameters on.
func view(e *custos.Event) (*auditEvent, error) {
	if e.Original != nil && e.Original.Format == FormatJSON {
		var ae auditEvent
		if err := json.Unmarshal(e.Original.Data, &ae); err != nil {
			return nil, fmt.Errorf("fhir: stored resource at %d: %w", e.Index, err)
		}
		ae.ID = fID(strconv.FormatUint(e.Index, 10))
		return &ae, nil
	}
	return build(e), nil
}

func instant(t time.Time) fInstant {
	return fInstant(t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
}

// ourMeta is the meta Custos serves: the client's, with the version and
// time of the ledger.
func ourMeta(m *meta, e *custos.Event) *meta {
	out := meta{}
	if m != nil {
		out = *m
	}
	out.VersionID = "1"
	out.LastUpdated = instant(e.Timestamp)
	return &out
}

// spliceIDMeta writes the stored resource with resourceType, id and meta
// first and every other element as received, in the order received.
func spliceIDMeta(e *custos.Event) ([]byte, error) {
	raw := e.Original.Data
	bad := func(why string) error { return fmt.Errorf("fhir: stored resource at %d: %s", e.Index, why) }
	d := &jsonDecoder{b: raw}
	d.ws()
	if d.i >= len(raw) || raw[d.i] != '{' {
		return nil, bad("not an object")
	}
	d.i++
	var m *meta
	type span struct{ from, to int } // a member "key": value, as stored
	var rest []span
	for d.err == nil {
		d.ws()
		if d.i < len(raw) && raw[d.i] == '}' {
			break
		}
		if d.i < len(raw) && raw[d.i] == ',' {
			d.i++
			d.ws()
		}
		from := d.i
		if d.i >= len(raw) || raw[d.i] != '"' {
			return nil, bad("malformed")
		}
		k, ok := d.str()
		d.ws()
		if !ok || d.i >= len(raw) || raw[d.i] != ':' {
			return nil, bad("malformed")
		}
		d.i++
		d.ws()
		vfrom := d.i
		d.skip(0)
		switch k {
		case "resourceType", "id":
		case "meta":
			m = &meta{}
			if err := json.Unmarshal(raw[vfrom:d.i], m); err != nil {
				return nil, bad("meta: " + err.Error())
			}
		default:
			rest = append(rest, span{from, d.i})
		}
	}
	if d.err != nil {
		return nil, bad(d.err.msg)
	}
	mb, err := json.Marshal(ourMeta(m, e))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 128)
	fmt.Fprintf(&out, `{"resourceType":"AuditEvent","id":"%d","meta":%s`, e.Index, mb)
	for _, sp := range rest {
		out.WriteByte(',')
		out.Write(raw[sp.from:sp.to])
	}
	out.WriteByte('}')
	if bytes.ContainsAny(raw, "\n\r\t") {
		// Sent indented: served compact, as everything else is.
		var c bytes.Buffer
		if err := json.Compact(&c, out.Bytes()); err == nil {
			return c.Bytes(), nil
		}
	}
	return out.Bytes(), nil
}

// shape is how a Custos action is told in FHIR and BALP.
type shape struct {
	typ     coding
	subtype coding
	action  fCode
	profile string // BALP profile without and with a patient; "" for none
	withPat string
	// clientIsSource: the client is the source role and the server the
	// destination: when it sends data (create, update, delete), and in a
	// query by DICOM's pattern, which BALP follows; in a read the client
	// receives the data and is the destination.
	clientIsSource bool
}

var (
	typeRest   = coding{System: sysEventType, Code: "rest", Display: "Restful Operation"}
	typeLogin  = coding{System: sysDCM, Code: "110114", Display: "User Authentication"}
	typeExport = coding{System: sysDCM, Code: "110106", Display: "Export"}
	typeImport = coding{System: sysDCM, Code: "110107", Display: "Import"}
)

func restful(code string) coding {
	return coding{System: sysRestful, Code: fCode(code), Display: fString(code)}
}

func shapeOf(e *custos.Event) shape {
	switch e.Action {
	case custos.ActionCreate:
		return shape{typeRest, restful("create"), "C", balp + "Create", balp + "PatientCreate", true}
	case custos.ActionUpdate:
		return shape{typeRest, restful("update"), "U", balp + "Update", balp + "PatientUpdate", true}
	case custos.ActionDelete:
		return shape{typeRest, restful("delete"), "D", balp + "Delete", balp + "PatientDelete", true}
	case custos.ActionLogin:
		return shape{typeLogin, coding{System: sysDCM, Code: "110122", Display: "Login"}, "E", "", "", true}
	case custos.ActionLogout:
		return shape{typeLogin, coding{System: sysDCM, Code: "110123", Display: "Logout"}, "E", "", "", true}
	case custos.ActionExport:
		return shape{typeExport, coding{System: sysDCM, Code: "110106", Display: "Export"}, "R", "", "", false}
	case custos.ActionImport:
		return shape{typeImport, coding{System: sysDCM, Code: "110107", Display: "Import"}, "C", "", "", true}
	}
	if isQuery(e) {
		// BALP's Query keeps DICOM's pattern: the client is the source.
		return shape{typeRest, restful("search-type"), "E", balp + "Query", balp + "PatientQuery", true}
	}
	return shape{typeRest, restful("read"), "R", balp + "Read", balp + "PatientRead", false}
}

// isQuery tells a search from a read: Custos's own record of a search
// carries the query in its changes.
func isQuery(e *custos.Event) bool {
	if e.Kind != custos.KindServer || !bytes.Contains(e.Changes, []byte(`"query"`)) {
		return false
	}
	var c struct {
		Query json.RawMessage `json:"query"`
	}
	return json.Unmarshal(e.Changes, &c) == nil && len(c.Query) > 0
}

// build renders a record that did not come in as FHIR.
func build(e *custos.Event) *auditEvent {
	sh := shapeOf(e)
	ae := &auditEvent{ResourceType: "AuditEvent", ID: fID(strconv.FormatUint(e.Index, 10)),
		Meta: ourMeta(nil, e), Type: &sh.typ, Subtype: []coding{sh.subtype}, Action: sh.action,
		Recorded: instant(e.Timestamp), Outcome: "0"}
	if p := sh.profile; p != "" {
		if e.PatientID != "" {
			p = sh.withPat
		}
		ae.Meta.Profile = []fURI{fURI(p)}
	}
	if e.OccurredAt != nil {
		ae.Period = &period{Start: fDateTime(instant(*e.OccurredAt)), End: fDateTime(instant(*e.OccurredAt))}
	}
	if e.Outcome == custos.OutcomeFailure {
		ae.Outcome = "4"
		if e.StatusCode >= 500 {
			ae.Outcome = "8"
		}
	}
	if e.StatusCode != 0 {
		ae.OutcomeDesc = fString(fmt.Sprintf("HTTP status %d", e.StatusCode))
	}
	source := e.Source
	if source == "" {
		source = "unknown"
	}
	ae.Source = &source_{Site: fString(source), Observer: &reference{Display: fString(source)},
		Type: []coding{{System: sysSourceType, Code: "4", Display: "Application Server"}}}
	ae.Agent = agents(e, sh, source)
	ae.Entity = entities(e)
	return ae
}

// source_ is the source type, named apart from the field it fills.
type source_ = source

func yes() *bool { t := true; return &t }
func no() *bool  { f := false; return &f }

// agents are the user (the requestor), and the client and server machines
// in the roles BALP gives them for the event's direction.
func agents(e *custos.Event, sh shape, server string) []agent {
	user := agent{Type: &codeableConcept{Coding: []coding{{System: sysParticipate, Code: "IRCP", Display: "information recipient"}}},
		Who: &reference{Identifier: &identifier{Value: fString(e.User.ID)}}, Requestor: yes()}
	if e.User.Name != "" {
		user.Who.Display = fString(e.User.Name)
		user.Name = fString(e.User.Name)
	}
	for _, r := range e.User.Roles {
		user.Role = append(user.Role, codeableConcept{Text: fString(r)})
	}
	if e.PurposeOfUse != "" || e.BreakGlass {
		var pou codeableConcept
		if e.PurposeOfUse != "" {
			pou.Text = fString(e.PurposeOfUse)
		}
		if e.BreakGlass {
			pou.Coding = []coding{{System: sysActReason, Code: "BTG", Display: "break the glass"}}
			if pou.Text == "" {
				pou.Text = fString(e.BreakGlassReason)
			}
		}
		user.PurposeOfUse = []codeableConcept{pou}
	}
	clientCode, serverCode := coding{System: sysDCM, Code: "110152", Display: "Destination Role ID"},
		coding{System: sysDCM, Code: "110153", Display: "Source Role ID"}
	if sh.clientIsSource {
		clientCode, serverCode = serverCode, clientCode
	}
	client := agent{Type: &codeableConcept{Coding: []coding{clientCode}}, Requestor: no()}
	if e.IPAddress != "" {
		client.Who = &reference{Display: fString(e.IPAddress)}
		client.Network = &network{Address: fString(e.IPAddress), Type: "2"}
	} else {
		client.Who = &reference{Display: "client"}
	}
	if e.UserAgent != "" {
		client.Name = fString(e.UserAgent)
	}
	srv := agent{Type: &codeableConcept{Coding: []coding{serverCode}}, Who: &reference{Display: fString(server)}, Requestor: no()}
	out := []agent{client, srv, user}
	if d := e.Disclosure; d != nil && d.Recipient != "" {
		rcpt := agent{Type: &codeableConcept{Coding: []coding{{System: sysParticipate, Code: "IRCP", Display: "information recipient"}}},
			Who: &reference{Display: fString(d.Recipient)}, Requestor: no()}
		if d.Address != "" {
			rcpt.Network = &network{Address: fString(d.Address), Type: "5"}
		}
		if d.Purpose != "" {
			rcpt.PurposeOfUse = []codeableConcept{{Text: fString(d.Purpose)}}
		}
		out = append(out, rcpt)
	}
	return out
}

// entities are the resource acted on (with the request's details), the
// patient, and the request id, as BALP lays them out.
func entities(e *custos.Event) []entity {
	res := entity{Type: &coding{System: sysEntityType, Code: "2", Display: "System Object"},
		Role: &coding{System: sysObjectRole, Code: "4", Display: "Domain Resource"}}
	switch {
	case e.ResourceID != "" && IsID(e.ResourceID) && IsID(e.ResourceType):
		res.What = &reference{Reference: fString(e.ResourceType + "/" + e.ResourceID)}
	case e.ResourceID != "":
		res.What = &reference{Identifier: &identifier{Value: fString(e.ResourceID)}, Display: fString(e.ResourceType + " " + e.ResourceID)}
		if IsID(e.ResourceType) {
			res.What.Type = fURI(e.ResourceType)
		}
	default:
		res.What = &reference{Display: fString(e.ResourceType)}
	}
	if isQuery(e) {
		res.Role = &coding{System: sysObjectRole, Code: "24", Display: "Query"}
		res.Query = fBase64(base64.StdEncoding.EncodeToString(e.Changes))
	}
	detail := func(typ, v string) {
		if v != "" {
			res.Detail = append(res.Detail, entityDetail{Type: fString(typ), ValueString: fString(v)})
		}
	}
	detail("request_method", e.RequestMethod)
	detail("request_path", e.RequestPath)
	detail("session_id", e.SessionID)
	if !isQuery(e) {
		detail("changes", string(e.Changes))
	}
	if o := e.Original; o != nil {
		res.Detail = append(res.Detail, entityDetail{Type: fString("original " + o.Format),
			ValueBase64Binary: fBase64(base64.StdEncoding.EncodeToString(o.Data))})
	}
	out := []entity{res}
	if e.PatientID != "" {
		pat := entity{Type: &coding{System: sysEntityType, Code: "1", Display: "Person"},
			Role: &coding{System: sysObjectRole, Code: "1", Display: "Patient"},
			What: &reference{Identifier: &identifier{Value: fString(e.PatientID)}}}
		if IsID(e.PatientID) {
			pat.What.Reference = fString("Patient/" + e.PatientID)
		}
		out = append(out, pat)
	}
	if e.RequestID != "" {
		out = append(out, entity{Type: &coding{System: sysBALPEntity, Code: "XrequestId"},
			What: &reference{Identifier: &identifier{Value: fString(e.RequestID)}}})
	}
	return out
}

// ClientResource returns the AuditEvent a client would send for e: the
// rendering of e without Custos's id and meta, recorded at e's
// OccurredAt. Load generators and tests use it to send the same events as
// FHIR and as Custos JSON.
func ClientResource(e *custos.Event) ([]byte, error) {
	ae := build(e)
	ae.ID, ae.Meta = "", nil
	if e.OccurredAt != nil {
		ae.Recorded = instant(*e.OccurredAt)
	}
	ae.Period = nil
	return json.Marshal(ae)
}
