package httpaudit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/httpaudit/internal/custostest"
)

// An EHR's FHIR API audited into Custos: reads and searches are recorded
// through the spool; the bulk export answers only once its event is in the
// trail.
func Example() {
	trail := custostest.MustRun() // a real Custos on a loopback port, for the example
	defer trail.Close()
	spool, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(spool)

	auditor, err := httpaudit.New(httpaudit.Config{
		Client:   client.New(trail.URL, trail.Key(), nil), // a key with the ingest_service role
		Source:   "ehr-web",
		SpoolDir: spool,
		FHIRBase: "/fhir",
		User: func(r *http.Request) (custos.User, bool) { // the application's own authentication
			if id := r.Header.Get("X-User"); id != "" {
				return custos.User{ID: id, Roles: []string{"physician"}}, true
			}
			return custos.User{}, false
		},
		Routes: []httpaudit.Route{
			{Pattern: "GET /fhir/Patient/{id}/$export", Action: custos.ActionExport, FailClosed: true},
			{Pattern: "GET /healthz", Skip: true},
		},
	})
	if err != nil {
		panic(err)
	}
	defer auditor.Close(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"resourceType":"Bundle"}`) })
	app := httptest.NewServer(auditor.Handler(mux))
	defer app.Close()

	for _, path := range []string{"/fhir/Patient/123/$export", "/fhir/Patient/123", "/fhir/Observation?patient=123"} {
		req, _ := http.NewRequest("GET", app.URL+path, nil)
		req.Header.Set("X-User", "dr.grey")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := auditor.Flush(ctx); err != nil {
		panic(err)
	}
	for _, e := range trail.Events("ehr-web") {
		fmt.Println(e.User.ID, e.Action, e.ResourceType, e.ResourceID, e.PatientID, e.Outcome, e.StatusCode)
	}
	// Output:
	// dr.grey EXPORT Patient 123 123 success 200
	// dr.grey READ Patient 123 123 success 200
	// dr.grey READ Observation  123 success 200
}
