package atna_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/custos-audit/custos"
)

// corpusDir holds the 21 DICOM audit messages of IPF (testdata/atna/SOURCES.md).
const corpusDir = "../../testdata/atna/dicom/ipf"

// want is what each message of the corpus maps to, written by reading the
// XML: the patient (first ParticipantObjectIdentification with role 1, first
// repetition), the requestor, the action and outcome, its address (when its
// access point is an IP address) and the audit source.
type want struct {
	patient, user string
	action        custos.Action
	outcome       custos.Outcome
	ip, source    string
}

var corpus = map[string]want{
	"atna-record-1.xml":       {"ptid12345", "smitty@readingroom.hospital.org", custos.ActionCreate, custos.OutcomeSuccess, "192.168.1.2", "ReadingRoom"},
	"atna-record-2.xml":       {"PATIENT1^^^&2.16.756.5.30.1.191.1.0.2.1&ISO", "7601002860123", custos.ActionImport, custos.OutcomeSuccess, "", "d7251114"},
	"audit-message-iti55.xml": {"", "unknown", custos.ActionRead, custos.OutcomeSuccess, "192.168.42.20", "IheSpringBootTest"},
	"pdq.xml":                 {"24^^^MPI&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO^PI", "MESA_DEPARTMENT|MESA_PD_CONSUMER", custos.ActionRead, custos.OutcomeSuccess, "127.0.0.1", "MPI"},
	"pdqm.xml":                {"", "/app-gateway/fhir/Patient", custos.ActionRead, custos.OutcomeSuccess, "10.205.114.56", "app-gateway"},
	"pdqmread.xml":            {"Patient/IHERED-2340", "/app-gateway/fhir/Patient/IHERED-2340", custos.ActionRead, custos.OutcomeSuccess, "10.205.114.56", "app-gateway"},
	"pdqv3.xml":               {"IHERED-2340^^^IHERED&1.3.6.1.4.1.21367.13.20.1000&ISO", "unknown", custos.ActionRead, custos.OutcomeSuccess, "127.0.0.1", "EHR_2019"},
	"pixfeed.xml":             {"7627199^^^HZLN&2.16.840.1.113883.3.37.4.1.1.2.411.1&ISO", "PKL|SAP-ISH", custos.ActionCreate, custos.OutcomeSuccess, "127.0.0.1", "MPI"},
	"pixfeedmerge.xml":        {"MW-10001^^^NIST2010&2.16.840.1.113883.3.72.5.9.1&ISO", "NIST|NIST_SENDER", custos.ActionDelete, custos.OutcomeSuccess, "127.0.0.1", "EHR_2019"},
	"pixfeedmergesource.xml":  {"IHERED-2340^^^IHERED&1.3.6.1.4.1.21367.13.20.1000&ISO^PI", "BLA|IHE_SYS_IHERED", custos.ActionUpdate, custos.OutcomeSuccess, "", "EHR_2019"},
	"pixfeedsource.xml":       {"IHERED-2342^^^IHERED&1.3.6.1.4.1.21367.13.20.1000&ISO^PI", "BLA|IHE_SYS_IHERED", custos.ActionUpdate, custos.OutcomeSuccess, "", "EHR_2019"},
	"pixm.xml":                {"urn:oid:1.3.6.1.4.1.21367.13.20.3000|IHEBLUE-2340", "/app-gateway/fhir/Patient/$ihe-pix", custos.ActionRead, custos.OutcomeSuccess, "10.205.114.56", "app-gateway"},
	"pixquery.xml":            {"27^^^MPI&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO^PI", "MESA_DEPARTMENT|MESA_PIX_CLIENT", custos.ActionRead, custos.OutcomeSuccess, "127.0.0.1", "MPI"},
	"pixupdatesource.xml":     {"IHERED-2342^^^IHERED&1.3.6.1.4.1.21367.13.20.1000&ISO^PI", "BLA|IHE_SYS_IHERED", custos.ActionRead, custos.OutcomeSuccess, "", "EHR_2019"},
	"pixv3feed.xml":           {"JW-824-v3^^^NIST2010&2.16.840.1.113883.3.72.5.9.1&ISO", "unknown", custos.ActionCreate, custos.OutcomeSuccess, "127.0.0.1", "EHR_2019"},
	"pixv3query.xml":          {"JW-824-v3^^^&2.16.840.1.113883.3.72.5.9.1&ISO", "unknown", custos.ActionRead, custos.OutcomeSuccess, "127.0.0.1", "EHR_2019"},
	"pixv3sourcefeed.xml":     {"PIX^^^&1.3.6.1.4.1.21367.2011.2.5.5488&ISO", "10232", custos.ActionCreate, custos.OutcomeSuccess, "127.0.0.1", "EHR_2017"},
	"start.xml":               {"", "WDF-LAP-1237$", custos.ActionRead, custos.OutcomeSuccess, "", "app-connect"},
	"stop.xml":                {"", "WDF-LAP-1237$", custos.ActionRead, custos.OutcomeSuccess, "", "app-connect"},
	"xcpd.xml":                {"IHERED-1040^^^IHERED&1.3.6.1.4.1.21367.13.20.1000&ISO", "unknown", custos.ActionRead, custos.OutcomeSuccess, "127.0.0.1", "EHR_2019"},
	"xpidsource.xml":          {"IHEGREEN-2340^^^IHEGREEN&1.3.6.1.4.1.21367.13.20.2000&ISO^PI", "BLA|IHE_SYS_IHERED", custos.ActionUpdate, custos.OutcomeSuccess, "", "EHR_2019"},
}

// readCorpus returns every message of the corpus by file name, and fails
// unless the folder holds exactly the messages of the table.
func readCorpus(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.xml"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	if len(out) != 21 || len(out) != len(corpus) {
		tb.Fatalf("%d messages in %s, %d in the table; want 21 in both", len(out), corpusDir, len(corpus))
	}
	return out
}

func (w want) check(t *testing.T, e custos.Event) {
	t.Helper()
	got := want{e.PatientID, e.User.ID, e.Action, e.Outcome, e.IPAddress, e.Source}
	if got != w {
		t.Errorf("got  %+v\nwant %+v", got, w)
	}
}
