package terminal

import (
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// FieldViolation is one google.rpc.BadRequest entry: the request field the switch refused and
// why (never card data).
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// Problem is a refused call as the terminal reports it: the gRPC status code and message and,
// for INVALID_ARGUMENT, the BadRequest field violations from the status details.
type Problem struct {
	Status          string           `json:"status"`
	Message         string           `json:"message"`
	FieldViolations []FieldViolation `json:"field_violations,omitempty"`
}

// ProblemOf decodes a gRPC error; ok is false when err carries no gRPC status.
func ProblemOf(err error) (p Problem, ok bool) {
	st, ok := status.FromError(err)
	if !ok {
		return Problem{}, false
	}
	p = Problem{Status: codeName(st.Code().String()), Message: st.Message()}
	for _, d := range st.Details() {
		if br, isBR := d.(*errdetails.BadRequest); isBR {
			for _, v := range br.GetFieldViolations() {
				p.FieldViolations = append(p.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	return p, true
}

// codeName spells a gRPC code as the protocol does ("InvalidArgument" -> "INVALID_ARGUMENT").
func codeName(camel string) string {
	if camel == "OK" {
		return camel
	}
	var b strings.Builder
	for i, r := range camel {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
