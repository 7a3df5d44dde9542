package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestServeRefusesTinyMaxChanges(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), []string{"serve", "--data", t.TempDir(), "--max-changes", "100"}, &out, &out)
	if code != exitUsageErr || !strings.Contains(out.String(), "--max-changes 100: must be at least 4096") {
		t.Fatalf("serve --max-changes 100: exit %d\n%s", code, out.String())
	}
}
