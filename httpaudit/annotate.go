package httpaudit

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/custos-audit/custos"
)

type ctxKey struct{}

// Annotations are what the application's handler tells the middleware
// about its request: facts only the handler knows (the patient of an
// order, the previous state of a record). Get them with Annotate. Every
// method is safe for concurrent use and does nothing on a nil
// *Annotations, so a handler may call them outside the middleware.
type Annotations struct {
	mu sync.Mutex
	notes
}

// notes are the annotations' values.
type notes struct {
	user       *custos.User
	patient    *string
	resType    string
	resID      *string
	previous   json.RawMessage
	current    json.RawMessage
	changes    json.RawMessage
	action     custos.Action
	purpose    string
	breakGlass string
}

// Annotate returns the annotations of the request ctx belongs to, or nil
// outside the middleware.
func Annotate(ctx context.Context) *Annotations {
	a, _ := ctx.Value(ctxKey{}).(*Annotations)
	return a
}

func (a *Annotations) set(f func()) {
	if a == nil {
		return
	}
	a.mu.Lock()
	f()
	a.mu.Unlock()
}

// SetPatient names the patient whose data the request touched.
func (a *Annotations) SetPatient(id string) { a.set(func() { a.patient = &id }) }

// SetResource names the resource the request touched.
func (a *Annotations) SetResource(typ, id string) {
	a.set(func() { a.resType, a.resID = typ, &id })
}

// SetPrevious gives the resource's state before a write, as JSON: changes
// become a diff from it to the new state (the request body, or SetCurrent).
func (a *Annotations) SetPrevious(state json.RawMessage) {
	a.set(func() { a.previous = append(json.RawMessage(nil), state...) })
}

// SetCurrent gives the resource's state after a write, when the request
// body is not that state (a PATCH, a form).
func (a *Annotations) SetCurrent(state json.RawMessage) {
	a.set(func() { a.current = append(json.RawMessage(nil), state...) })
}

// SetAction overrides the action.
func (a *Annotations) SetAction(act custos.Action) { a.set(func() { a.action = act }) }

// SetChanges gives the changes to record (redacted like any other).
func (a *Annotations) SetChanges(changes json.RawMessage) {
	a.set(func() { a.changes = append(json.RawMessage(nil), changes...) })
}

// SetUser names the user, for requests the User function cannot attribute
// (a login: the account that tried).
func (a *Annotations) SetUser(u custos.User) { a.set(func() { a.user = &u }) }

// SetPurposeOfUse records why the data was accessed (TREAT, HPAYMT, …).
func (a *Annotations) SetPurposeOfUse(p string) { a.set(func() { a.purpose = p }) }

// SetBreakGlass marks the request as emergency access, with its reason.
func (a *Annotations) SetBreakGlass(reason string) { a.set(func() { a.breakGlass = reason }) }

// snapshot copies the annotations once the handler returned.
func (a *Annotations) snapshot() notes {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.notes
}

// Attribute wraps the handlers behind the application's authentication
// when that runs inside the middleware: it asks Config.User about the
// request as authentication left it, so the event names the user.
func (au *Auditor) Attribute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ann := Annotate(r.Context()); ann != nil && au.cfg.User != nil {
			if u, ok := au.cfg.User(r); ok {
				ann.set(func() {
					if ann.user == nil {
						ann.user = &u
					}
				})
			}
		}
		next.ServeHTTP(w, r)
	})
}
