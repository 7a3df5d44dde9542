package alert_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/alert"
)

// verify is the receiver's check from the package comment, with the
// standard library only.
func verify(secret []byte, r *http.Request, body []byte) bool {
	ts := r.Header.Get("Custos-Timestamp")
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("Custos-Signature"))) {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	return err == nil && time.Since(time.Unix(sec, 0)).Abs() <= 5*time.Minute
}

// A receiver checks each request as the package comment shows.
func Example_receiver() {
	secret := []byte("a shared secret of 32 bytes, ok!")
	body := `{"delivery_id":"se-8f3a:raised:1042","id":"se-8f3a","index":1042,"kind":"raised"}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)

	r := httptest.NewRequest(http.MethodPost, "/hooks/custos", strings.NewReader(body))
	r.Header.Set(alert.HeaderTimestamp, ts)
	r.Header.Set(alert.HeaderSignature, alert.Sign(secret, ts, []byte(body)))
	fmt.Println("genuine:", verify(secret, r, []byte(body)))
	fmt.Println("tampered:", verify(secret, r, []byte(strings.Replace(body, "1042", "1043", 1))))
	// Output:
	// genuine: true
	// tampered: false
}
