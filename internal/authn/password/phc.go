// Package password owns local passwords: the policy a new password must
// meet, and argon2id hashes stored as PHC strings
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
//
// Invariants:
//
//   - A verification compares in constant time, and an unknown user costs
//     the same work as a wrong password (Hasher.VerifyUnknown): one argon2id
//     derivation with the current parameters, one comparison.
//   - At most Config.MaxConcurrent derivations run at once. A caller that
//     cannot get a slot within Config.Wait is refused with a
//     custos.Unavailable error, so the login endpoint cannot exhaust the
//     CPU or the memory (each derivation holds Params.Memory KiB).
//   - The parameters read from a stored hash are bounded (MaxMemory,
//     MaxTime, MaxThreads, salt and key lengths): a tampered hash cannot
//     make one verification cost more than those bounds.
//
// The PHC string format is frozen: stored hashes must keep verifying.
// Parsing is strict (fixed parameter order, no leading zeros, canonical
// unpadded base64), so that a parsed hash formats back to the same string.
package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Bounds on the parameters of a stored hash. A hash outside them is
// refused before any work is done.
const (
	MaxMemory  = 1 << 20 // KiB: 1 GiB
	MaxTime    = 10      // passes
	MaxThreads = 16      // lanes
	MinSaltLen = 8       // bytes
	MaxSaltLen = 64      // bytes
	MinKeyLen  = 16      // bytes
	MaxKeyLen  = 64      // bytes

	maxEncoded = 256 // bytes of a PHC string with every field at its maximum fits
)

// Params are the argon2id cost parameters of a hash.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes of random salt
	KeyLen  uint32 // bytes of derived key
}

// DefaultParams returns the parameters new hashes use: 64 MiB, 2 passes, 2
// lanes, a 16-byte salt and a 32-byte key.
//
// Cost of one verification on the 2-core development machine (go test
// -run=XXX -bench=Verify -count=6 ./internal/authn/password): 155–200 ms of
// CPU time (the benchmark's cpu-ms/op), spread over the 2 lanes, so about
// 100 ms of wall time on idle cores; 164 ms at best with another build
// running (load 4.7). That is inside the 50–200 ms target. On a saturated
// machine (load 10–20) it took 0.5–1 s of wall time, the CPU time
// unchanged: the Hasher's slots keep logins from adding to that load.
// 64 MiB and 2 lanes follow RFC 9106 section 4's memory-constrained option
// with fewer passes.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// Validate reports whether p is within the bounds this package accepts.
func (p Params) Validate() error {
	switch {
	case p.Memory > MaxMemory:
		return fmt.Errorf("memory %d KiB is over %d", p.Memory, MaxMemory)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("time %d is not in 1..%d", p.Time, MaxTime)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("threads %d is not in 1..%d", p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads):
		return fmt.Errorf("memory %d KiB is under 8 KiB per thread", p.Memory)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("salt length %d is not in %d..%d", p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("key length %d is not in %d..%d", p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// hash is a parsed PHC string.
type hash struct {
	params Params
	salt   []byte
	key    []byte
}

// derive computes the argon2id key of password under salt and p.
func derive(password, salt []byte, p Params) []byte {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

var b64 = base64.RawStdEncoding.Strict()

// String returns h as a PHC string.
func (h *hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads,
		b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

var errFormat = errors.New("not an argon2id PHC string")

// parse reads a PHC string, refusing anything not in the canonical form or
// outside the bounds.
func parse(s string) (*hash, error) {
	if len(s) > maxEncoded {
		return nil, errFormat
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errFormat
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("unsupported version %q", parts[2])
	}
	var p Params
	var err error
	if p.Memory, p.Time, p.Threads, err = parseCosts(parts[3]); err != nil {
		return nil, err
	}
	salt, err := decodeB64(parts[4])
	if err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	key, err := decodeB64(parts[5])
	if err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &hash{params: p, salt: salt, key: key}, nil
}

// decodeB64 decodes canonical unpadded standard base64. It refuses the
// line breaks that encoding/base64 skips.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errFormat
	}
	return b64.DecodeString(s)
}

// parseCosts reads "m=…,t=…,p=…" in that order.
func parseCosts(s string) (m, t uint32, p uint8, err error) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return 0, 0, 0, errFormat
	}
	var v [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(fields[i], name)
		if !ok || !canonicalDigits(digits) {
			return 0, 0, 0, errFormat
		}
		if v[i], err = strconv.ParseUint(digits, 10, 32); err != nil {
			return 0, 0, 0, errFormat
		}
	}
	if v[2] > MaxThreads {
		return 0, 0, 0, fmt.Errorf("threads %d is over %d", v[2], MaxThreads)
	}
	return uint32(v[0]), uint32(v[1]), uint8(v[2]), nil
}

// canonicalDigits reports whether s is a decimal number without sign or
// leading zero.
func canonicalDigits(s string) bool {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
