package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
)

// adminTokenEnv names the environment variable holding the admin
// endpoints' bearer token. They are served only when it is set.
const adminTokenEnv = "DVSYNC_ADMIN_TOKEN"

// adminRoutes registers the admin endpoints on mux, each requiring
// "Authorization: Bearer <token>":
//
//	GET  /admin/paused                                  paused tables per pipeline, with held changes
//	POST /admin/pause?pipeline=NAME&table=SCHEMA.TABLE  pause one mapped source table
//	POST /admin/resume?pipeline=NAME&table=SCHEMA.TABLE resume it
//
// Tables are those the mappings read at start-up (a reload cannot add
// any).
func adminRoutes(mux *http.ServeMux, token string, pipelines map[string]*engine.Pipeline, set *mapping.Set) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		want := []byte("Bearer " + token)
		return func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="dvsync admin"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	// target returns the pipeline and table a request names, or answers
	// it with what is wrong.
	target := func(w http.ResponseWriter, r *http.Request) (*engine.Pipeline, string, bool) {
		name, table := r.URL.Query().Get("pipeline"), r.URL.Query().Get("table")
		p, ok := pipelines[name]
		if !ok {
			http.Error(w, fmt.Sprintf("no pipeline %q; pipelines: %s", name, strings.Join(set.Connections(), ", ")), http.StatusNotFound)
			return nil, "", false
		}
		if tables := set.Tables(name); !slices.Contains(tables, table) {
			http.Error(w, fmt.Sprintf("pipeline %s maps no table %q; tables: %s", name, table, strings.Join(tables, ", ")), http.StatusNotFound)
			return nil, "", false
		}
		return p, table, true
	}
	mux.HandleFunc("GET /admin/paused", auth(func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]map[string]int{}
		for name, p := range pipelines {
			out[name] = p.Paused()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("POST /admin/pause", auth(func(w http.ResponseWriter, r *http.Request) {
		p, table, ok := target(w, r)
		if !ok {
			return
		}
		if err := p.Pause(table); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "paused %s\n", table)
	}))
	mux.HandleFunc("POST /admin/resume", auth(func(w http.ResponseWriter, r *http.Request) {
		p, table, ok := target(w, r)
		if !ok {
			return
		}
		n, err := p.Resume(table)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "resumed %s (%d held changes released)\n", table, n)
	}))
}
