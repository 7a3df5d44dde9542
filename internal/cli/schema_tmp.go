package cli

func isSchemaProblem(err error) bool { return err != nil }
