package broker

import (
	"reflect"

	"github.com/legalmfa/mfa/internal/jsonkeys"
)

// exactKeys holds a JSON body to the shape of the Go value it is decoded
// into, as strictly as the MFA resource holds its requests (see
// jsonkeys.Exact).
func exactKeys(body []byte, t reflect.Type) error { return jsonkeys.Exact(body, t) }
