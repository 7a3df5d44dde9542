package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/custos-audit/custos/internal/leaf"
)

// version prints the release (the module version, or the VCS revision of a
// development build) and the leaf-encoding versions this binary reads and
// writes.
func version(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	release, revision := buildVersion()
	fmt.Fprintf(stdout, "custos %s", release)
	if revision != "" {
		fmt.Fprintf(stdout, " revision %s", revision)
	}
	fmt.Fprintf(stdout, "\nleaf encodings: reads versions %d and %d, writes version %d\n", leaf.Version1, leaf.Version2, leaf.Current)
	return exitOK
}

// buildVersion is the binary's release (module version, or "(devel)") and
// its VCS revision, if known.
func buildVersion() (release, revision string) {
	release = "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			release = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					revision += " (modified)"
				}
			}
		}
	}
	return release, revision
}

// versionString is the generator version reports carry.
func versionString() string {
	release, revision := buildVersion()
	if revision != "" {
		return release + " " + revision
	}
	return release
}
