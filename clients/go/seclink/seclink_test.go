package seclink

// The forms byte by byte as the documentation writes them (payswitch/seclink.py's docstring
// and the request messages' mac comments in proto/payswitch/v1/terminal.proto), built here
// by hand from that text, not from this package.

import (
	"bytes"
	"strings"
	"testing"

	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
)

var ksn = []byte{0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0xA1}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestTLV(t *testing.T) {
	if got := TLV(3, []byte("void")); !bytes.Equal(got, []byte{3, 0, 0, 0, 4, 'v', 'o', 'i', 'd'}) {
		t.Errorf("TLV %x", got)
	}
}

// The docstring's example: PSW-MAC-1 || 01 00000004 void || 02 00000006 T-0001 || 03 00000020
// <transaction id> || 04 0000000C <KSN> || 05 <length> <idempotency key>.
func TestVoidFormAsDocumented(t *testing.T) {
	txID := strings.Repeat("ab", 16)
	req := &payswitchv1.VoidRequest{IdempotencyKey: "k-1", TerminalId: "T-0001", TransactionId: txID, Ksn: ksn}
	want := cat([]byte("PSW-MAC-1"),
		[]byte{1, 0, 0, 0, 4}, []byte("void"),
		[]byte{2, 0, 0, 0, 6}, []byte("T-0001"),
		[]byte{3, 0, 0, 0, 0x20}, []byte(txID),
		[]byte{4, 0, 0, 0, 0x0C}, ksn,
		[]byte{5, 0, 0, 0, 3}, []byte("k-1"))
	if got := VoidMACInput(req); !bytes.Equal(got, want) {
		t.Errorf("void form\n got %x\nwant %x", got, want)
	}
}

func TestCaptureMarksAnAbsentAmountWithEmptyFields(t *testing.T) {
	req := &payswitchv1.CaptureRequest{TerminalId: "T-1", TransactionId: "t", Ksn: ksn}
	if !bytes.Contains(CaptureMACInput(req), cat(TLV(4, nil), TLV(5, nil), TLV(6, ksn))) {
		t.Error("absent amount is not two empty fields")
	}
	req.Amount = &payswitchv1.Money{MinorUnits: 1250, Currency: "EUR"}
	if !bytes.Contains(CaptureMACInput(req), cat(TLV(4, []byte("1250")), TLV(5, []byte("EUR")))) {
		t.Error("amount not as decimal ASCII and currency")
	}
}

func TestAuthorizeForm(t *testing.T) {
	req := &payswitchv1.AuthorizeRequest{
		IdempotencyKey: "key-1", TerminalId: "T-0002", MerchantId: "M-GROCER", Stan: 42,
		LocalTime: "2026-12-07T10:00:00", Amount: &payswitchv1.Money{MinorUnits: 1250, Currency: "EUR"},
		EntryMode:     payswitchv1.EntryMode_ENTRY_MODE_MANUAL,
		EncryptedCard: &payswitchv1.EncryptedCard{Ksn: ksn, Ciphertext: []byte{9, 9}},
	}
	want := cat([]byte("PSW-MAC-1"), TLV(1, []byte("authorize")), TLV(2, []byte("T-0002")),
		TLV(3, []byte("M-GROCER")), TLV(4, []byte("42")), TLV(5, []byte("2026-12-07T10:00:00")),
		TLV(6, []byte("1250")), TLV(7, []byte("EUR")), TLV(8, []byte("4")), TLV(9, ksn),
		TLV(10, []byte{9, 9}), TLV(11, nil), TLV(12, nil), TLV(13, []byte("key-1")))
	if got := AuthorizeMACInput(req); !bytes.Equal(got, want) {
		t.Errorf("authorize form\n got %x\nwant %x", got, want)
	}
}

func TestEMVBytes(t *testing.T) {
	emv := &payswitchv1.EmvData{Arqc: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Atc: []byte{0, 7}, PanSequenceNumber: "00"}
	got := EMVBytes(emv)
	want := cat([]byte{1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{2, 0, 2, 0, 7}, []byte{3, 0, 0},
		[]byte{4, 0, 2, '0', '0'})
	for n := byte(5); n <= 13; n++ {
		want = append(want, n, 0, 0)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("emv\n got %x\nwant %x", got, want)
	}
	if EMVBytes(nil) != nil {
		t.Error("absent chip data is not empty")
	}
}

func TestResponseForm(t *testing.T) {
	resp := &payswitchv1.VoidResponse{
		ResponseCode: payswitchv1.ResponseCode_RESPONSE_CODE_APPROVED,
		Transaction: &payswitchv1.Transaction{
			TransactionId: "tx", State: payswitchv1.TransactionState_TRANSACTION_STATE_VOIDED,
			Amount: &payswitchv1.Money{MinorUnits: 5, Currency: "JPY"},
		},
		Mac: []byte("not covered"),
	}
	var tx []byte
	for n := 1; n <= 19; n++ {
		var v []byte
		switch n {
		case 1:
			v = []byte("tx")
		case 2, 6, 11, 14, 18, 19: // enums and numbers at their defaults
			v = []byte("0")
		case 3:
			v = []byte("10")
		case 8:
			v = cat(TLV(1, []byte("5")), TLV(2, []byte("JPY")))
		}
		tx = append(tx, TLV(byte(n), v)...)
	}
	want := cat([]byte("PSW-RMAC-1"), TLV(0, []byte("void")), TLV(1, []byte("100")), TLV(2, tx),
		TLV(3, nil), TLV(4, []byte("0")))
	got, err := ResponseMACInput(OpVoid, resp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("response form\n got %x\nwant %x", got, want)
	}
}

// The risk fields of an authorization answer follow field 13 only when set.
func TestAuthorizeAnswerRiskFieldsOnlyWhenSet(t *testing.T) {
	resp := &payswitchv1.AuthorizeResponse{
		ResponseCode: payswitchv1.ResponseCode_RESPONSE_CODE_SUSPECTED_FRAUD,
	}
	v1, err := ResponseMACInput(OpAuthorize, resp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(v1, TLV(13, []byte("0"))) {
		t.Fatalf("version-1 form should end with field 13: %x", v1)
	}
	resp.RiskReason, resp.PinRequired = "card_testing", true
	got, err := ResponseMACInput(OpAuthorize, resp)
	if err != nil {
		t.Fatal(err)
	}
	want := cat(v1, TLV(15, []byte("card_testing")), TLV(16, []byte("1")))
	if !bytes.Equal(got, want) {
		t.Errorf("risk fields\n got %x\nwant %x", got, want)
	}
}

// close_batch: totals is, per line, its length (4 bytes) || TLV(1, currency) || TLV(2, scheme
// number) || TLV(3, sale_count) || TLV(4, sale_minor) || TLV(5, refund_count) ||
// TLV(6, refund_minor) || TLV(7, void_count).
func TestCloseBatchFormAsDocumented(t *testing.T) {
	req := &payswitchv1.CloseBatchRequest{
		IdempotencyKey: "b", TerminalId: "T-1", MerchantId: "M-1", Ksn: ksn,
		TerminalTotals: []*payswitchv1.BatchTotal{{
			Currency: "EUR", Scheme: payswitchv1.CardScheme_CARD_SCHEME_VISA, SaleCount: 2,
			SaleMinor: 7250, RefundCount: 1, RefundMinor: 500, VoidCount: 1,
		}},
	}
	line := cat(TLV(1, []byte("EUR")), TLV(2, []byte("1")), TLV(3, []byte("2")), TLV(4, []byte("7250")),
		TLV(5, []byte("1")), TLV(6, []byte("500")), TLV(7, []byte("1")))
	totals := cat([]byte{0, 0, 0, byte(len(line))}, line)
	want := cat([]byte("PSW-MAC-1"), TLV(1, []byte("close_batch")), TLV(2, []byte("T-1")),
		TLV(3, []byte("M-1")), TLV(4, totals), TLV(5, ksn), TLV(6, []byte("b")))
	if got := CloseBatchMACInput(req); !bytes.Equal(got, want) {
		t.Errorf("close_batch form\n got %x\nwant %x", got, want)
	}
}

func TestGetTransactionFormByKey(t *testing.T) {
	req := &payswitchv1.GetTransactionRequest{
		TerminalId: "T-1", Ksn: ksn,
		Lookup: &payswitchv1.GetTransactionRequest_IdempotencyKey{IdempotencyKey: "k"},
	}
	want := cat([]byte("PSW-MAC-1"), TLV(1, []byte("get_transaction")), TLV(2, []byte("T-1")),
		TLV(3, nil), TLV(4, []byte("k")), TLV(5, ksn))
	if got := GetTransactionMACInput(req); !bytes.Equal(got, want) {
		t.Errorf("get_transaction form\n got %x\nwant %x", got, want)
	}
}
