package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFileName is the file a writing process holds locked in the data
// folder, so that a second serve (or admin-key while serve runs) on the same
// folder is refused instead of fighting over the ledger.
const LockFileName = "custos.lock"

// ErrInUse is returned by Open when another process holds the data folder.
var ErrInUse = errors.New("the data folder is in use by another custos process")

// lockDir takes the data folder's lock (flock, released by the kernel when
// the process dies, so a crash never leaves it stale) and writes the pid in
// the file for the message a second process shows.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if _, perr := strconv.Atoi(pid); perr != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("sqlite: %s: %w (pid %s); stop it first", dir, ErrInUse, pid)
		}
		return nil, fmt.Errorf("sqlite: lock data folder: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
