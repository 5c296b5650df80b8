package seclink

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// responseFields are the fields (by number) version 1 of the answer form covers, per
// message. A field added to an answer later is covered under a new version tag, so a
// terminal built against version 1 keeps verifying.
var responseFields = map[protoreflect.FullName][]protoreflect.FieldNumber{
	"payswitch.v1.AuthorizeResponse":      span(1, 13),
	"payswitch.v1.CaptureResponse":        span(1, 4),
	"payswitch.v1.VoidResponse":           span(1, 4),
	"payswitch.v1.RefundResponse":         span(1, 4),
	"payswitch.v1.CloseBatchResponse":     span(1, 10),
	"payswitch.v1.GetTransactionResponse": span(1, 2),
	"payswitch.v1.Money":                  span(1, 2),
	"payswitch.v1.Transaction":            span(1, 19),
	"payswitch.v1.BatchTotal":             span(1, 7),
	"payswitch.v1.BatchMismatch":          span(1, 5),
}

// addedFields are scalars added to an answer after version 1: each is appended, after the
// version-1 fields and in this order, only when it is set (not its proto3 default), so an
// answer without them keeps its version-1 form (payswitch/seclink.py RESPONSE_FIELDS_ADDED).
var addedFields = map[protoreflect.FullName][]protoreflect.FieldNumber{
	// risk_reason, pin_required; the cross-border fields (issue 16): billing_minor_units,
	// billing_currency, conversion_rate, rate_table, dcc_markup_bps
	"payswitch.v1.AuthorizeResponse": {15, 16, 17, 18, 19, 20, 21},
	// billing_minor_units, billing_currency, conversion_rate, rate_table,
	// billing_captured_minor_units, dcc_markup_bps, dcc_local_minor_units, dcc_local_currency
	"payswitch.v1.Transaction": {20, 21, 22, 23, 24, 25, 26, 27},
}

func span(from, to protoreflect.FieldNumber) []protoreflect.FieldNumber {
	out := make([]protoreflect.FieldNumber, 0, to-from+1)
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// ResponseMACInput is "PSW-RMAC-1" || TLV(0, operation) || the answer's version-1 fields.
func ResponseMACInput(operation string, answer proto.Message) ([]byte, error) {
	body, err := messageBytes(answer.ProtoReflect())
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), responseMACDomain...)
	out = append(out, TLV(0, []byte(operation))...)
	return append(out, body...), nil
}

func messageBytes(m protoreflect.Message) ([]byte, error) {
	desc := m.Descriptor()
	numbers, ok := responseFields[desc.FullName()]
	if !ok {
		return nil, fmt.Errorf("seclink: no version-1 answer form for %s", desc.FullName())
	}
	var out []byte
	for _, n := range numbers {
		fd := desc.Fields().ByNumber(n)
		if fd == nil {
			return nil, fmt.Errorf("seclink: %s has no field %d", desc.FullName(), n)
		}
		var raw []byte
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := m.Get(fd).List()
			for i := 0; i < list.Len(); i++ {
				item, err := messageBytes(list.Get(i).Message())
				if err != nil {
					return nil, err
				}
				raw = binary.BigEndian.AppendUint32(raw, uint32(len(item)))
				raw = append(raw, item...)
			}
		case fd.IsList() || fd.IsMap():
			return nil, fmt.Errorf("seclink: no canonical form for %s", fd.FullName())
		case fd.Message() != nil:
			if m.Has(fd) {
				sub, err := messageBytes(m.Get(fd).Message())
				if err != nil {
					return nil, err
				}
				raw = sub
			}
		default:
			s, err := scalar(fd, m.Get(fd))
			if err != nil {
				return nil, err
			}
			raw = s
		}
		out = append(out, TLV(byte(n), raw)...)
	}
	for _, n := range addedFields[desc.FullName()] {
		fd := desc.Fields().ByNumber(n)
		if fd == nil {
			return nil, fmt.Errorf("seclink: %s has no field %d", desc.FullName(), n)
		}
		if !m.Has(fd) { // a proto3 scalar is "had" only when not at its default
			continue
		}
		s, err := scalar(fd, m.Get(fd))
		if err != nil {
			return nil, err
		}
		out = append(out, TLV(byte(n), s)...)
	}
	return out, nil
}

func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if v.Bool() {
			return []byte("1"), nil
		}
		return []byte("0"), nil
	case protoreflect.EnumKind:
		return []byte(strconv.FormatInt(int64(v.Enum()), 10)), nil
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return []byte(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind,
		protoreflect.Fixed64Kind:
		return []byte(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.StringKind:
		return []byte(v.String()), nil
	case protoreflect.BytesKind:
		return v.Bytes(), nil
	}
	return nil, fmt.Errorf("seclink: no canonical form for %s", fd.FullName())
}
