//go:build unix

package httpaudit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir's lock file, so that two
// processes never share a spool. The kernel releases it when the process
// dies, SIGKILL included.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("httpaudit: spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("httpaudit: spool %s is in use by another Auditor", dir)
		}
		return nil, fmt.Errorf("httpaudit: spool: lock: %w", err)
	}
	return f, nil
}
