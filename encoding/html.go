package encoding

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"

	"github.com/legalmfa/mfa/api"
)

//go:embed pages/*.html
var pageFiles embed.FS

// Pages renders the HTML pages: the test form and the answer for browsers.
// html/template escapes everything a caller supplied, wherever it lands.
type Pages struct {
	form, result *template.Template
}

// NewPages parses the embedded templates.
func NewPages() (*Pages, error) {
	parse := func(page string) (*template.Template, error) {
		t, err := template.ParseFS(pageFiles, "pages/layout.html", "pages/"+page)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", page, err)
		}
		return t, nil
	}
	form, err := parse("form.html")
	if err != nil {
		return nil, err
	}
	result, err := parse("result.html")
	if err != nil {
		return nil, err
	}
	return &Pages{form: form, result: result}, nil
}

// FormPage is what the test form shows.
type FormPage struct {
	MaxTimeout     int
	DefaultTimeout int
}

// Form renders the test form.
func (p *Pages) Form(f FormPage) ([]byte, error) {
	data := struct {
		FormPage
		MaxPNRLength, MaxReasonLength, MaxLegalIDLength int
	}{f, api.MaxPNRLength, api.MaxReasonLength, api.MaxLegalIDLength}
	return render(p.form, data)
}

// Result renders an answer for a browser.
func (p *Pages) Result(r api.Response) ([]byte, error) {
	w := wire(r)
	data := struct {
		wireResponse
		Title    string
		Approved bool
		Status   string
	}{w, resultTitle(r.Code), r.Code == api.CodeApproved, fmt.Sprintf("%d %s", r.Code.Status(), http.StatusText(r.Code.Status()))}
	return render(p.result, data)
}

func resultTitle(c api.Code) string {
	switch c {
	case api.CodeApproved:
		return "Approved"
	case api.CodeDenied:
		return "Denied"
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
