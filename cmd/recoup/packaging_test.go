package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Ports   []string `yaml:"ports"`
	Volumes []string `yaml:"volumes"`
	Restart string   `yaml:"restart"`
}

// interpolate resolves compose's ${NAME:-default} with nothing set in the
// environment, as a fresh `docker compose up` does; a bare ${NAME} is empty.
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{([A-Z_]+)(?::-([^}]*))?\}`).ReplaceAllString(s, "$2")
}

func (s composeService) getenv(name string) string { return interpolate(s.Environment[name]) }

// TestComposeFile: compose.yaml starts PostgreSQL with a health check, runs
// `recoup migrate up` once it is healthy, and starts serve and a worker
// once the migration has succeeded, each with the settings it needs (as
// loadConfig reads them).
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"migrate", "postgres", "serve", "worker"}) {
		t.Fatalf("compose.yaml has the services %v; want migrate, postgres, serve, worker", names)
	}

	pg := c.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:") || len(pg.Healthcheck.Test) < 2 || !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Errorf("postgres: image %q, healthcheck %v; want a postgres image checked with pg_isready", pg.Image, pg.Healthcheck.Test)
	}
	named := false
	for _, v := range pg.Volumes {
		if name, dir, ok := strings.Cut(v, ":"); ok && dir == "/var/lib/postgresql/data" {
			_, named = c.Volumes[name]
		}
	}
	if !named {
		t.Errorf("postgres keeps its data in no named volume: %v", pg.Volumes)
	}

	want := map[string]struct {
		command   []string
		after     string // the service it waits for
		condition string
	}{
		"migrate": {[]string{"migrate", "up"}, "postgres", "service_healthy"},
		"serve":   {[]string{"serve", "--worker=false"}, "migrate", "service_completed_successfully"},
		"worker":  {[]string{"worker"}, "migrate", "service_completed_successfully"},
	}
	for name, w := range want {
		s := c.Services[name]
		if !slices.Equal(s.Command, w.command) {
			t.Errorf("%s: command %v, want %v", name, s.Command, w.command)
		}
		if got := s.DependsOn[w.after].Condition; got != w.condition {
			t.Errorf("%s: depends on %s with condition %q, want %q", name, w.after, got, w.condition)
		}
		if s.Build != "." || s.Image != c.Services["migrate"].Image {
			t.Errorf("%s: build %q, image %q; want the Dockerfile here, one image for every recoup service", name, s.Build, s.Image)
		}
		// The command is one recoup knows, with flags it accepts.
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append(append([]string{"recoup"}, s.Command...), "--help"), env(), &stdout, &stderr); err != nil {
			t.Errorf("%s: recoup %s is not a command: %v", name, strings.Join(s.Command, " "), err)
		}
		// Its database is the postgres service, with its credentials.
		u, err := url.Parse(s.getenv("DATABASE_URL"))
		if err != nil || u.Hostname() != "postgres" || u.User.Username() != pg.Environment["POSTGRES_USER"] ||
			strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"] {
			t.Errorf("%s: DATABASE_URL %q does not point at the postgres service's database", name, s.getenv("DATABASE_URL"))
		} else if p, _ := u.User.Password(); p != pg.Environment["POSTGRES_PASSWORD"] {
			t.Errorf("%s: DATABASE_URL has another password than POSTGRES_PASSWORD", name)
		}
	}
	if c.Services["migrate"].Restart != "no" {
		t.Errorf("migrate: restart %q; it must run once", c.Services["migrate"].Restart)
	}

	serve := c.Services["serve"]
	cfg, err := loadConfig(serve.getenv, true)
	if err != nil {
		t.Errorf("serve's environment does not load: %v", err)
	}
	if len(cfg.AdminToken) < 32 {
		t.Errorf("serve: RECOUP_ADMIN_TOKEN %q is shorter than 32 characters", cfg.AdminToken)
	}
	if !slices.Contains(serve.Ports, "8080:8080") || cfg.Addr != ":8080" {
		t.Errorf("serve: listens on %s, publishes %v; want :8080 published", cfg.Addr, serve.Ports)
	}

	worker := c.Services["worker"]
	wcfg, err := loadConfig(worker.getenv, false)
	if err != nil {
		t.Errorf("worker's environment does not load: %v", err)
	}
	if wcfg.MetricsAddr == "" || !slices.Contains(worker.Ports, strings.TrimPrefix(wcfg.MetricsAddr, ":")+":"+strings.TrimPrefix(wcfg.MetricsAddr, ":")) {
		t.Errorf("worker: RECOUP_METRICS_ADDR %q, ports %v; want its metrics address set and published", wcfg.MetricsAddr, worker.Ports)
	}
	if _, err := loadConfig(c.Services["migrate"].getenv, false); err != nil {
		t.Errorf("migrate's environment does not load: %v", err)
	}
}

// dockerInstructions splits a Dockerfile into its instructions (comments
// dropped, continued lines joined), each as "KEYWORD rest".
func dockerInstructions(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// TestDockerfile checks the Dockerfile's essentials: a build stage on the
// golang image of the pinned toolchain making a static (CGO_ENABLED=0),
// version-stamped binary, and a final stage on distroless static or
// scratch running it as a non-root user, serve by default on 8080.
func TestDockerfile(t *testing.T) {
	ins := dockerInstructions(t, "../../Dockerfile")
	var stages [][]string
	for _, in := range ins {
		if strings.HasPrefix(in, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stage(s); want a build stage and a final one", len(stages))
	}
	build, final := strings.Join(stages[0], "\n"), strings.Join(stages[len(stages)-1], "\n")

	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	toolchain := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(gomod)
	if toolchain == nil || !strings.HasPrefix(stages[0][0], "FROM golang:"+string(toolchain[1])+" ") {
		t.Errorf("the build stage starts %q; want the golang image of go.mod's toolchain", stages[0][0])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "-X main.commit=", "-X main.date=", "go build", "./cmd/recoup"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage lacks %q", want)
		}
	}
	from := stages[len(stages)-1][0]
	if !strings.Contains(from, "distroless/static") && from != "FROM scratch" {
		t.Errorf("the final stage is %q; want distroless static or scratch", from)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindStringSubmatch(final)
	if user == nil || strings.HasPrefix(user[1], "root") || strings.HasPrefix(user[1], "0") {
		t.Errorf("the final stage runs as %v; want a non-root USER", user)
	}
	for _, want := range []string{"COPY --from=", "EXPOSE 8080", `CMD ["serve"]`} {
		if !strings.Contains(final, want) {
			t.Errorf("the final stage lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \[".*recoup"\]$`).MatchString(final) {
		t.Errorf("the final stage's ENTRYPOINT is not recoup")
	}

	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil || !slices.Contains(strings.Split(string(ignore), "\n"), ".git") {
		t.Errorf(".dockerignore does not keep .git out of the build context (%v)", err)
	}
}
