package fhir

import (
	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// stateEvent is a state record (a key, role, user, session, grant, block or
// security event changed by Custos) seen as the server event it is, so that
// every record of the ledger reads as an AuditEvent. Only what the leaf says
// of the change is shown — who, when, what kind of entity, which one, and
// whether it was created, changed or removed — never the document, which may
// hold secrets (key and password hashes, sealed TOTP secrets). A session is
// named by the first 16 characters of its id, as its login event names it.
func stateEvent(r *leaf.StateRecord) custos.Event {
	action := custos.ActionUpdate
	switch r.Op {
	case leaf.OpCreate:
		action = custos.ActionCreate
	case leaf.OpDelete:
		action = custos.ActionDelete
	}
	id := r.ID
	if r.Entity == "session" && len(id) > 16 {
		id = id[:16]
	}
	if len([]rune(id)) > custos.MaxLength("resource_id") {
		id = string([]rune(id)[:custos.MaxLength("resource_id")])
	}
	return custos.Event{Index: r.Index, Timestamp: r.Timestamp, Kind: custos.KindServer, SubmittedBy: r.SubmittedBy,
		User: custos.User{ID: r.SubmittedBy, Roles: []string{}}, Action: action, ResourceType: r.Entity, ResourceID: id,
		Outcome: custos.OutcomeSuccess, Source: "custos", LeafVersion: leaf.Current}
}
