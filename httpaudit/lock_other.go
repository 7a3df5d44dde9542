//go:build !unix

package httpaudit

import "os"

// lockDir does not lock on this platform: one process per spool directory
// is the caller's to ensure.
func lockDir(string) (*os.File, error) { return nil, nil }
