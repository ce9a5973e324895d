package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// served is every metric name a broker with every source serves, and the
// series Prometheus makes itself for every target ("up"), which the alert
// rules may name beside the broker's.
func served() []string {
	m := New()
	m.Watch(Sources{
		Pending: func() int { return 0 }, OrdersRunning: func() int { return 0 }, BlocksInForce: func() int { return 0 },
		NATSConnected: func() bool { return true }, NATSReconnects: func() uint64 { return 0 },
		StorePing: func(context.Context) error { return nil }, Peers: func() []Peer { return nil },
	})
	return append(m.Names(), "up")
}

// known reports whether name is a metric the broker serves, a histogram's
// series included.
func known(names []string, name string) bool {
	if slices.Contains(names, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(names, base) {
			return true
		}
	}
	return false
}

// selected lists the metrics an expression selects.
func selected(expr parser.Expr) []string {
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}

// TestAlertRules loads deploy/alerts.yaml with Prometheus' own rule parser
// (which checks every expression, duration and template), and checks that
// every metric an alert names is one the broker serves: a renamed metric
// cannot leave an alert that never fires.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("../deploy/alerts.yaml", false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		return
	}
	names := served()
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a severity label, a summary and a description", r.Alert)
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			for _, n := range selected(expr) {
				if !known(names, n) {
					t.Errorf("%s names %s, which the broker does not serve", r.Alert, n)
				}
			}
		}
	}
	// What must wake an operator (issue: store or NATS down, pending near
	// the cap, errors, denial and "not me" spikes, a peer link down).
	for _, want := range []string{"MFAStoreDown", "MFANATSDown", "MFAPendingNearCap", "MFAErrorRate", "MFADenialSpike", "MFANotMeSpike", "MFAPeerLinkDown"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestDashboard parses every expression of deploy/grafana-dashboard.json
// with Prometheus' parser, and checks each names only metrics the broker
// serves.
func TestDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var exprs, queries []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				switch s, ok := c.(string); {
				case ok && k == "expr":
					exprs = append(exprs, s)
				case ok && k == "definition":
					queries = append(queries, s)
				default:
					walk(c)
				}
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}
	// The dashboard's variables as Prometheus sees them once Grafana has
	// put them in; a variable's own query is Grafana's, not PromQL.
	grafanaVariables := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "${instance}", ".*", "$instance", ".*")
	labelValues := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	names := served()
	p := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		expr, err := p.ParseExpr(grafanaVariables.Replace(e))
		if err != nil {
			t.Errorf("%s: %v", e, err)
			continue
		}
		for _, n := range selected(expr) {
			if !known(names, n) {
				t.Errorf("%s names %s, which the broker does not serve", e, n)
			}
		}
	}
	for _, q := range queries {
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable query %q is not label_values(metric, label)", q)
			continue
		}
		if !known(names, m[1]) {
			t.Errorf("variable query %q names %s, which the broker does not serve", q, m[1])
		}
	}
}

// TestComposeScrapesBrokers: the example deployment's Prometheus scrapes
// every broker of deploy/compose.yaml on the port its --metrics-addr
// gives, under the job name the alerts expect, with the alert rules
// loaded; Grafana gets the dashboard.
func TestComposeScrapesBrokers(t *testing.T) {
	t.Parallel()
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	for file, v := range map[string]any{"../deploy/compose.yaml": &compose, "../deploy/prometheus.yml": &prom} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	var brokers []string
	for name, s := range compose.Services {
		if addr := s.Environment["MFA_METRICS_ADDR"]; addr != "" {
			_, port, _ := strings.Cut(addr, ":")
			brokers = append(brokers, name+":"+port)
		}
	}
	slices.Sort(brokers)
	if len(brokers) < 2 {
		t.Fatalf("brokers with metrics in compose.yaml: %v", brokers)
	}
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].JobName != "mfa-broker" || len(prom.ScrapeConfigs[0].StaticConfigs) != 1 {
		t.Fatalf("prometheus.yml scrapes %+v, want one job mfa-broker", prom.ScrapeConfigs)
	}
	targets := slices.Sorted(slices.Values(prom.ScrapeConfigs[0].StaticConfigs[0].Targets))
	if !slices.Equal(targets, brokers) {
		t.Errorf("prometheus.yml scrapes %v, the brokers serve metrics at %v", targets, brokers)
	}
	mounted := func(service, file string) bool {
		for _, v := range compose.Services[service].Volumes {
			if src, _, _ := strings.Cut(v, ":"); src == file {
				return true
			}
		}
		return false
	}
	for _, m := range []struct{ service, file string }{
		{"prometheus", "./prometheus.yml"}, {"prometheus", "./alerts.yaml"},
		{"grafana", "./grafana-dashboard.json"}, {"grafana", "./grafana-datasource.yaml"}, {"grafana", "./grafana-dashboards.yaml"},
	} {
		if !mounted(m.service, m.file) {
			t.Errorf("compose.yaml does not give %s %s", m.service, m.file)
		}
	}
	if !slices.Contains(prom.RuleFiles, "/etc/prometheus/alerts.yaml") {
		t.Errorf("prometheus.yml loads rules %v, not alerts.yaml", prom.RuleFiles)
	}
}
