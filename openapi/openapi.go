// Package openapi holds the broker's public HTTP API as an OpenAPI 3.1
// document, openapi.json, which the broker serves byte for byte at
// GET /openapi.json.
//
// The document is written by hand, not generated from the Go code, because
// it is the contract: what relying parties and devices may rely on, in a
// form from which clients in any language can be generated. The broker is
// held to it rather than the other way round: the tests of cmd/mfa-broker
// send live requests to a real broker and validate every request and
// answer against the document, check that every route the broker serves is
// in it and nothing else is, and the tests here check that its outcome
// codes and hints are exactly those of package api and that its field rules
// agree with the broker's decoders. A document generated from Go types would
// describe only their shapes: not the signed forms, the evidence a relying
// party verifies offline, the statuses each outcome goes with, nor the
// rules each field must meet; and generating Go from it would lose the
// signing and evidence logic that packages api and identity carry.
//
// Edit openapi.json by hand, keeping it indented as encoding/json's Indent
// with two spaces does (a test checks).
package openapi

import _ "embed"

//go:embed openapi.json
var document []byte

// Document is the OpenAPI 3.1 document, as served. Callers must not modify
// the slice.
func Document() []byte { return document }
