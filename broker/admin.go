package broker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/encoding"
	"github.com/legalmfa/mfa/identity"
)

// AdminIdentity is an identity as the operator sees it, properties and all.
type AdminIdentity struct {
	ID         string              `json:"Id"`
	State      identity.State      `json:"State"`
	Properties []identity.Property `json:"Properties"`
	PublicKey  string              `json:"PublicKey"`
	DeviceID   string              `json:"DeviceId"`
	ValidFrom  time.Time           `json:"ValidFrom,omitzero"`
	ValidTo    time.Time           `json:"ValidTo,omitzero"`
	Created    time.Time           `json:"Created"`
	Updated    time.Time           `json:"Updated"`
	Version    int64               `json:"Version"`
	// SamePerson lists the other identities with this one's PNR and
	// COUNTRY: a second phone of the same person, or an impostor, which is
	// for the operator to tell before approving.
	SamePerson []SamePerson `json:"SamePerson"`
}

// SamePerson is another identity of the same PNR and COUNTRY.
type SamePerson struct {
	ID      string         `json:"Id"`
	State   identity.State `json:"State"`
	Name    string         `json:"Name"`
	Created time.Time      `json:"Created"`
}

// Stats is what the broker process is doing, for operators and load tests.
type Stats struct {
	Goroutines int    `json:"Goroutines"`
	RSSBytes   uint64 `json:"RssBytes"`
	HeapBytes  uint64 `json:"HeapBytes"`
	// StackBytes is the memory in goroutine stacks: a pending request's
	// goroutine keeps one while it waits.
	StackBytes uint64 `json:"StackBytes"`
	Pending    int    `json:"Pending"`
}

// pendingCounter is what an Asker that keeps pending requests can tell.
type pendingCounter interface{ Pending() int }

func (b *Broker) handleStats(c *gin.Context) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	st := Stats{Goroutines: runtime.NumGoroutine(), RSSBytes: residentBytes(), HeapBytes: m.HeapAlloc, StackBytes: m.StackInuse}
	if p, ok := b.asker.(pendingCounter); ok {
		st.Pending = p.Pending()
	}
	c.JSON(http.StatusOK, st)
}

// residentBytes reads the process's resident set size from /proc (Linux);
// elsewhere it is 0.
func residentBytes() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// AdminList is the answer to listing identities.
type AdminList struct {
	Identities []AdminIdentity `json:"Identities"`
	// Next is the After value for the next page, or "" after the last.
	Next string `json:"Next,omitempty"`
}

// TransitionRequest is the optional body of an operator's decision.
type TransitionRequest struct {
	// ValidFor is how long an approval lasts (Go duration, e.g. "8760h").
	ValidFor string `json:"ValidFor,omitempty"`
	// From is the state the change starts from; it fails with 409 if the
	// identity is in any other state. Empty means the action's usual start:
	// Created for approve and reject, Approved for obsolete and compromise.
	// Two operators deciding at once therefore never both win.
	From identity.State `json:"From,omitempty"`
	// SamePerson approves an identity although another one, Approved or
	// waiting, holds the same PNR and COUNTRY: the operator has checked
	// that both are the person's.
	SamePerson bool `json:"SamePerson,omitempty"`
}

// actionStates maps an operator's verb to the state it usually starts from
// and the state it leads to.
func actionStates(action string) (from, to identity.State, ok bool) {
	switch action {
	case "approve":
		return identity.Created, identity.Approved, true
	case "reject":
		return identity.Created, identity.Rejected, true
	case "obsolete":
		return identity.Approved, identity.Obsoleted, true
	case "compromise":
		return identity.Approved, identity.Compromised, true
	}
	return "", "", false
}

// maxAdminPage bounds one page of a listing.
const maxAdminPage = 1000

// AdminHandler serves the operator's endpoints. It has no authentication
// of its own: serve it only where only the operator can reach it, such as
// a Unix socket in a directory only the broker's user can enter.
func (b *Broker) AdminHandler() http.Handler {
	r := gin.New()
	r.Use(b.recoverPanic, b.accessLog)
	r.GET("/identities", b.handleAdminList)
	r.GET("/identities/:id", b.handleAdminGet)
	r.POST("/identities/:id/:action", b.handleAdminTransition)
	r.GET("/blocks", b.handleAdminBlocks)
	r.DELETE("/blocks/:key", b.handleAdminUnblock)
	r.GET("/peers", b.handleAdminPeers)
	r.POST("/peers", b.handleAdminAddPeer)
	r.POST("/peers/:id/:action", b.handleAdminDecidePeer)
	r.DELETE("/peers/:id", b.handleAdminRemovePeer)
	r.GET("/stats", b.handleStats)
	// Profiles for the operator: the socket is the only way in.
	r.Any("/debug/pprof/*profile", gin.WrapF(func(w http.ResponseWriter, req *http.Request) {
		switch name := strings.TrimPrefix(req.URL.Path, "/debug/pprof/"); name {
		case "cmdline":
			pprof.Cmdline(w, req)
		case "profile":
			pprof.Profile(w, req)
		case "symbol":
			pprof.Symbol(w, req)
		case "trace":
			pprof.Trace(w, req)
		default:
			pprof.Index(w, req)
		}
	}))
	r.NoRoute(func(c *gin.Context) {
		b.fail(c, encoding.MediaJSON, &api.Error{Code: api.CodeNotFound, Message: "no such operator endpoint"})
	})
	return r
}

// adminIdentity is id as the operator sees it, with the other identities
// of the same person.
func (b *Broker) adminIdentity(ctx context.Context, id identity.Identity) (AdminIdentity, error) {
	others, err := b.samePerson(ctx, id)
	if err != nil {
		return AdminIdentity{}, err
	}
	return AdminIdentity{
		ID: id.ID, State: id.State, Properties: id.Properties,
		PublicKey: identity.EncodePublicKey(id.PublicKey), DeviceID: id.DeviceID(),
		ValidFrom: id.From, ValidTo: id.To, Created: id.Created, Updated: id.Updated, Version: id.Version,
		SamePerson: others,
	}, nil
}

// samePerson lists the other identities with id's PNR and COUNTRY.
func (b *Broker) samePerson(ctx context.Context, id identity.Identity) ([]SamePerson, error) {
	out := []SamePerson{}
	pnr, country := id.Property(identity.PropPNR), id.Property(identity.PropCountry)
	if pnr == "" || country == "" {
		return out, nil
	}
	all, err := b.registry.FindPerson(ctx, pnr, country)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.ID != id.ID {
			out = append(out, SamePerson{ID: o.ID, State: o.State, Name: o.DisplayName(), Created: o.Created})
		}
	}
	return out, nil
}

func (b *Broker) handleAdminList(c *gin.Context) {
	q := identity.Query{After: c.Query("after"), Limit: maxAdminPage}
	if s := c.Query("state"); s != "" {
		st, err := identity.ParseState(s)
		if err != nil {
			b.fail(c, encoding.MediaJSON, fieldError("state", err.Error()))
			return
		}
		q.State = st
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxAdminPage {
			b.fail(c, encoding.MediaJSON, fieldError("limit", fmt.Sprintf("limit must be 1 to %d", maxAdminPage)))
			return
		}
		q.Limit = n
	}
	ids, err := b.registry.List(c.Request.Context(), q)
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	out := AdminList{Identities: make([]AdminIdentity, 0, len(ids))}
	for _, id := range ids {
		ai, err := b.adminIdentity(c.Request.Context(), id)
		if err != nil {
			b.fail(c, encoding.MediaJSON, err)
			return
		}
		out.Identities = append(out.Identities, ai)
	}
	if len(ids) == q.Limit {
		out.Next = ids[len(ids)-1].ID
	}
	c.JSON(http.StatusOK, out)
}

func (b *Broker) handleAdminGet(c *gin.Context) {
	id, err := b.registry.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	ai, err := b.adminIdentity(c.Request.Context(), id)
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	c.JSON(http.StatusOK, ai)
}

func (b *Broker) handleAdminTransition(c *gin.Context) {
	from, to, ok := actionStates(c.Param("action"))
	if !ok {
		b.fail(c, encoding.MediaJSON, &api.Error{Code: api.CodeNotFound, Message: "unknown action: use approve, reject, obsolete or compromise"})
		return
	}
	var req TransitionRequest
	if c.Request.ContentLength != 0 {
		if err := decodeStrictJSON(c, 4096, &req); err != nil {
			b.fail(c, encoding.MediaJSON, err)
			return
		}
	}
	validFor := b.identityValidity
	if req.ValidFor != "" {
		d, err := time.ParseDuration(req.ValidFor)
		if err != nil || d <= 0 {
			b.fail(c, encoding.MediaJSON, fieldError("ValidFor", "ValidFor must be a positive duration such as 8760h"))
			return
		}
		validFor = d
	}
	if req.From != "" {
		st, err := identity.ParseState(string(req.From))
		if err != nil {
			b.fail(c, encoding.MediaJSON, fieldError("From", err.Error()))
			return
		}
		from = st
	}
	if to == identity.Approved && !req.SamePerson {
		if err := b.checkSamePerson(c.Request.Context(), c.Param("id")); err != nil {
			b.fail(c, encoding.MediaJSON, err)
			return
		}
	}
	now := b.now().UTC()
	change := identity.Change{From: from, To: to, At: now}
	if to == identity.Approved {
		change.ValidFrom, change.ValidTo = now, now.Add(validFor)
	}
	id, err := b.registry.Transition(c.Request.Context(), c.Param("id"), change)
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	b.log.Info("identity state changed by operator", "id", id.ID, "from", from, "to", to)
	b.record(audit.Event{Kind: audit.KindIdentity, Identity: id.ID, Person: b.personOf(id),
		Action: c.Param("action"), From: string(from), To: string(to)})
	if b.onIdentityChange != nil {
		// The peers this broker shares with learn of it at once: an
		// approval, and a revocation above all.
		b.onIdentityChange(c.Request.Context(), id)
	}
	ai, err := b.adminIdentity(c.Request.Context(), id)
	if err != nil {
		b.fail(c, encoding.MediaJSON, err)
		return
	}
	c.JSON(http.StatusOK, ai)
}

// checkSamePerson refuses to approve an identity while another one holds
// its PNR and COUNTRY and is Approved or waiting: both would be asked for
// that person's MFA, and an impostor's approval would count. The operator
// says it is the same person (SamePerson) once that is checked.
func (b *Broker) checkSamePerson(ctx context.Context, legalID string) error {
	id, err := b.registry.Get(ctx, legalID)
	if err != nil {
		return err
	}
	others, err := b.samePerson(ctx, id)
	if err != nil {
		return err
	}
	var live []string
	for _, o := range others {
		if o.State == identity.Approved || o.State == identity.Created {
			live = append(live, fmt.Sprintf("%s (%s, %s)", o.ID, o.State, o.Name))
		}
	}
	if len(live) == 0 {
		return nil
	}
	return fmt.Errorf("%w: other identities hold this PNR and COUNTRY: %s; if they are the same person's, approve with SamePerson (mfa-broker identity approve --same-person)",
		identity.ErrConflict, strings.Join(live, ", "))
}
