package api

// Response is every answer of the MFA resource: the approval with its
// evidence, and every other outcome. Its JSON is the answer's JSON; the
// XML and text answers carry the same fields under the same names.
type Response struct {
	Code    Code   `json:"Code"`
	Message string `json:"Message"`
	// RequestID names the MFA request once one was created.
	RequestID string `json:"RequestId,omitempty"`
	// Field names the request field at fault, for field errors.
	Field string `json:"Field,omitempty"`
	// RetryAfter, in seconds, when trying again later may succeed.
	RetryAfter int       `json:"RetryAfter,omitempty"`
	Evidence   *Evidence `json:"Evidence,omitempty"`
	// Order is where an order stands: in every answer of /Orders that
	// concerns one.
	Order *Order `json:"Order,omitempty"`
}

// Evidence lets a relying party verify offline what the device signed.
// Binary values are standard base64 in JSON, XML and text.
type Evidence struct {
	LegalID      string `json:"LegalId"`
	Decision     string `json:"Decision"`
	Algorithm    string `json:"Algorithm"`
	PublicKey    []byte `json:"PublicKey"`
	PublicKeyURL string `json:"PublicKeyUrl"`
	// SignedData is exactly the bytes the device's Signature covers.
	SignedData []byte `json:"SignedData"`
	Signature  []byte `json:"Signature"`
	// Push is exactly the push the device was shown; SignedData names its
	// SHA-256.
	Push []byte `json:"Push"`
	// Match is the number the person picked, for an order with number
	// matching; SignedData (MFA-Answer/2) holds it too.
	Match string `json:"Match,omitempty"`
}
