package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds a stmtCache. The searches' SQL texts are few (one
// per combination of filters and page size); past the bound a text is
// prepared for each use, as without a cache.
const maxCachedStmts = 256

// stmtCache keeps prepared statements of one pool by SQL text, so that a
// search does not parse and plan its SQL again each time (SQLite's parser
// was about a sixth of the CPU of a patient-history query). database/sql
// prepares a cached statement on each connection of the pool the first time
// it runs there, and reuses it after.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query, or nil when the cache is
// full or it does not prepare (the caller then runs the text, which reports
// the error).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[query]
	full := len(c.m) >= maxCachedStmts
	c.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[query]; ok {
		st.Close()
		return old
	}
	if len(c.m) >= maxCachedStmts {
		st.Close()
		return nil
	}
	c.m[query] = st
	return st
}

// query runs query with args on q (the cache's pool, or a transaction on
// it), prepared once.
func (c *stmtCache) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	st := c.get(ctx, query)
	switch {
	case st == nil:
		return q.QueryContext(ctx, query, args...)
	case q == querier(c.db):
		return st.QueryContext(ctx, args...)
	}
	if tx, ok := q.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return q.QueryContext(ctx, query, args...)
}

// queryRow is query for one row.
func (c *stmtCache) queryRow(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, query string, args ...any) *sql.Row {
	st := c.get(ctx, query)
	switch {
	case st == nil:
		return q.QueryRowContext(ctx, query, args...)
	case q == any(c.db):
		return st.QueryRowContext(ctx, args...)
	}
	if tx, ok := q.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return q.QueryRowContext(ctx, query, args...)
}

// close closes the cached statements.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
