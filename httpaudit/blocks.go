package httpaudit

import (
	"context"
	"net/netip"
	"time"
)

// blockEntry is a block in force, as last fetched from Custos.
type blockEntry struct {
	prefix netip.Prefix
	until  time.Time
}

// blockLoop refreshes the blocked ranges every BlockRefresh. When Custos
// cannot answer, the last list stays in force until its blocks expire.
func (a *Auditor) blockLoop(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.BlockRefresh)
	defer t.Stop()
	for {
		if err := a.refreshBlocks(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("httpaudit: refreshing blocked addresses", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (a *Auditor) refreshBlocks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	items, err := a.cfg.Client.ActiveBlocks(ctx)
	if err != nil {
		return err
	}
	list := make([]blockEntry, 0, len(items))
	for _, b := range items {
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			ip, aerr := netip.ParseAddr(b.CIDR)
			if aerr != nil {
				a.log.Warn("httpaudit: a block Custos listed is not an address range", "cidr", b.CIDR)
				continue
			}
			p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		list = append(list, blockEntry{prefix: p.Masked(), until: b.BlockedUntil})
	}
	a.blocks.Store(&list)
	return nil
}

// blocked reports whether ip is in a block in force.
func (a *Auditor) blocked(ip netip.Addr) bool {
	list := a.blocks.Load()
	if list == nil || !ip.IsValid() {
		return false
	}
	now := a.cfg.Now()
	for _, b := range *list {
		if b.prefix.Contains(ip) && now.Before(b.until) {
			return true
		}
	}
	return false
}
