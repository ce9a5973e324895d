package broker

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/openapi"
	"github.com/legalmfa/mfa/order"
)

// handleOpenAPI serves the API's contract, the OpenAPI document, byte for
// byte as the broker was built with it.
func (b *Broker) handleOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "application/json", openapi.Document())
}

// Route is one route of the public HTTP interface: a method, and a path
// in the OpenAPI document's syntax, a parameter in braces ("/Orders/{ref}").
type Route struct {
	Method string
	Path   string
}

// Routes lists every route the public HTTP interface serves, sorted by
// path and method, as the router registers them: the test that holds the
// OpenAPI document to the broker compares the two.
func Routes() ([]Route, error) {
	// Only a broker with an order book serves /Orders, as every broker the
	// service starts does; routes are listed here, not served, so the book
	// is never used.
	b := &Broker{orders: (*order.Book)(nil)}
	r, err := b.router()
	if err != nil {
		return nil, err
	}
	var routes []Route
	for _, ri := range r.Routes() {
		segments := strings.Split(ri.Path, "/")
		for i, s := range segments {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				segments[i] = "{" + name + "}"
			}
		}
		routes = append(routes, Route{Method: ri.Method, Path: strings.Join(segments, "/")})
	}
	slices.SortFunc(routes, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method))
	})
	return routes, nil
}
