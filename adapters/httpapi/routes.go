package httpapi

import (
	"net/http"
	"strings"
)

// Every route of the adapter. Each path also gets a method-less pattern
// answering 405, so that a wrong method is told apart from a wrong path.

// routes mounts the pieces of NewServer at the documented paths.
func (s *server) routes(mux *http.ServeMux) {
	// The webhook, the task and the admin API limit their bodies
	// themselves; everything else here reads none and gets MaxRequestBody.
	mux.Handle("/webhooks/stripe", s.webhook) // POST; other methods 405
	mux.Handle("/api/", s.tasks)              // authenticates first, then routes
	mux.Handle("/admin/", s.admin)            // 404 unless an admin token is set
	mux.Handle("GET /healthz", limitBody(MaxRequestBody, NewHealthHandler()))
	mux.Handle("GET /readyz", limitBody(MaxRequestBody, NewReadyHandler(s.cfg.Ready, s.log)))
	if s.cfg.UpdateLinks != nil {
		mux.Handle("GET /update/{token}", limitBody(MaxRequestBody, NewUpdateLinkHandler(s.cfg.UpdateLinks, s.log)))
	}
	if s.cfg.Dashboard != nil {
		mux.Handle("/dashboard", s.cfg.Dashboard)
		mux.Handle("/dashboard/", s.cfg.Dashboard)
	}
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", limitBody(MaxRequestBody, s.cfg.Metrics))
	}
	mux.Handle("/", limitBody(MaxRequestBody, http.HandlerFunc(notFound)))
}

func (a *taskAPI) routes(mux *http.ServeMux) {
	mux.Handle("GET /api/tasks", forMerchant(a.log, a.handleList))
	mux.Handle("GET /api/tasks/{id}", forMerchant(a.log, a.handleGet))
	mux.Handle("DELETE /api/tasks/{id}", forMerchant(a.log, a.handleDelete))
	mux.Handle("POST /api/tasks/{id}/retry", forMerchant(a.log, a.handleRetry))
	mux.Handle("GET /api/stats", forMerchant(a.log, a.handleStats))
	if a.policies != nil {
		mux.Handle("GET /api/policy", forMerchant(a.log, a.handleGetPolicy))
		mux.Handle("PUT /api/policy", forMerchant(a.log, a.handlePutPolicy))
		mux.HandleFunc("/api/policy", methodNotAllowed(http.MethodGet, http.MethodPut))
	}
	if a.endpoints != nil {
		mux.Handle("POST /api/webhook-endpoints", forMerchant(a.log, a.handleCreateEndpoint))
		mux.Handle("GET /api/webhook-endpoints", forMerchant(a.log, a.handleListEndpoints))
		mux.Handle("DELETE /api/webhook-endpoints/{id}", forMerchant(a.log, a.handleDeleteEndpoint))
		mux.Handle("GET /api/webhook-endpoints/{id}/deliveries", forMerchant(a.log, a.handleDeliveries))
		mux.HandleFunc("/api/webhook-endpoints", methodNotAllowed(http.MethodGet, http.MethodPost))
		mux.HandleFunc("/api/webhook-endpoints/{id}", methodNotAllowed(http.MethodDelete))
		mux.HandleFunc("/api/webhook-endpoints/{id}/deliveries", methodNotAllowed(http.MethodGet))
	}

	mux.HandleFunc("/api/tasks", methodNotAllowed(http.MethodGet))
	mux.HandleFunc("/api/tasks/{id}", methodNotAllowed(http.MethodGet, http.MethodDelete))
	mux.HandleFunc("/api/tasks/{id}/retry", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/api/stats", methodNotAllowed(http.MethodGet))
	mux.HandleFunc("/", notFound)
}

func (a *adminAPI) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/merchants", a.handleCreateMerchant)
	mux.HandleFunc("POST /admin/merchants/{id}/api-keys", a.handleIssueKey)
	mux.HandleFunc("DELETE /admin/merchants/{id}/api-keys/{prefix}", a.handleRevokeKey)

	mux.HandleFunc("/admin/merchants", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/admin/merchants/{id}/api-keys", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/admin/merchants/{id}/api-keys/{prefix}", methodNotAllowed(http.MethodDelete))
	mux.HandleFunc("/", notFound)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: "Not found"})
}

func methodNotAllowed(allowed ...string) http.HandlerFunc {
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed, use " + allow})
	}
}
