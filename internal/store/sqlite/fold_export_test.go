package sqlite

// SetFoldMinPart sets the fewest indexes a parallel read of a report window
// takes, and returns the function that restores it.
func SetFoldMinPart(n uint64) (restore func()) {
	old := foldMinPart
	foldMinPart = n
	return func() { foldMinPart = old }
}
