// Package seclink builds the bytes the payswitch terminal link MACs, as payswitch/seclink.py's
// docstring and the protos' comments define them (version 1):
//
//	TLV(tag, value) = tag (1 byte) || length of value (4 bytes, big-endian) || value
//
// strings UTF-8, integers decimal ASCII, booleans "1"/"0", enums their number, bytes raw; an
// absent field is still present with length 0. A request form is "PSW-MAC-1" followed by
// TLVs numbered from 1, the operation's name first. An answer form is "PSW-RMAC-1" ||
// TLV(0, operation) || TLV(field number, value) for every version-1 field but mac.
//
// Protobuf serialisation is not canonical across implementations, so nothing here MACs
// serialised messages.
package seclink

import (
	"encoding/binary"
	"sort"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"

	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
)

// Operation names, the first field of every form.
const (
	OpAuthorize      = "authorize"
	OpCapture        = "capture"
	OpVoid           = "void"
	OpRefund         = "refund"
	OpCloseBatch     = "close_batch"
	OpGetTransaction = "get_transaction"
)

var (
	macDomain         = []byte("PSW-MAC-1")
	responseMACDomain = []byte("PSW-RMAC-1")
)

// TLV is tag (1 byte) || length (4 bytes, big-endian) || value.
func TLV(tag byte, value []byte) []byte {
	out := make([]byte, 5, 5+len(value))
	out[0] = tag
	binary.BigEndian.PutUint32(out[1:], uint32(len(value)))
	return append(out, value...)
}

func form(domain []byte, fields ...[]byte) []byte {
	out := append([]byte(nil), domain...)
	for i, f := range fields {
		out = append(out, TLV(byte(i+1), f)...)
	}
	return out
}

func num[T ~int32 | ~int64 | ~uint32 | ~uint64](v T) []byte {
	return []byte(strconv.FormatInt(int64(v), 10))
}

// AuthorizeMACInput: operation, terminal_id, merchant_id, stan, local_time,
// amount.minor_units, amount.currency, entry_mode (number), encrypted_card.ksn,
// encrypted_card.ciphertext, pin_block, emv (EMVBytes), idempotency_key; then, only for a
// DCC choice (issue 16), dcc_currency and dcc_rate.
func AuthorizeMACInput(r *payswitchv1.AuthorizeRequest) []byte {
	fields := [][]byte{
		[]byte(OpAuthorize),
		[]byte(r.GetTerminalId()),
		[]byte(r.GetMerchantId()),
		num(r.GetStan()),
		[]byte(r.GetLocalTime()),
		num(r.GetAmount().GetMinorUnits()),
		[]byte(r.GetAmount().GetCurrency()),
		num(int32(r.GetEntryMode())),
		r.GetEncryptedCard().GetKsn(),
		r.GetEncryptedCard().GetCiphertext(),
		r.GetPinBlock(),
		EMVBytes(r.GetEmv()),
		[]byte(r.GetIdempotencyKey()),
	}
	if r.GetDccCurrency() != "" || r.GetDccRate() != "" {
		fields = append(fields, []byte(r.GetDccCurrency()), []byte(r.GetDccRate()))
	}
	return form(macDomain, fields...)
}

// EMVBytes is chip data for the MAC: empty when absent, else every EmvData field in
// field-number order as number (1 byte) || length (2 bytes, big-endian) || value, present
// even when empty.
func EMVBytes(emv *payswitchv1.EmvData) []byte {
	if emv == nil {
		return nil
	}
	m := emv.ProtoReflect()
	fields := m.Descriptor().Fields()
	numbers := make([]int, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		numbers = append(numbers, int(fields.Get(i).Number()))
	}
	sort.Ints(numbers)
	var out []byte
	for _, n := range numbers {
		fd := fields.ByNumber(protoreflect.FieldNumber(n))
		var raw []byte
		if fd.Kind() == protoreflect.StringKind {
			raw = []byte(m.Get(fd).String())
		} else {
			raw = m.Get(fd).Bytes()
		}
		out = append(out, byte(n), byte(len(raw)>>8), byte(len(raw)))
		out = append(out, raw...)
	}
	return out
}

// CaptureMACInput: operation, terminal_id, transaction_id, amount.minor_units and
// amount.currency (both empty when amount is absent), ksn, idempotency_key.
func CaptureMACInput(r *payswitchv1.CaptureRequest) []byte {
	var minor, currency []byte
	if r.GetAmount() != nil {
		minor, currency = num(r.GetAmount().GetMinorUnits()), []byte(r.GetAmount().GetCurrency())
	}
	return form(macDomain, []byte(OpCapture), []byte(r.GetTerminalId()),
		[]byte(r.GetTransactionId()), minor, currency, r.GetKsn(), []byte(r.GetIdempotencyKey()))
}

// VoidMACInput: operation, terminal_id, transaction_id, ksn, idempotency_key.
func VoidMACInput(r *payswitchv1.VoidRequest) []byte {
	return form(macDomain, []byte(OpVoid), []byte(r.GetTerminalId()),
		[]byte(r.GetTransactionId()), r.GetKsn(), []byte(r.GetIdempotencyKey()))
}

// RefundMACInput: operation, terminal_id, original_transaction_id, amount.minor_units,
// amount.currency, stan, local_time, ksn, idempotency_key.
func RefundMACInput(r *payswitchv1.RefundRequest) []byte {
	return form(macDomain, []byte(OpRefund), []byte(r.GetTerminalId()),
		[]byte(r.GetOriginalTransactionId()), num(r.GetAmount().GetMinorUnits()),
		[]byte(r.GetAmount().GetCurrency()), num(r.GetStan()), []byte(r.GetLocalTime()),
		r.GetKsn(), []byte(r.GetIdempotencyKey()))
}

// GetTransactionMACInput: operation, terminal_id, transaction_id, idempotency_key (the one
// that is not the lookup is empty), ksn.
func GetTransactionMACInput(r *payswitchv1.GetTransactionRequest) []byte {
	return form(macDomain, []byte(OpGetTransaction), []byte(r.GetTerminalId()),
		[]byte(r.GetTransactionId()), []byte(r.GetIdempotencyKey()), r.GetKsn())
}

// CloseBatchMACInput: operation, terminal_id, merchant_id, totals, ksn, idempotency_key;
// totals is, per line in the order sent, its length (4 bytes) || TLV(1, currency) ||
// TLV(2, scheme number) || TLV(3, sale_count) || TLV(4, sale_minor) || TLV(5, refund_count)
// || TLV(6, refund_minor) || TLV(7, void_count).
func CloseBatchMACInput(r *payswitchv1.CloseBatchRequest) []byte {
	var totals []byte
	for _, t := range r.GetTerminalTotals() {
		line := form(nil, []byte(t.GetCurrency()), num(int32(t.GetScheme())), num(t.GetSaleCount()),
			num(t.GetSaleMinor()), num(t.GetRefundCount()), num(t.GetRefundMinor()), num(t.GetVoidCount()))
		totals = binary.BigEndian.AppendUint32(totals, uint32(len(line)))
		totals = append(totals, line...)
	}
	return form(macDomain, []byte(OpCloseBatch), []byte(r.GetTerminalId()),
		[]byte(r.GetMerchantId()), totals, r.GetKsn(), []byte(r.GetIdempotencyKey()))
}
