package fhir

import (
	"net/http"
	"strings"
)

// Metadata serves GET /fhir/metadata: the CapabilityStatement, listing
// exactly what these handlers do. It holds no record of the trail, and
// FHIR clients read it before they authenticate, so it is open, like the
// health probes.
func (h *Handler) Metadata(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.Problem(w, r, err)
		return
	}
	cs := capabilityStatement(h.base(r))
	delete(cs, "resourceType")
	b := mustMarshal(cs)
	// resourceType first, as FHIR's JSON has it.
	h.write(w, r, http.StatusOK, append([]byte(`{"resourceType":"CapabilityStatement",`), b[1:]...))
}

var balpProfiles = []string{"Create", "Read", "Update", "Delete", "Query",
	"PatientCreate", "PatientRead", "PatientUpdate", "PatientDelete", "PatientQuery"}

type code struct {
	Code          string `json:"code"`
	Documentation string `json:"documentation,omitempty"`
}

type searchParamOut struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

func capabilityStatement(base string) map[string]any {
	var sp []searchParamOut
	for _, p := range params {
		typ := [...]string{"date", "token", "reference", "string"}[p.typ]
		def := ""
		if !strings.Contains(p.name, ".") {
			def = "http://hl7.org/fhir/SearchParameter/AuditEvent-" + p.name
			if p.name == "date" || p.name == "patient" || p.name == "type" {
				def = map[string]string{"date": "http://hl7.org/fhir/SearchParameter/clinical-date",
					"patient": "http://hl7.org/fhir/SearchParameter/clinical-patient",
					"type":    "http://hl7.org/fhir/SearchParameter/AuditEvent-type"}[p.name]
			}
		}
		sp = append(sp, searchParamOut{Name: p.name, Definition: def, Type: typ, Documentation: p.doc})
	}
	var profiles []string
	for _, p := range balpProfiles {
		profiles = append(profiles, balp+p)
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-11-26",
		"publisher":    "Custos",
		"kind":         "instance",
		"software":     map[string]any{"name": "Custos"},
		"implementation": map[string]any{"description": "Custos audit trail: an IHE ATNA Audit Record Repository (ITI-20 FHIR feed, ITI-81 retrieve) with BALP content",
			"url": base},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"rest": []any{map[string]any{
			"mode": "server",
			"documentation": "Every record of the ledger, however it came in, is an AuditEvent whose id is its ledger index. " +
				"Search results are newest first (_sort=-date only), paged by next links (_count up to 1000, default 100); " +
				"total is given when the whole result fits in the first page; _summary=count counts up to 10000. " +
				"Repeated parameters mean AND, commas mean OR; modifiers are not supported. Unknown parameters are refused (400) " +
				"unless Prefer: handling=lenient. _format=json and _pretty are understood; XML is not served (406). " +
				"Every read and search is itself recorded as an AuditEvent.",
			"security": map[string]any{"description": "Authorization: Bearer <Custos API key>: events:write to create, events:read to read and search. This statement is open."},
			"resource": []any{map[string]any{
				"type":              "AuditEvent",
				"profile":           "http://hl7.org/fhir/StructureDefinition/AuditEvent",
				"supportedProfile":  profiles,
				"documentation":     "Records received as FHIR are served as received, with Custos's id and meta. Others are shaped as the BALP profile of their action (login and logout as the R4 login and logout examples).",
				"interaction":       []code{{Code: "create"}, {Code: "read"}, {Code: "vread"}, {Code: "search-type"}},
				"versioning":        "versioned",
				"readHistory":       false,
				"updateCreate":      false,
				"conditionalCreate": false,
				"conditionalRead":   "not-supported",
				"conditionalUpdate": false,
				"conditionalDelete": "not-supported",
				"searchParam":       sp,
			}},
			"interaction": []code{{Code: "batch", Documentation: "Entries that POST AuditEvents; each entry succeeds or fails on its own."},
				{Code: "transaction", Documentation: "Entries that POST AuditEvents; stored whole or not at all."}},
		}},
	}
}
