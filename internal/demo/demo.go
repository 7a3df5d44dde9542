// Package demo is a small FHIR-like application of a handful of Patient
// and Observation resources, for the README's tour and the end-to-end
// tests of the audit middleware and `custos proxy`. It answers reads and
// searches (searchset Bundles) in application/fhir+json; it holds no real
// data and has no access control of its own.
package demo

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Patient is a FHIR Patient, as much as the demo needs.
type Patient struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Name         []HumanName `json:"name"`
	Gender       string      `json:"gender"`
	BirthDate    string      `json:"birthDate"`
}

// HumanName is a FHIR HumanName.
type HumanName struct {
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

// Observation is a FHIR Observation, as much as the demo needs.
type Observation struct {
	ResourceType string    `json:"resourceType"`
	ID           string    `json:"id"`
	Status       string    `json:"status"`
	Code         Concept   `json:"code"`
	Subject      Reference `json:"subject"`
	Value        Quantity  `json:"valueQuantity"`
}

// Concept is a FHIR CodeableConcept with one LOINC coding.
type Concept struct {
	Text string `json:"text"`
}

// Reference is a FHIR Reference.
type Reference struct {
	Reference string `json:"reference"`
}

// Quantity is a FHIR Quantity.
type Quantity struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Patients and Observations are the demo's data: fictitious people.
var (
	Patients = []Patient{
		patient("p-123", "Doe", "Jane", "female", "1971-03-14"),
		patient("p-124", "Doe", "John", "male", "1969-11-02"),
		patient("p-125", "Rivera", "Ana", "female", "1988-07-21"),
		patient("p-126", "Okafor", "Chidi", "male", "1990-01-30"),
	}
	Observations = []Observation{
		observation("o-1", "p-123", "Heart rate", 72, "/min"),
		observation("o-2", "p-123", "Body temperature", 36.8, "Cel"),
		observation("o-3", "p-124", "Heart rate", 88, "/min"),
		observation("o-4", "p-125", "Body weight", 61.5, "kg"),
		observation("o-5", "p-126", "Heart rate", 65, "/min"),
		observation("o-6", "p-126", "Body weight", 80.2, "kg"),
	}
)

func patient(id, family, given, gender, born string) Patient {
	return Patient{ResourceType: "Patient", ID: id, Name: []HumanName{{Family: family, Given: []string{given}}},
		Gender: gender, BirthDate: born}
}

func observation(id, patient, code string, v float64, unit string) Observation {
	return Observation{ResourceType: "Observation", ID: id, Status: "final", Code: Concept{Text: code},
		Subject: Reference{Reference: "Patient/" + patient}, Value: Quantity{Value: v, Unit: unit}}
}

// Handler serves the demo's FHIR API under base ("/fhir" say):
//
//	GET  {base}/metadata
//	GET  {base}/Patient/{id}, {base}/Observation/{id}
//	GET  {base}/Patient?name=&gender=&_id=      (searchset Bundle)
//	POST {base}/Patient/_search                  (the same, form-encoded)
//	GET  {base}/Observation?patient=&subject=&code=
//	GET  {base}/Patient/{id}/Observation         (a compartment search)
//	GET  /healthz
func Handler(base string) http.Handler {
	base = "/" + strings.Trim(base, "/")
	if base == "/" {
		base = ""
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET "+base+"/metadata", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusOK, map[string]any{"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
			"fhirVersion": "4.0.1", "format": []string{"json"}})
	})
	mux.HandleFunc("GET "+base+"/Patient/{id}", func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(Patients, func(p Patient) bool { return p.ID == r.PathValue("id") })
		if i < 0 {
			notFound(w, "Patient/"+r.PathValue("id"))
			return
		}
		write(w, http.StatusOK, Patients[i])
	})
	mux.HandleFunc("GET "+base+"/Observation/{id}", func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(Observations, func(o Observation) bool { return o.ID == r.PathValue("id") })
		if i < 0 {
			notFound(w, "Observation/"+r.PathValue("id"))
			return
		}
		write(w, http.StatusOK, Observations[i])
	})
	mux.HandleFunc("GET "+base+"/Patient", func(w http.ResponseWriter, r *http.Request) { searchPatients(w, r.URL.Query()) })
	mux.HandleFunc("POST "+base+"/Patient/_search", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			outcome(w, http.StatusBadRequest, "invalid", "the search body is not a form: "+err.Error())
			return
		}
		searchPatients(w, r.Form)
	})
	mux.HandleFunc("GET "+base+"/Observation", func(w http.ResponseWriter, r *http.Request) {
		searchObservations(w, r.URL.Query(), "")
	})
	mux.HandleFunc("GET "+base+"/Patient/{id}/Observation", func(w http.ResponseWriter, r *http.Request) {
		searchObservations(w, r.URL.Query(), r.PathValue("id"))
	})
	return mux
}

func searchPatients(w http.ResponseWriter, q url.Values) {
	var out []any
	for _, p := range Patients {
		if id := q.Get("_id"); id != "" && p.ID != id {
			continue
		}
		if g := q.Get("gender"); g != "" && p.Gender != g {
			continue
		}
		if n := strings.ToLower(q.Get("name")); n != "" &&
			!strings.HasPrefix(strings.ToLower(p.Name[0].Family), n) && !strings.HasPrefix(strings.ToLower(p.Name[0].Given[0]), n) {
			continue
		}
		out = append(out, p)
	}
	write(w, http.StatusOK, bundle(out))
}

func searchObservations(w http.ResponseWriter, q url.Values, compartment string) {
	who := compartment
	for _, k := range []string{"patient", "subject"} {
		if v := q.Get(k); v != "" {
			who = strings.TrimPrefix(v, "Patient/")
		}
	}
	var out []any
	for _, o := range Observations {
		if who != "" && o.Subject.Reference != "Patient/"+who {
			continue
		}
		if c := strings.ToLower(q.Get("code")); c != "" && !strings.Contains(strings.ToLower(o.Code.Text), c) {
			continue
		}
		out = append(out, o)
	}
	write(w, http.StatusOK, bundle(out))
}

// bundle is a searchset Bundle of resources.
func bundle(resources []any) map[string]any {
	entries := make([]map[string]any, len(resources))
	for i, r := range resources {
		entries[i] = map[string]any{"resource": r, "search": map[string]string{"mode": "match"}}
	}
	return map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(resources), "entry": entries}
}

func notFound(w http.ResponseWriter, what string) {
	outcome(w, http.StatusNotFound, "not-found", what+" is not known")
}

func outcome(w http.ResponseWriter, status int, code, text string) {
	write(w, status, map[string]any{"resourceType": "OperationOutcome",
		"issue": []map[string]string{{"severity": "error", "code": code, "diagnostics": text}}})
}

func write(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
