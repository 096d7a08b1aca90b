package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/matryer/is"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// specFile is the API's OpenAPI document, from this package's directory.
const specFile = "../../api/openapi.yaml"

// loadSpec loads and validates the OpenAPI document and returns it with a
// router over its operations.
func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specFile)
	if err != nil {
		t.Fatalf("load %s: %v", specFile, err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specFile, err)
	}
	// Route on paths alone: the document names the make-run server, the
	// tests answer from wherever httptest listens.
	routed := *doc
	routed.Servers = nil
	router, err := legacy.NewRouter(&routed)
	if err != nil {
		t.Fatalf("router over %s: %v", specFile, err)
	}
	return doc, router
}

// muxRoute is one pattern registered on one of the package's ServeMuxes,
// read from the source.
type muxRoute struct {
	method string // "" matches every method
	path   string // in OpenAPI form: wildcards {name}, no {$}
	where  string // file:line, for messages
	// allowed is set for the method-less patterns that only answer 405
	// (methodNotAllowed(…)): the methods they name.
	allowed []string
}

// String is how a route is named in failures.
func (r muxRoute) String() string {
	m := r.method
	if m == "" {
		m = "(any method)"
	}
	return fmt.Sprintf("%s %s (%s)", m, r.path, r.where)
}

// registeredRoutes reads every mux.Handle / mux.HandleFunc pattern of the
// package's non-test source with go/ast: http.ServeMux cannot list its
// patterns, and reading the source keeps the check free of any test hook
// in the production code.
func registeredRoutes(t *testing.T) []muxRoute {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatalf("list sources: %v", err)
	}
	fset := token.NewFileSet()
	var out []muxRoute
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				// Another Handle (slog's, the webhook use case's), unless
				// it is called on a mux with a pattern built at run time,
				// which this check could not see.
				if recv, ok := sel.X.(*ast.Ident); ok && strings.Contains(strings.ToLower(recv.Name), "mux") {
					t.Errorf("%s: %s.%s called with a pattern that is not a string literal: the route check cannot read it", fset.Position(call.Pos()), recv.Name, sel.Sel.Name)
				}
				return true
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			r := muxRoute{where: fset.Position(lit.Pos()).String()}
			r.path = pattern
			if m, p, ok := strings.Cut(pattern, " "); ok {
				r.method, r.path = m, strings.TrimSpace(p)
			}
			if !strings.HasPrefix(r.path, "/") {
				t.Errorf("%s: pattern %q has a host or no path; the route check does not know it", r.where, pattern)
				return true
			}
			r.path = strings.ReplaceAll(r.path, "{$}", "")
			r.path = strings.ReplaceAll(r.path, "...}", "}")
			if inner, ok := call.Args[1].(*ast.CallExpr); ok {
				if id, ok := inner.Fun.(*ast.Ident); ok && id.Name == "methodNotAllowed" {
					r.allowed = []string{}
					for _, a := range inner.Args {
						r.allowed = append(r.allowed, methodName(t, fset, a))
					}
				}
			}
			out = append(out, r)
			return true
		})
	}
	return out
}

// methodName reads an http.MethodX constant or a string literal.
func methodName(t *testing.T, fset *token.FileSet, e ast.Expr) string {
	t.Helper()
	switch e := e.(type) {
	case *ast.SelectorExpr:
		if m, ok := strings.CutPrefix(e.Sel.Name, "Method"); ok {
			return strings.ToUpper(m)
		}
	case *ast.BasicLit:
		if s, err := strconv.Unquote(e.Value); err == nil {
			return s
		}
	}
	t.Fatalf("%s: cannot read the method %T", fset.Position(e.Pos()), e)
	return ""
}

// specOperations returns "METHOD /path" for every operation of doc.
func specOperations(doc *openapi3.T) map[string]bool {
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops[method+" "+path] = true
		}
	}
	return ops
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	is := is.New(t)
	doc, _ := loadSpec(t)
	ops := specOperations(doc)
	routes := registeredRoutes(t)

	served := map[string]bool{}    // METHOD /path the server answers
	anyMethod := map[string]bool{} // paths answered for every method by one handler
	for _, r := range routes {
		switch {
		case r.allowed != nil:
			// A 405 catcher: the methods it names must be real routes;
			// checked below, once every route is known.
		case r.method != "":
			served[r.method+" "+r.path] = true
		case strings.HasSuffix(r.path, "/"):
			// A subtree mount ("/api/", "/admin/") or the catch-all
			// "/": the sub-muxes' own routes are read too.
		case r.path == "/dashboard":
			// The dashboard's bare path, sent on to its subtree: HTML
			// pages (adapters/dashboard), not part of the API.
		default:
			anyMethod[r.path] = true
		}
	}
	is.True(len(served) >= 10) // the source still registers its routes with mux.Handle/HandleFunc

	for _, r := range routes {
		switch {
		case r.allowed != nil:
			for _, m := range r.allowed {
				if !served[m+" "+r.path] {
					t.Errorf("%s answers 405 naming %s, but no %s %s route is registered", r, m, m, r.path)
				}
			}
		case r.method != "":
			if !ops[r.method+" "+r.path] {
				t.Errorf("route %s is missing from %s", r, specFile)
			}
		case anyMethod[r.path]:
			if doc.Paths.Value(r.path) == nil || len(doc.Paths.Value(r.path).Operations()) == 0 {
				t.Errorf("route %s is missing from %s", r, specFile)
			}
		}
	}
	for op := range ops {
		_, path, _ := strings.Cut(op, " ")
		if !served[op] && !anyMethod[path] {
			t.Errorf("%s documents %s, which the server does not register", specFile, op)
		}
	}
}

// oaStore is the memory store with a switch that makes storage fail, to
// get real 500 and 503 answers.
type oaStore struct {
	ports.Storage
	fail *atomic.Pointer[error]
}

func (s oaStore) failure() error {
	if p := s.fail.Load(); p != nil {
		return *p
	}
	return nil
}

func (s oaStore) Merchants() ports.MerchantDirectory {
	return oaDirectory{MerchantDirectory: s.Storage.Merchants(), store: s}
}

func (s oaStore) InTx(ctx context.Context, fn func(context.Context, ports.Tx) error) error {
	if err := s.failure(); err != nil {
		return err
	}
	return s.Storage.InTx(ctx, fn)
}

func (s oaStore) Ping(ctx context.Context) error {
	if err := s.failure(); err != nil {
		return err
	}
	return s.Storage.Ping(ctx)
}

type oaDirectory struct {
	ports.MerchantDirectory
	store oaStore
}

func (d oaDirectory) MerchantByAPIKey(ctx context.Context, prefix string, hash domain.APIKeyHash) (domain.Merchant, error) {
	if err := d.store.failure(); err != nil {
		return domain.Merchant{}, err
	}
	return d.MerchantDirectory.MerchantByAPIKey(ctx, prefix, hash)
}

func (d oaDirectory) MerchantByStripeAccount(ctx context.Context, account string) (domain.Merchant, error) {
	if err := d.store.failure(); err != nil {
		return domain.Merchant{}, err
	}
	return d.MerchantDirectory.MerchantByStripeAccount(ctx, account)
}

const (
	oaSecret = "whsec_openapi_test"
	oaAdmin  = "openapi-admin-token"
)

// oaServer is a whole recoup server over HTTP on a memory store, with
// metrics, the admin API and a store that can be made to fail.
type oaServer struct {
	mem    *memory.Store
	srv    *httptest.Server
	fail   *atomic.Pointer[error]
	stripe *stripetest.API // behind the update links
	links  domain.LinkKeys
}

func newOAServer(t *testing.T, admin string) *oaServer {
	t.Helper()
	mem := memory.New(nil)
	fail := &atomic.Pointer[error]{}
	store := oaStore{Storage: mem, fail: fail}
	verifier, err := stripe.NewVerifier([]string{oaSecret})
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "recoup_openapi_test_total", Help: "A metric, so that /metrics has a body."}))
	clock := ports.SystemClock{}
	api := stripetest.NewAPI(t)
	links := domain.LinkKeysFromSecrets([]string{"update-link-secret-for-the-openapi-test"})
	gateway := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_openapi", APIBase: api.URL()})
	h := httpapi.NewServer(httpapi.Config{
		Verifier:    verifier,
		UpdateLinks: app.NewUpdateLinkService(links, store.Merchants(), gateway, clock),
		Webhooks:    app.NewWebhookService(store, app.WebhookConfig{Clock: clock}),
		Tasks:       app.NewTaskService(store.Tasks(), store.Ledger(), clock),
		Merchants:   app.NewMerchantService(store.Merchants(), clock),
		Policies:    app.NewPolicyService(store.Policies()),
		Endpoints:   app.NewEndpointService(store.Endpoints(), outbound.New(outbound.Config{}), clock),
		AdminToken:  admin,
		Ready:       store.Ping,
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		// Above the scenario's own handful of failed attempts.
		AuthLimiter: httpapi.NewAuthLimiter(httpapi.AuthLimitConfig{MaxFailures: 30, Window: time.Hour}),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &oaServer{mem: mem, srv: srv, fail: fail, stripe: api, links: links}
}

// oaChecker sends requests to a server and checks each exchange against
// the OpenAPI document.
type oaChecker struct {
	t      *testing.T
	router routers.Router
	opts   *openapi3filter.Options
	seen   map[string]map[int]bool // "METHOD /path" → statuses answered
}

func init() {
	// The update link's plain pages, as text.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

func newOAChecker(t *testing.T) *oaChecker {
	doc, router := loadSpec(t)
	c := &oaChecker{t: t, router: router, seen: map[string]map[int]bool{}}
	for op := range specOperations(doc) {
		c.seen[op] = map[int]bool{}
	}
	c.opts = &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		// The document only says which bearer token an operation needs;
		// whether it is the right one is the server's business, so the
		// check is only that one is presented.
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, in.SecurityScheme.Scheme) || strings.TrimSpace(token) == "" {
				return fmt.Errorf("no %s token for %s", in.SecurityScheme.Scheme, in.SecuritySchemeName)
			}
			return nil
		},
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.DisableSchemaErrorDetails(), // the failure shows the body; the schema is in the file
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)),
		},
	}
	return c
}

// exchange is one request of the scenario.
type exchange struct {
	method, target string
	body           []byte
	header         []string // name, value pairs
	want           int      // the status the server must answer
	// invalid marks a request the document itself forbids (a bad
	// parameter, a missing token…): the document must refuse it too.
	invalid bool
}

// answer is a server's response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
}

// do sends x to s and checks the request, the status and the answer
// against the document.
func (c *oaChecker) do(s *oaServer, x exchange) answer {
	c.t.Helper()
	t := c.t
	name := x.method + " " + x.target
	req, err := http.NewRequest(x.method, s.srv.URL+x.target, bytes.NewReader(x.body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for i := 0; i+1 < len(x.header); i += 2 {
		req.Header.Add(x.header[i], x.header[i+1])
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s: read answer: %v", name, err)
	}
	a := answer{status: res.StatusCode, header: res.Header, body: body}
	if a.status != x.want {
		t.Errorf("%s: status %d, want %d; body %s", name, a.status, x.want, body)
	}

	// The request again, as the document sees it.
	vreq, err := http.NewRequest(x.method, s.srv.URL+x.target, bytes.NewReader(x.body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: no operation of %s for it: %v", name, specFile, err)
		return a
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: c.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case x.invalid && reqErr == nil:
		t.Errorf("%s: %s accepts this request, which the server refuses with %d", name, specFile, a.status)
	case !x.invalid && reqErr != nil:
		t.Errorf("%s: the request does not match %s: %v", name, specFile, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: a.status, Header: a.header, Options: c.opts,
	}
	out.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: answer %d does not match %s: %v\nbody: %s", name, a.status, specFile, err, a.body)
	}
	c.seen[route.Method+" "+route.Path][a.status] = true
	return a
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenAPIMatchesAnswers drives every route through its main statuses
// and checks each real request and answer against the document.
func TestOpenAPIMatchesAnswers(t *testing.T) {
	is := is.New(t)
	c := newOAChecker(t)
	s := newOAServer(t, oaAdmin)
	admin := bearer(oaAdmin)
	jsonType := []string{"Content-Type", "application/json"}

	// Operations.
	c.do(s, exchange{method: "GET", target: "/healthz", want: 200})
	c.do(s, exchange{method: "GET", target: "/readyz", want: 200})
	c.do(s, exchange{method: "GET", target: "/metrics", want: 200})

	// Admin API.
	type created struct {
		ID     string `json:"id"`
		Key    string `json:"api_key"`
		Prefix string `json:"api_key_prefix"`
	}
	newMerchant := func(name string) created {
		t.Helper()
		var m created
		body := jsonBody(t, map[string]string{"name": name, "stripe_account_id": stripetest.NewID("acct_")})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(admin, jsonType...), want: 201}).decode(t, &m)
		return m
	}
	alice, bob := newMerchant("Alice"), newMerchant("Bob")
	{
		body := jsonBody(t, map[string]string{"name": "Carol", "stripe_account_id": "acct_carol_openapi"})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(admin, jsonType...), want: 201})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(admin, jsonType...), want: 409})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(bearer("wrong-token"), jsonType...), want: 401})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: jsonType, want: 401, invalid: true})
		blank := jsonBody(t, map[string]string{"name": " ", "stripe_account_id": "acct_blank"})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: blank, header: append(admin, jsonType...), want: 400})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: []byte(`{"name":`), header: append(admin, jsonType...), want: 400, invalid: true})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: []byte(`{"name":"x","stripe_account_id":"acct_x","plan":"gold"}`), header: append(admin, jsonType...), want: 400, invalid: true})
		huge := jsonBody(t, map[string]string{"name": strings.Repeat("n", httpapi.MaxAdminBody), "stripe_account_id": "acct_huge"})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: huge, header: append(admin, jsonType...), want: 413})
	}
	var key created
	c.do(s, exchange{method: "POST", target: "/admin/merchants/" + alice.ID + "/api-keys", header: admin, want: 201}).decode(t, &key)
	c.do(s, exchange{method: "POST", target: "/admin/merchants/" + domain.NewID() + "/api-keys", header: admin, want: 404})
	c.do(s, exchange{method: "POST", target: "/admin/merchants/not-a-merchant/api-keys", header: admin, want: 400, invalid: true})
	c.do(s, exchange{method: "POST", target: "/admin/merchants/" + alice.ID + "/api-keys", want: 401, invalid: true})
	c.do(s, exchange{method: "DELETE", target: "/admin/merchants/" + alice.ID + "/api-keys/" + key.Prefix, header: admin, want: 204})
	c.do(s, exchange{method: "DELETE", target: "/admin/merchants/" + alice.ID + "/api-keys/" + key.Prefix, header: admin, want: 404})
	c.do(s, exchange{method: "DELETE", target: "/admin/merchants/" + alice.ID + "/api-keys/nokey", header: admin, want: 400, invalid: true})
	c.do(s, exchange{method: "DELETE", target: "/admin/merchants/x/api-keys/" + key.Prefix, header: admin, want: 400, invalid: true})
	c.do(s, exchange{method: "DELETE", target: "/admin/merchants/" + alice.ID + "/api-keys/" + key.Prefix, header: bearer("nope"), want: 401})

	// The admin API of a server without an admin token does not exist.
	off := newOAServer(t, "")
	c.do(off, exchange{method: "POST", target: "/admin/merchants", body: []byte(`{"name":"x","stripe_account_id":"acct_x"}`), header: append(admin, jsonType...), want: 404})

	// Outbound webhook endpoints, as Alice, with Bob as the other tenant.
	{
		ah, bh := append(bearer(alice.Key), jsonType...), bearer(bob.Key)
		create := func(body string, want int, invalid bool) answer {
			t.Helper()
			return c.do(s, exchange{method: "POST", target: "/api/webhook-endpoints", body: []byte(body), header: ah, want: want, invalid: invalid})
		}
		const hook = `{"url":"https://93.184.215.14/hooks","events":["*"]}`
		var ep struct {
			ID string `json:"id"`
		}
		create(hook, 201, false).decode(t, &ep)
		create(`{"url":"https://93.184.215.14/hooks","events":["task.failed","dunning.exhausted"]}`, 201, false)
		create(`{"url":"https://localhost/hooks","events":["*"]}`, 400, false) // the SSRF guard
		create(`{"url":"http://93.184.215.14/hooks","events":["*"]}`, 400, false)
		create(`{"url":"https://93.184.215.14/hooks","events":["task.exploded"]}`, 400, true)
		create(`{"url":"https://93.184.215.14/hooks","events":[]}`, 400, true)
		create(`{"url":"https://93.184.215.14/hooks"}`, 400, true)
		create(`{"url":`, 400, true)
		create(`{"url":"https://93.184.215.14/`+strings.Repeat("x", httpapi.MaxRequestBody)+`","events":["*"]}`, 413, true)
		c.do(s, exchange{method: "POST", target: "/api/webhook-endpoints", body: []byte(hook), header: jsonType, want: 401, invalid: true})
		c.do(s, exchange{method: "GET", target: "/api/webhook-endpoints", header: bearer(alice.Key), want: 200})
		c.do(s, exchange{method: "GET", target: "/api/webhook-endpoints", want: 401, invalid: true})

		for range 3 {
			payload, err := domain.OutboundPayload(domain.OutboundTaskFailed, time.Now(), map[string]string{"task_id": domain.NewID()})
			is.NoErr(err)
			_, err = s.mem.Outbox().Enqueue(context.Background(), domain.MerchantID(alice.ID),
				domain.OutboundMessage{Type: domain.OutboundTaskFailed, Payload: payload, At: time.Now()})
			is.NoErr(err)
		}
		deliveries := "/api/webhook-endpoints/" + ep.ID + "/deliveries"
		var page struct {
			Deliveries []json.RawMessage `json:"deliveries"`
			Next       *string           `json:"next_cursor"`
		}
		c.do(s, exchange{method: "GET", target: deliveries + "?limit=2", header: bearer(alice.Key), want: 200}).decode(t, &page)
		is.True(len(page.Deliveries) == 2 && page.Next != nil) // a full first page
		c.do(s, exchange{method: "GET", target: deliveries + "?limit=2&cursor=" + url.QueryEscape(*page.Next), header: bearer(alice.Key), want: 200}).decode(t, &page)
		is.True(len(page.Deliveries) == 1 && page.Next == nil) // and the last
		c.do(s, exchange{method: "GET", target: deliveries + "?cursor=bogus", header: bearer(alice.Key), want: 400})
		c.do(s, exchange{method: "GET", target: deliveries + "?limit=0", header: bearer(alice.Key), want: 400, invalid: true})
		c.do(s, exchange{method: "GET", target: deliveries, header: bh, want: 403})
		c.do(s, exchange{method: "GET", target: "/api/webhook-endpoints/" + domain.NewID() + "/deliveries", header: bh, want: 404})
		c.do(s, exchange{method: "GET", target: "/api/webhook-endpoints/nope/deliveries", header: bh, want: 400, invalid: true})
		c.do(s, exchange{method: "GET", target: deliveries, want: 401, invalid: true})

		c.do(s, exchange{method: "DELETE", target: "/api/webhook-endpoints/" + ep.ID, header: bh, want: 403})
		c.do(s, exchange{method: "DELETE", target: "/api/webhook-endpoints/" + ep.ID, header: bearer(alice.Key), want: 204})
		c.do(s, exchange{method: "DELETE", target: "/api/webhook-endpoints/" + ep.ID, header: bearer(alice.Key), want: 404})
		c.do(s, exchange{method: "DELETE", target: "/api/webhook-endpoints/nope", header: bearer(alice.Key), want: 400, invalid: true})
		c.do(s, exchange{method: "DELETE", target: "/api/webhook-endpoints/" + ep.ID, want: 401, invalid: true})

		for range domain.MaxEndpointsPerShop - 1 { // one was deleted
			create(hook, 201, false)
		}
		create(hook, 409, false)
	}

	// Webhook.
	var account struct {
		Account string `json:"stripe_account_id"`
	}
	{
		body := jsonBody(t, map[string]string{"name": "Dave", "stripe_account_id": stripetest.NewID("acct_")})
		c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(admin, jsonType...), want: 201}).decode(t, &account)
	}
	deliver := func(payload []byte, want int, invalid bool) answer {
		t.Helper()
		h := append([]string{"Stripe-Signature", stripetest.Sign(payload, oaSecret, time.Now())}, jsonType...)
		return c.do(s, exchange{method: "POST", target: "/webhooks/stripe", body: payload, header: h, want: want, invalid: invalid})
	}
	var hook struct {
		Processed bool     `json:"processed"`
		Tasks     []string `json:"tasks"`
	}
	failed := paymentFailed(stripetest.NewID("evt_"), account.Account, stripetest.NewID("in_"))
	deliver(failed, 200, false).decode(t, &hook)
	is.True(hook.Processed && len(hook.Tasks) == tasksPerFailure) // the first delivery schedules the failure's plan
	deliver(failed, 200, false)                                   // a duplicate
	deliver(stripetest.Event{Type: "customer.created", Account: account.Account, Object: map[string]any{"object": "customer", "id": "cus_1"}}.JSON(), 200, false)
	deliver(paymentFailed(stripetest.NewID("evt_"), "acct_nobody", stripetest.NewID("in_")), 200, false)
	deliver(invoiceEvent(domain.EventInvoicePaid, account.Account, stripetest.NewID("in_"), ""), 200, false)
	deliver([]byte(`{"hello":"world"}`), 400, true)
	deliver([]byte(`not json`), 400, true)
	c.do(s, exchange{method: "POST", target: "/webhooks/stripe", body: failed, header: append([]string{"Stripe-Signature", "t=1,v1=00"}, jsonType...), want: 400})
	c.do(s, exchange{method: "POST", target: "/webhooks/stripe", body: failed, header: jsonType, want: 400})
	big := stripetest.Event{Type: "customer.created", Account: account.Account, Object: map[string]any{"object": "customer", "id": "cus_1", "padding": strings.Repeat("x", httpapi.MaxWebhookBody)}}.JSON()
	deliver(big, 413, false)
	unavailable := fmt.Errorf("dial tcp 10.0.0.7:5432: %w", domain.ErrUnavailable)
	s.fail.Store(&unavailable)
	deliver(paymentFailed(stripetest.NewID("evt_"), account.Account, stripetest.NewID("in_")), 503, false)
	c.do(s, exchange{method: "GET", target: "/readyz", want: 503})
	broken := errors.New("disk on fire")
	s.fail.Store(&broken)
	deliver(paymentFailed(stripetest.NewID("evt_"), account.Account, stripetest.NewID("in_")), 500, false)
	s.fail.Store(nil)

	// Tenant task API, as Dave (who has the two tasks) and Alice.
	var dave created
	daveID := merchantByAccount(t, s, account.Account)
	c.do(s, exchange{method: "POST", target: "/admin/merchants/" + daveID + "/api-keys", header: admin, want: 201}).decode(t, &dave)
	d := bearer(dave.Key)
	var page struct {
		Tasks []struct {
			ID     string `json:"id"`
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"tasks"`
		Next *string `json:"next_cursor"`
	}
	c.do(s, exchange{method: "GET", target: "/api/tasks", header: d, want: 200}).decode(t, &page)
	is.Equal(len(page.Tasks), tasksPerFailure) // Dave's tasks
	c.do(s, exchange{method: "GET", target: fmt.Sprintf("/api/tasks?limit=%d&status=all", tasksPerFailure-1), header: d, want: 200}).decode(t, &page)
	is.True(page.Next != nil) // a first page short of one has a next page
	c.do(s, exchange{method: "GET", target: fmt.Sprintf("/api/tasks?limit=%d&cursor=%s", tasksPerFailure-1, url.QueryEscape(*page.Next)), header: d, want: 200}).decode(t, &page)
	is.True(page.Next == nil) // and the second is the last
	c.do(s, exchange{method: "GET", target: "/api/tasks?status=pending&limit=200", header: d, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/tasks?cursor=bogus", header: d, want: 400})
	c.do(s, exchange{method: "GET", target: "/api/tasks?limit=0", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/tasks?limit=201", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/tasks?status=lost", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/tasks", want: 401, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/tasks", header: bearer("rk_unknown_key"), want: 401})
	c.do(s, exchange{method: "GET", target: "/api/stats", header: d, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/stats", want: 401, invalid: true})

	// The dunning policy.
	var policy map[string]any
	c.do(s, exchange{method: "GET", target: "/api/policy", header: d, want: 200}).decode(t, &policy)
	policy["max_attempts"] = 5
	c.do(s, exchange{method: "PUT", target: "/api/policy", body: jsonBody(t, policy), header: append(d, jsonType...), want: 200}).decode(t, &policy)
	is.Equal(policy["max_attempts"], 5.0) // stored
	policy["retry_delays_hours"] = []int{0}
	c.do(s, exchange{method: "PUT", target: "/api/policy", body: jsonBody(t, policy), header: append(d, jsonType...), want: 400, invalid: true})
	delete(policy, "retry_delays_hours")
	c.do(s, exchange{method: "PUT", target: "/api/policy", body: jsonBody(t, policy), header: append(d, jsonType...), want: 400, invalid: true})
	c.do(s, exchange{method: "PUT", target: "/api/policy", body: []byte(`{"max_attempts":`), header: append(d, jsonType...), want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/policy", want: 401, invalid: true})
	c.do(s, exchange{method: "PUT", target: "/api/policy", body: jsonBody(t, policy), header: jsonType, want: 401, invalid: true})

	// A customer's update link.
	{
		invoice := stripetest.NewID("in_")
		s.stripe.PutCustomer(account.Account, "cus_jenny", "jenny@example.com")
		s.stripe.PutInvoice(account.Account, stripetest.Invoice{ID: invoice, Customer: "cus_jenny", AmountDue: 2000})
		link, err := s.links.Sign(domain.UpdateLink{Merchant: domain.MerchantID(daveID), Customer: "cus_jenny", Invoice: invoice, Expires: time.Now().Add(time.Hour)})
		is.NoErr(err)
		client := s.srv.Client() // the one c.do sends with
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		a := c.do(s, exchange{method: "GET", target: "/update/" + link, want: 303})
		client.CheckRedirect = nil
		is.True(strings.HasPrefix(a.header.Get("Location"), "https://billing.stripe.com/")) // to the portal
		c.do(s, exchange{method: "GET", target: "/update/" + link + "x", want: 404})
		c.do(s, exchange{method: "GET", target: "/update/" + strings.Repeat("x", 2000), want: 404, invalid: true})
	}

	ctx := context.Background()
	dm := domain.MerchantID(daveID)
	tasks := s.mem.Tasks()
	one := domain.TaskID(hook.Tasks[0])
	c.do(s, exchange{method: "GET", target: "/api/tasks/" + string(one), header: d, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/tasks/" + string(one), header: bearer(alice.Key), want: 403})
	c.do(s, exchange{method: "GET", target: "/api/tasks/" + domain.NewID(), header: d, want: 404})
	c.do(s, exchange{method: "GET", target: "/api/tasks/not-a-task", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/tasks/" + string(one), want: 401, invalid: true})

	c.do(s, exchange{method: "POST", target: "/api/tasks/" + string(one) + "/retry", header: d, want: 409}) // still pending
	c.do(s, exchange{method: "POST", target: "/api/tasks/" + string(one) + "/retry", header: bearer(bob.Key), want: 403})
	c.do(s, exchange{method: "POST", target: "/api/tasks/" + domain.NewID() + "/retry", header: d, want: 404})
	c.do(s, exchange{method: "POST", target: "/api/tasks/x/retry", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "POST", target: "/api/tasks/" + string(one) + "/retry", want: 401, invalid: true})

	// The notification is due now: claim it (running), then fail it.
	claimed, err := s.mem.Queue().ClaimDue(ctx, time.Now().Add(time.Second), time.Hour, 10)
	is.NoErr(err)
	var running domain.Task
	for _, ct := range claimed {
		if ct.ID == one {
			running = ct
		}
	}
	is.Equal(running.ID, one)                                                                      // the due notification was claimed
	c.do(s, exchange{method: "DELETE", target: "/api/tasks/" + string(one), header: d, want: 409}) // running
	is.NoErr(s.mem.Queue().Finish(ctx, dm, one, running.Attempts, domain.TaskResult{Status: domain.StatusFailed, At: time.Now(), LastError: "smtp: 550 mailbox unavailable"}))
	c.do(s, exchange{method: "POST", target: "/api/tasks/" + string(one) + "/retry", header: d, want: 200})

	c.do(s, exchange{method: "DELETE", target: "/api/tasks/" + string(one), header: bearer(bob.Key), want: 403})
	c.do(s, exchange{method: "DELETE", target: "/api/tasks/" + string(one), header: d, want: 204})
	c.do(s, exchange{method: "DELETE", target: "/api/tasks/" + string(one), header: d, want: 404})
	c.do(s, exchange{method: "DELETE", target: "/api/tasks/nope", header: d, want: 400, invalid: true})
	c.do(s, exchange{method: "DELETE", target: "/api/tasks/" + string(one), want: 401, invalid: true})
	_, err = tasks.Get(ctx, dm, one)
	is.True(errors.Is(err, domain.ErrNotFound)) // the delete happened

	// Storage down or failing: the task API answers 503 or 500.
	s.fail.Store(&unavailable)
	c.do(s, exchange{method: "GET", target: "/api/tasks", header: d, want: 503})
	c.do(s, exchange{method: "GET", target: "/api/tasks/" + hook.Tasks[1], header: d, want: 503})
	c.do(s, exchange{method: "GET", target: "/api/stats", header: d, want: 503})
	c.do(s, exchange{method: "GET", target: "/api/policy", header: d, want: 503})
	s.fail.Store(&broken)
	c.do(s, exchange{method: "GET", target: "/api/tasks", header: d, want: 500})
	s.fail.Store(nil)

	// Brute force: failed keys from one address end in 429.
	got429 := false
	for range 100 {
		r, err := s.srv.Client().Do(mustRequest(t, s.srv.URL+"/api/tasks", "rk_guess_secret"))
		is.NoErr(err)
		r.Body.Close()
		if r.StatusCode == http.StatusTooManyRequests {
			got429 = true
			break
		}
	}
	if got429 {
		c.do(s, exchange{method: "GET", target: "/api/tasks", header: bearer("rk_guess_secret"), want: 429})
	} else {
		t.Errorf("100 failed key attempts from one address were never answered 429")
	}

	// Every operation of the document was exercised.
	for op, statuses := range c.seen {
		if len(statuses) == 0 {
			t.Errorf("the scenario never called %s", op)
			continue
		}
		got := slices.Sorted(func(yield func(int) bool) {
			for s := range statuses {
				if !yield(s) {
					return
				}
			}
		})
		t.Logf("%-45s %v", op, got)
	}
}

func mustRequest(t *testing.T, target, key string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+key)
	return r
}

// merchantByAccount returns the id of the merchant bound to account.
func merchantByAccount(t *testing.T, s *oaServer, account string) string {
	t.Helper()
	m, err := s.mem.Merchants().MerchantByStripeAccount(context.Background(), account)
	if err != nil {
		t.Fatalf("merchant of %s: %v", account, err)
	}
	return string(m.ID)
}

// TestOpenAPIDeclaresWhatLintersAsk keeps the document clean under the
// usual OpenAPI linters' recommended rules, which CI does not run: a
// server to try it on, security declared on every operation (an empty
// list on purpose for the public ones), and the 413 that every route's
// body limit can answer.
func TestOpenAPIDeclaresWhatLintersAsk(t *testing.T) {
	doc, _ := loadSpec(t)
	if len(doc.Servers) == 0 {
		t.Errorf("the document names no server")
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil && doc.Security == nil {
				t.Errorf("%s %s declares no security (use security: [] for a public operation)", method, path)
			}
			if op.Responses.Value("413") == nil {
				t.Errorf("%s %s does not document the 413 of its body limit", method, path)
			}
		}
	}
}
