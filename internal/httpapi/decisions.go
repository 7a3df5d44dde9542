package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
)

// Login, logout, decisions for applications and emergency grants.

type loginRequest struct {
	UserID   string `json:"user_id"`
	Password string `json:"password"`
	Code     string `json:"code"`
}

// login opens a session: the token in the answer for scripts, and an
// HttpOnly, Secure, SameSite=Strict cookie for browsers.
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	s, err := a.dir.Login(r.Context(), authn.Login{UserID: req.UserID, Password: req.Password, Code: req.Code,
		Address: clientAddr(r), UserAgent: r.UserAgent()})
	a.wakeMonitor() // the attempt is committed: the brute-force rules see it now
	if err != nil {
		a.problem(w, r, err)
		return
	}
	exp, _ := time.Parse(time.RFC3339Nano, s.ExpiresAt)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.Token, Path: "/", Expires: exp,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, s)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	token, _ := credential(r)
	if err := a.dir.Logout(r.Context(), token, clientAddr(r), r.UserAgent()); err != nil {
		a.problem(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// clientAddr is the peer's address: Custos does not trust forwarding
// headers on its own API.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// maxQuestions is the most questions one batch may ask.
const maxQuestions = 1000

// authorizeDecision answers {"user_id", "permission", "patient_id"?,
// "purpose_of_use"?} with {"allowed", "reason"}, or a batch
// {"questions": […]} with {"answers": […]} in the same order. Denials and
// emergency accesses are recorded before the answer; allowed decisions
// right behind it.
func (a *API) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		a.problem(w, r, custos.Errorf("authorize", custos.TooLarge, "the body is over %d bytes", keyBodyLimit))
		return
	}
	var batch struct {
		Questions []authn.Question `json:"questions"`
	}
	var probe map[string]json.RawMessage // which form: the strict decoding below judges the rest
	_ = json.Unmarshal(body, &probe)
	_, isBatch := probe["questions"]
	single := !isBatch
	if single {
		var q authn.Question
		err = ingest.DecodeObject(r.Header.Get("Content-Type"), bytes.NewReader(body), &q)
		batch.Questions = []authn.Question{q}
	} else {
		err = ingest.DecodeObject(r.Header.Get("Content-Type"), bytes.NewReader(body), &batch)
	}
	if err == nil {
		err = checkQuestions(batch.Questions, single)
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	by := principalOf(r)
	answers := make([]authn.Answer, len(batch.Questions))
	var now, later []custos.Event
	for i, q := range batch.Questions {
		ans, ev := a.dir.Decide(by, q)
		answers[i] = ans
		if ans.Allowed && !ans.BreakGlass {
			later = append(later, ev)
		} else {
			now = append(now, ev)
		}
	}
	if len(now) > 0 {
		if err := a.dlog.Record(r.Context(), authn.Submitter(by), now); err != nil {
			a.problem(w, r, err) // not recorded: no answer
			return
		}
	}
	for _, ev := range later {
		if err := a.dlog.Defer(r.Context(), ev); err != nil {
			a.problem(w, r, custos.Errorf("authorize", custos.Unavailable, "the decision could not be recorded"))
			return
		}
	}
	if single {
		writeJSON(w, http.StatusOK, answers[0])
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"answers": answers})
}

func checkQuestions(qs []authn.Question, single bool) error {
	if !single && (len(qs) == 0 || len(qs) > maxQuestions) {
		return invalidField("questions", fmt.Sprintf("must hold 1 to %d questions", maxQuestions))
	}
	var fields []custos.FieldError
	for i, q := range qs {
		prefix := ""
		if !single {
			prefix = fmt.Sprintf("questions[%d].", i)
		}
		fields = append(fields, q.Check(prefix)...)
	}
	if len(fields) > 0 {
		return &custos.Error{Op: "authorize", Kind: custos.Invalid, Detail: "the question is invalid", Fields: fields}
	}
	return nil
}

type grantRequest struct {
	UserID    string `json:"user_id"`
	Reason    string `json:"reason"`
	PatientID string `json:"patient_id"`
	Duration  string `json:"duration"`
}

func (a *API) openGrant(w http.ResponseWriter, r *http.Request) {
	var req grantRequest
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	var d time.Duration
	if req.Duration != "" {
		var err error
		if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 {
			a.problem(w, r, invalidField("duration", `must be a positive duration such as "30m" or "2h"`))
			return
		}
	}
	g, err := a.dir.OpenGrant(r.Context(), principalOf(r), authn.GrantRequest{UserID: req.UserID, Reason: req.Reason,
		PatientID: req.PatientID, Duration: d})
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (a *API) listGrants(w http.ResponseWriter, r *http.Request) {
	review := r.URL.Query().Get("review")
	if review != "" && review != "open" {
		a.problem(w, r, invalidField("review", `must be "open" (grants awaiting review) or absent`))
		return
	}
	grants, err := a.dir.Grants(r.Context(), review == "open")
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writePage(w, r, a, grants, func(g authn.Grant) string { return g.OpenedAt + "\x00" + g.ID })
}

func (a *API) reviewGrant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Note string `json:"note"`
	}
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	g, err := a.dir.ReviewGrant(r.Context(), principalOf(r), r.PathValue("id"), req.Note)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// enrollTOTP gives the caller's user a second factor to confirm: the secret
// is shown once.
func (a *API) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	e, err := a.dir.EnrollTOTP(r.Context(), principalOf(r))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (a *API) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, &req); err != nil {
		a.problem(w, r, err)
		return
	}
	if err := a.dir.ConfirmTOTP(r.Context(), principalOf(r), req.Code); err != nil {
		a.problem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
