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

// queryRow runs query for one row on the cache's pool, prepared once.
func (c *stmtCache) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// inTx returns st bound to tx (the statement as prepared on the
// transaction's connection, prepared there the first time), or, when st is
// nil, query prepared on tx for this use; it is closed with tx. Get st
// before the transaction begins: the transaction holds a connection of the
// pool that get may need.
func inTx(ctx context.Context, tx *sql.Tx, st *sql.Stmt, query string) (*sql.Stmt, error) {
	if st != nil {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
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
