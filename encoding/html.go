package encoding

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
)

//go:embed pages/*.html pages/form.js
var pageFiles embed.FS

// Pages renders the HTML pages: the test form, the answer for browsers,
// and the page at the root for a visitor who came there. html/template
// escapes everything a caller supplied, wherever it lands.
type Pages struct {
	index, form, result *template.Template
	// formScript is the test form's one script, and formCSP the policy that
	// allows exactly it (by its hash) and nothing else.
	formScript template.JS
	formCSP    string
}

// ContentSecurityPolicy allows the pages' own inline styles and nothing
// else: no scripts at all, so nothing injected could run.
const ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// NewPages parses the embedded templates.
func NewPages() (*Pages, error) {
	parse := func(page string) (*template.Template, error) {
		t, err := template.ParseFS(pageFiles, "pages/layout.html", "pages/"+page)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", page, err)
		}
		return t, nil
	}
	p := &Pages{}
	var err error
	if p.index, err = parse("index.html"); err != nil {
		return nil, err
	}
	if p.form, err = parse("form.html"); err != nil {
		return nil, err
	}
	if p.result, err = parse("result.html"); err != nil {
		return nil, err
	}
	script, err := pageFiles.ReadFile("pages/form.js")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(script)
	p.formScript = template.JS(script)
	p.formCSP = strings.Replace(ContentSecurityPolicy, "default-src 'none';",
		"default-src 'none'; script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"';", 1)
	return p, nil
}

// FormPage is what the test form shows.
type FormPage struct {
	MaxTimeout     int
	DefaultTimeout int
}

// Form renders the test form, and returns the Content-Security-Policy to
// send with it: the form's script is allowed by its hash, nothing else.
func (p *Pages) Form(f FormPage) (page []byte, csp string, err error) {
	data := struct {
		FormPage
		MaxPNRLength, MaxReasonLength, MaxLegalIDLength int
		MaxIssuedLength, MinNonceLength, MaxNonceLength int
		Script                                          template.JS
	}{f, api.MaxPNRLength, api.MaxReasonLength, api.MaxLegalIDLength,
		api.MaxIssuedLength, api.MinNonceLength, api.MaxNonceLength, p.formScript}
	page, err = render(p.form, data)
	return page, p.formCSP, err
}

// Index renders the page at the root: where to go from there.
func (p *Pages) Index(version string) ([]byte, error) {
	return render(p.index, struct{ Version string }{version})
}

// Asked is what the result page says about the request it answers: what
// the person was asked, and when. The personal number is never shown.
type Asked struct {
	Reason     string
	Asked, End time.Time
}

// Result renders an answer for a browser; asked is nil when the request
// never got as far as being understood.
func (p *Pages) Result(r api.Response, asked *Asked) ([]byte, error) {
	type askedView struct {
		Reason                 string
		AskedAt, EndedAt, Took string
	}
	data := struct {
		wireResponse
		Title          string
		Approved       bool
		Status         string
		RetryAfterText string
		Asked          *askedView
	}{
		wireResponse: wire(r), Title: resultTitle(r.Code), Approved: r.Code == api.CodeApproved,
		Status:         fmt.Sprintf("%d %s", r.Code.Status(), http.StatusText(r.Code.Status())),
		RetryAfterText: HumanDuration(time.Duration(r.RetryAfter) * time.Second),
	}
	if asked != nil {
		data.Asked = &askedView{
			Reason: asked.Reason, AskedAt: asked.Asked.UTC().Format("2006-01-02 15:04:05 MST"),
			EndedAt: asked.End.UTC().Format("15:04:05 MST"), Took: HumanDuration(asked.End.Sub(asked.Asked)),
		}
	}
	return render(p.result, data)
}

// HumanDuration says how long d is the way a person would: "45 seconds",
// "2 minutes 5 seconds", "23 hours 59 minutes", "2 days". Under a second it
// is milliseconds; past a minute, the smallest unit is left out.
func HumanDuration(d time.Duration) string {
	if d < time.Second {
		return plural(int(d/time.Millisecond), "millisecond")
	}
	type unit struct {
		d    time.Duration
		name string
	}
	units := []unit{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	var parts []string
	for i, u := range units {
		if n := int(d / u.d); n > 0 {
			parts = append(parts, plural(n, u.name))
			d -= time.Duration(n) * u.d
			// Two units say enough: "1 day 3 hours", not the seconds.
			if len(parts) == 2 || i == len(units)-1 {
				break
			}
		} else if len(parts) > 0 {
			break
		}
	}
	return strings.Join(parts, " ")
}

func plural(n int, name string) string {
	if n == 1 {
		return "1 " + name
	}
	return strconv.Itoa(n) + " " + name + "s"
}

func resultTitle(c api.Code) string {
	switch c {
	case api.CodeApproved:
		return "Approved"
	case api.CodeDenied, api.CodeDeniedNotMe, api.CodeWrongNumber:
		return "Denied"
	case api.CodeOrderCreated:
		return "Order placed"
	case api.CodePending:
		return "Waiting for the person"
	case api.CodeCancelled:
		return "Cancelled"
	case api.CodeTimeout:
		return "No answer in time"
	case api.CodeUnknownPerson:
		return "No such person"
	}
	if c.Status() < 500 {
		return "The request was refused"
	}
	return "The broker could not handle the request"
}

func render(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", data); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return b.Bytes(), nil
}
