package fhir

import "encoding/json"

// The Go types below are the part of FHIR R4 that an AuditEvent uses
// (https://hl7.org/fhir/R4/auditevent.html), with JSON names exactly as the
// specification spells them. They serve both ways: a received resource is
// decoded into them strictly (a key that is not one of these names is
// refused), and a record that did not come in as FHIR is rendered from them.
//
// Primitive values have types of their own so that the checker (check.go)
// knows each one's rules. Elements marked `fhir:"required"` have
// cardinality 1.. in R4.

// Primitive types (https://hl7.org/fhir/R4/datatypes.html#primitive).
type (
	fString    string // string: any non-empty text
	fCode      string // code: no leading, trailing or double whitespace
	fURI       string // uri, url, canonical, oid, uuid: no whitespace
	fID        string // id: [A-Za-z0-9-.]{1,64}
	fInstant   string // instant: a full time with a zone
	fDateTime  string // dateTime: a year, year-month, date, or full time with a zone
	fDate      string // date: a year, year-month or date
	fTime      string // time: hh:mm:ss
	fBase64    string // base64Binary
	fMarkdown  string // markdown
	fXHTML     string // the div of a narrative
	fPositive  int64  // positiveInt
	fUnsigned  int64  // unsignedInt
	fInteger   int32  // integer
	fDecimal   = json.Number
	fBoolean   = bool
	fCanonical = fURI
)

// element is what every element may carry.
type element struct {
	ID        fString     `json:"id,omitempty"`
	Extension []extension `json:"extension,omitempty"`
}

// extension is an Extension with the value types Custos accepts: every
// primitive type and the complex types an audit record uses. A value of
// another type is refused as an unknown element, never stored unchecked.
type extension struct {
	ID                   fString          `json:"id,omitempty"`
	Extension            []extension      `json:"extension,omitempty"`
	URL                  fURI             `json:"url" fhir:"required"`
	ValueBase64Binary    fBase64          `json:"valueBase64Binary,omitempty"`
	ValueBoolean         *fBoolean        `json:"valueBoolean,omitempty"`
	ValueCanonical       fCanonical       `json:"valueCanonical,omitempty"`
	ValueCode            fCode            `json:"valueCode,omitempty"`
	ValueDate            fDate            `json:"valueDate,omitempty"`
	ValueDateTime        fDateTime        `json:"valueDateTime,omitempty"`
	ValueDecimal         fDecimal         `json:"valueDecimal,omitempty"`
	ValueID              fID              `json:"valueId,omitempty"`
	ValueInstant         fInstant         `json:"valueInstant,omitempty"`
	ValueInteger         *fInteger        `json:"valueInteger,omitempty"`
	ValueMarkdown        fMarkdown        `json:"valueMarkdown,omitempty"`
	ValueOID             fURI             `json:"valueOid,omitempty"`
	ValuePositiveInt     *fPositive       `json:"valuePositiveInt,omitempty"`
	ValueString          fString          `json:"valueString,omitempty"`
	ValueTime            fTime            `json:"valueTime,omitempty"`
	ValueUnsignedInt     *fUnsigned       `json:"valueUnsignedInt,omitempty"`
	ValueURI             fURI             `json:"valueUri,omitempty"`
	ValueURL             fURI             `json:"valueUrl,omitempty"`
	ValueUUID            fURI             `json:"valueUuid,omitempty"`
	ValueCoding          *coding          `json:"valueCoding,omitempty"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueIdentifier      *identifier      `json:"valueIdentifier,omitempty"`
	ValueReference       *reference       `json:"valueReference,omitempty"`
	ValuePeriod          *period          `json:"valuePeriod,omitempty"`
}

type coding struct {
	element
	System       fURI      `json:"system,omitempty"`
	Version      fString   `json:"version,omitempty"`
	Code         fCode     `json:"code,omitempty"`
	Display      fString   `json:"display,omitempty"`
	UserSelected *fBoolean `json:"userSelected,omitempty"`
}

type codeableConcept struct {
	element
	Coding []coding `json:"coding,omitempty"`
	Text   fString  `json:"text,omitempty"`
}

type identifier struct {
	element
	Use      fCode            `json:"use,omitempty"`
	Type     *codeableConcept `json:"type,omitempty"`
	System   fURI             `json:"system,omitempty"`
	Value    fString          `json:"value,omitempty"`
	Period   *period          `json:"period,omitempty"`
	Assigner *reference       `json:"assigner,omitempty"`
}

type reference struct {
	element
	Reference  fString     `json:"reference,omitempty"`
	Type       fURI        `json:"type,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    fString     `json:"display,omitempty"`
}

type period struct {
	element
	Start fDateTime `json:"start,omitempty"`
	End   fDateTime `json:"end,omitempty"`
}

type meta struct {
	element
	VersionID   fID      `json:"versionId,omitempty"`
	LastUpdated fInstant `json:"lastUpdated,omitempty"`
	Source      fURI     `json:"source,omitempty"`
	Profile     []fURI   `json:"profile,omitempty"`
	Security    []coding `json:"security,omitempty"`
	Tag         []coding `json:"tag,omitempty"`
}

type narrative struct {
	element
	Status fCode  `json:"status" fhir:"required"`
	Div    fXHTML `json:"div" fhir:"required"`
}

// auditEvent is an R4 AuditEvent. Modifier extensions are not accepted:
// Custos could not tell what they change. Of contained resources, only an
// OperationOutcome (the error an event records) is.
type auditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             fID               `json:"id,omitempty"`
	Meta           *meta             `json:"meta,omitempty"`
	ImplicitRules  fURI              `json:"implicitRules,omitempty"`
	Language       fCode             `json:"language,omitempty"`
	Text           *narrative        `json:"text,omitempty"`
	Contained      []contained       `json:"contained,omitempty"`
	Extension      []extension       `json:"extension,omitempty"`
	Type           *coding           `json:"type" fhir:"required"`
	Subtype        []coding          `json:"subtype,omitempty"`
	Action         fCode             `json:"action,omitempty"`
	Period         *period           `json:"period,omitempty"`
	Recorded       fInstant          `json:"recorded" fhir:"required"`
	Outcome        fCode             `json:"outcome,omitempty"`
	OutcomeDesc    fString           `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []codeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []agent           `json:"agent" fhir:"required"`
	Source         *source           `json:"source" fhir:"required"`
	Entity         []entity          `json:"entity,omitempty"`
}

type agent struct {
	element
	Type         *codeableConcept  `json:"type,omitempty"`
	Role         []codeableConcept `json:"role,omitempty"`
	Who          *reference        `json:"who,omitempty"`
	AltID        fString           `json:"altId,omitempty"`
	Name         fString           `json:"name,omitempty"`
	Requestor    *fBoolean         `json:"requestor" fhir:"required"`
	Location     *reference        `json:"location,omitempty"`
	Policy       []fURI            `json:"policy,omitempty"`
	Media        *coding           `json:"media,omitempty"`
	Network      *network          `json:"network,omitempty"`
	PurposeOfUse []codeableConcept `json:"purposeOfUse,omitempty"`
}

type network struct {
	element
	Address fString `json:"address,omitempty"`
	Type    fCode   `json:"type,omitempty"`
}

type source struct {
	element
	Site     fString    `json:"site,omitempty"`
	Observer *reference `json:"observer" fhir:"required"`
	Type     []coding   `json:"type,omitempty"`
}

type entity struct {
	element
	What          *reference     `json:"what,omitempty"`
	Type          *coding        `json:"type,omitempty"`
	Role          *coding        `json:"role,omitempty"`
	Lifecycle     *coding        `json:"lifecycle,omitempty"`
	SecurityLabel []coding       `json:"securityLabel,omitempty"`
	Name          fString        `json:"name,omitempty"`
	Description   fString        `json:"description,omitempty"`
	Query         fBase64        `json:"query,omitempty"`
	Detail        []entityDetail `json:"detail,omitempty"`
}

type entityDetail struct {
	element
	Type              fString `json:"type" fhir:"required"`
	ValueString       fString `json:"valueString,omitempty"`
	ValueBase64Binary fBase64 `json:"valueBase64Binary,omitempty"`
}

// contained is a resource contained in an AuditEvent: an OperationOutcome.
type contained struct {
	ResourceType string     `json:"resourceType" fhir:"required"`
	ID           fID        `json:"id,omitempty"`
	Meta         *meta      `json:"meta,omitempty"`
	Text         *narrative `json:"text,omitempty"`
	Issue        []issue    `json:"issue" fhir:"required"`
}

// issue is an OperationOutcome.issue, as read and as written.
type issue struct {
	element
	Severity    fCode            `json:"severity" fhir:"required"`
	Code        fCode            `json:"code" fhir:"required"`
	Details     *codeableConcept `json:"details,omitempty"`
	Diagnostics fString          `json:"diagnostics,omitempty"`
	Location    []fString        `json:"location,omitempty"`
	Expression  []fString        `json:"expression,omitempty"`
}
