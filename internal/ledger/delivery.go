package ledger

import (
	"strings"

	"errors"
	"fmt"
	"github.com/custos-audit/custos"
)

// MaxDeliveryKey bounds an idempotency key, in bytes.
const MaxDeliveryKey = 128

// ValidDelivery checks the delivery a request's first event names: a key of
// 1 to MaxDeliveryKey printable ASCII characters (no spaces), a SHA-256
// digest in lowercase hex, and the number of events of the request.
func ValidDelivery(d *custos.Delivery, events int) error {
	if err := ValidDeliveryKey(d.Key); err != nil {
		return err
	}
	if len(d.Digest) != 64 || strings.Trim(d.Digest, "0123456789abcdef") != "" {
		return errors.New("the digest must be a SHA-256 in lowercase hex")
	}
	if d.Count != events {
		return fmt.Errorf("the count must be the number of events of the request (%d)", events)
	}
	return nil
}

// ValidDeliveryKey checks an idempotency key as a client sends it.
func ValidDeliveryKey(key string) error {
	if key == "" || len(key) > MaxDeliveryKey {
		return fmt.Errorf("must be 1 to %d characters", MaxDeliveryKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	return nil
}
