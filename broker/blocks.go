package broker

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/legalmfa/mfa/api"
	"github.com/legalmfa/mfa/audit"
	"github.com/legalmfa/mfa/guard"
)

// AdminBlock is a caller blocked from asking a person, as the operator
// sees it: both by keyed hash, never in the clear.
type AdminBlock struct {
	Key    string `json:"Key"`
	Caller string `json:"Caller"`
	Person string `json:"Person"`
	guard.Block
}

// AdminBlocks is the answer to listing blocks.
type AdminBlocks struct {
	Blocks []AdminBlock `json:"Blocks"`
}

func adminBlock(blk guard.Block) AdminBlock {
	caller, person, _ := strings.Cut(blk.Key, ".")
	return AdminBlock{Key: blk.Key, Caller: caller, Person: person, Block: blk}
}

// handleAdminBlocks lists the blocks in force. An operator looking for one
// person's (who asks to be able to use a service again) gives pnr and
// country; for one caller, requester (a LegalId) or ip. The broker hashes
// them as it does for the blocklist: the query is the only place the
// personal number appears, on the operator's own socket, and it is never
// logged (the access log names routes, not queries).
func (b *Broker) handleAdminBlocks(c *gin.Context) {
	if b.blocks == nil {
		c.JSON(http.StatusOK, AdminBlocks{Blocks: []AdminBlock{}})
		return
	}
	var person, caller string
	pnr, country := c.Query("pnr"), c.Query("country")
	if (pnr == "") != (country == "") {
		b.fail(c, "", fieldError("pnr", "give pnr and country together"))
		return
	}
	if pnr != "" {
		person = b.pnrHash.sum(country, pnr)
	}
	switch requester, ip := c.Query("requester"), c.Query("ip"); {
	case requester != "" && ip != "":
		b.fail(c, "", fieldError("requester", "give requester or ip, not both"))
		return
	case requester != "":
		caller = b.pnrHash.of("caller", "id:"+requester)
	case ip != "":
		caller = b.pnrHash.of("caller", "ip:"+ip)
	}
	out := AdminBlocks{Blocks: []AdminBlock{}}
	for _, blk := range b.blocks.List(b.now()) {
		ab := adminBlock(blk)
		if (person == "" || ab.Person == person) && (caller == "" || ab.Caller == caller) {
			out.Blocks = append(out.Blocks, ab)
		}
	}
	c.JSON(http.StatusOK, out)
}

// handleAdminUnblock lifts one block, on every replica: the way back for a
// person who answered "not me" by mistake.
func (b *Broker) handleAdminUnblock(c *gin.Context) {
	key := c.Param("key")
	if b.blocks == nil {
		b.fail(c, "", &api.Error{Code: api.CodeNotFound, Message: "this broker keeps no blocks"})
		return
	}
	for _, blk := range b.blocks.List(b.now()) {
		if blk.Key != key {
			continue
		}
		if err := b.blocks.Unblock(c.Request.Context(), key, b.now()); err != nil {
			b.fail(c, "", err)
			return
		}
		b.log.Info("block lifted by operator", "block", key, "request", blk.RequestID)
		b.record(audit.Event{Kind: audit.KindUnblock, Block: key, Request: blk.RequestID})
		c.JSON(http.StatusOK, adminBlock(blk))
		return
	}
	b.fail(c, "", fmt.Errorf("%w in force", guard.ErrNoBlock))
}
