package httpaudit

import (
	"context"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
)

// appendKeyed sends events under an idempotency key.
func appendKeyed(ctx context.Context, c *client.Client, key string, evs []custos.EventInput) ([]custos.Receipt, error) {
	if k, ok := any(c).(interface {
		AppendKeyed(context.Context, string, []custos.EventInput) ([]custos.Receipt, error)
	}); ok {
		return k.AppendKeyed(ctx, key, evs)
	}
	return c.Append(ctx, evs)
}
