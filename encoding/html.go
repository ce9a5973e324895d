package encoding

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
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
	}{f, MaxPNRLength, MaxReasonLength, MaxLegalIDLength}
	return render(p.form, data)
}

// Result renders an answer for a browser.
func (p *Pages) Result(r Response) ([]byte, error) {
	w := r.wire()
	data := struct {
		wireResponse
		Title    string
		Approved bool
		Status   string
	}{w, resultTitle(r.Code), r.Code == CodeApproved, fmt.Sprintf("%d %s", r.Code.Status(), http.StatusText(r.Code.Status()))}
	return render(p.result, data)
}

func resultTitle(c Code) string {
	switch c {
	case CodeApproved:
		return "Approved"
	case CodeDenied:
		return "Denied"
	case CodeTimeout:
		return "No answer in time"
	case CodeUnknownPerson:
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
