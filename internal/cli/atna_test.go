package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna/atnatest"
)

func TestServeATNAFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"TLS without a certificate", []string{"--atna-tls", "127.0.0.1:0"}, exitError, "--atna-tls: atna: TLS needs a certificate"},
		{"a certificate without TLS", []string{"--atna-cert", "x.crt"}, exitUsageErr, "need --atna-tls"},
		{"a tiny frame limit", []string{"--atna-tls", "127.0.0.1:0", "--atna-max-frame", "10"}, exitUsageErr, "--atna-max-frame"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}, c.args...)
			if code := Main(context.Background(), args, &out, &out); code != c.code || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, c.code, c.want, out.String())
			}
		})
	}
}

// TestServeATNA: a DICOM audit message sent over mutual TLS to serve
// --atna-tls is found by GET /v1/events?patient_id=…, submitted by the
// client certificate; a clean shutdown commits what was read.
func TestServeATNA(t *testing.T) {
	const token = "atna-test-admin-token-0123456789"
	pki := atnatest.NewPKI(t, t.TempDir())
	atnaAddr := freeAddr(t)
	addr, _, stderr, stop := runServe(t, "--data", t.TempDir(), "--bootstrap-token", token,
		"--atna-tls", atnaAddr, "--atna-cert", pki.ServerCert, "--atna-key", pki.ServerKey, "--atna-client-ca", pki.CA)
	conn, err := tls.Dial("tcp", atnaAddr, pki.ClientTLS(&pki.Client))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	msg := `<AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2026-11-26T10:00:00Z" EventOutcomeIndicator="0"><EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification><ActiveParticipant UserID="dr.grey" UserIsRequestor="true" NetworkAccessPointID="203.0.113.7" NetworkAccessPointTypeCode="2"/><AuditSourceIdentification AuditSourceID="pacs"/><ParticipantObjectIdentification ParticipantObjectID="p-123" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/></AuditMessage>`
	if _, err := conn.Write(atnatest.Frame([]byte(msg))); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Each search also records its own READ of the patient's trail.
		var items []custos.Event
		for _, e := range searchEvents(t, addr, token, url.Values{"patient_id": {"p-123"}}) {
			if e.Kind == custos.KindClient {
				items = append(items, e)
			}
		}
		if len(items) == 1 {
			e := items[0]
			if e.User.ID != "dr.grey" || e.Action != custos.ActionRead || e.Outcome != custos.OutcomeSuccess ||
				e.IPAddress != "203.0.113.7" || e.SubmittedBy != "atna:pacs-1" || e.Original == nil || string(e.Original.Data) != msg {
				t.Fatalf("stored as %+v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message is not found by its patient:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a real server's index
	}
	if code := stop(); code != exitOK {
		t.Fatalf("shutdown: exit %d\n%s", code, stderr.String())
	}
}

func searchEvents(t *testing.T, addr, token string, q url.Values) []custos.Event {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/events?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Items []custos.Event }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&page) != nil {
		t.Fatalf("GET /v1/events: %s", resp.Status)
	}
	return page.Items
}
