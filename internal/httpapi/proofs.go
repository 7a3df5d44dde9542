package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/witness"
)

// latestSize is the size of the newest signed checkpoint: proofs are served
// up to it, so that every proof can be checked against a signed root.
// The note is served with the witnesses' cosignatures that have arrived.
func (a *API) latestSize(r *http.Request) (uint64, []byte, error) {
	cp, err := a.st.LatestCheckpoint(r.Context())
	if errors.Is(err, custos.ErrNotFound) {
		return 0, nil, custos.Errorf("httpapi.checkpoint", custos.NotFound, "no checkpoint yet: the ledger is empty")
	}
	if err != nil {
		return 0, nil, err
	}
	signed := cp.Note
	if len(cp.Cosignatures) > 0 {
		if merged, err := witness.MergeSignatures(cp.Note, cp.Cosignatures); err == nil {
			signed = merged
		} else {
			a.log.Warn("stored cosignatures do not merge; serving the checkpoint without them", "size", cp.Size, "err", err)
		}
	}
	return cp.Size, signed, nil
}

func (a *API) checkpoint(w http.ResponseWriter, r *http.Request) {
	_, note, err := a.latestSize(r)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(note)
}

func sizeParam(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, invalidParam(name, "must be a tree size: a non-negative integer")
	}
	return n, nil
}

func (a *API) inclusionProof(w http.ResponseWriter, r *http.Request) {
	index, err := parseIndex(r.PathValue("index"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	latest, _, err := a.latestSize(r)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	size, err := sizeParam(r, "tree_size", latest)
	switch {
	case err != nil:
	case size > latest:
		err = invalidParam("tree_size", fmt.Sprintf("must be at most %d, the latest checkpoint's size", latest))
	case index >= size:
		err = custos.Errorf("httpapi.proof", custos.NotFound,
			"index %d is not in the tree of size %d; a new checkpoint is signed at least every second", index, size)
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	hashes, err := ledger.InclusionProof(r.Context(), a.st, index, size)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	leaf, err := a.st.Nodes(r.Context(), []uint64{ledger.LeafPos(index)})
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"index": index, "tree_size": size, "leaf_hash": leaf[0], "hashes": orEmpty(hashes)})
}

func (a *API) consistencyProof(w http.ResponseWriter, r *http.Request) {
	latest, _, err := a.latestSize(r)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	from, err := sizeParam(r, "from", 0)
	var to uint64
	if err == nil {
		to, err = sizeParam(r, "to", latest)
	}
	switch {
	case err != nil:
	case r.URL.Query().Get("from") == "":
		err = invalidParam("from", "is required")
	case to > latest:
		err = invalidParam("to", fmt.Sprintf("must be at most %d, the latest checkpoint's size", latest))
	case from > to:
		err = invalidParam("from", "must not be greater than to")
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	hashes, err := ledger.ConsistencyProof(r.Context(), a.st, from, to)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "hashes": orEmpty(hashes)})
}

func orEmpty(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}
