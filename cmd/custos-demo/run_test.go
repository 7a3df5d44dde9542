package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/cli"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls url until it answers (a real listener's readiness).
func waitFor(t *testing.T, url string, exited <-chan int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case code := <-exited:
			t.Fatalf("exited with %d before %s answered", code, url)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer in 20 s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDemoAudited runs the demo audited through the middleware into a
// real Custos: a read and a search are in the trail under the demo's user
// once the demo has stopped (which sends what it holds).
func TestDemoAudited(t *testing.T) {
	const token = "demo-admin-token-0123456789"
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", token)
	custosAddr, demoAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan int, 1)
	go func() {
		served <- cli.Main(ctx, []string{"serve", "--data", t.TempDir(), "--addr", custosAddr}, io.Discard, io.Discard)
	}()
	waitFor(t, "http://"+custosAddr+"/readyz", served)

	demoCtx, stopDemo := context.WithCancel(context.Background())
	defer stopDemo()
	demo := make(chan int, 1)
	go func() {
		demo <- run(demoCtx, []string{"--addr", demoAddr, "--custos-url", "http://" + custosAddr, "--token", token,
			"--spool", t.TempDir()}, io.Discard, io.Discard)
	}()
	waitFor(t, "http://"+demoAddr+"/healthz", demo)
	for _, path := range []string{"/fhir/Patient/p-125", "/fhir/Observation?patient=p-125"} {
		req, _ := http.NewRequest("GET", "http://"+demoAddr+path, nil)
		req.Header.Set("X-Demo-User", "dr.grey;physician")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "p-125") {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	stopDemo()
	if code := <-demo; code != 0 {
		t.Fatalf("demo exit %d", code)
	}
	page, err := client.New("http://"+custosAddr, token, nil).Events(context.Background(), url.Values{"patient_id": {"p-125"}})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range page.Items {
		if e.User.ID != "dr.grey" || e.Source != "custos-demo" || e.User.Roles[0] != "physician" {
			t.Errorf("%+v", e)
		}
		paths = append(paths, e.RequestPath)
	}
	if len(paths) != 2 {
		t.Fatalf("events for p-125: %v", paths)
	}
	cancel()
	<-served
}
