package terminal

// The published terminal vectors (docs/vectors/terminal-v1.json, made by `make vectors`), the
// same file the Python SDK checks itself against (tests/terminals/test_terminal_vectors.py):
// the Go terminal must derive every DUKPT key of the file from its initial key, encrypt the
// card data and build the PIN block of each sale, build each request's canonical form and
// MAC byte for byte (from the vector's protobuf JSON and from its own Prepare* calls), accept
// each sample answer and refuse it with one byte changed. The file is read strictly: a member
// this test does not know fails it, so a new vector cannot go unchecked.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/payswitch/payswitch/clients/go/cmac"
	"github.com/payswitch/payswitch/clients/go/dukpt"
	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
	"github.com/payswitch/payswitch/clients/go/pinblock"
	"github.com/payswitch/payswitch/clients/go/seclink"
)

// vectorsPath is docs/vectors/terminal-v1.json from this package's folder (go test runs in
// it): ../../docs/vectors/terminal-v1.json from the module's root.
var vectorsPath = filepath.Join("..", "..", "..", "docs", "vectors", "terminal-v1.json")

type vectorFile struct {
	Schema     string          `json:"schema"`
	About      string          `json:"about"`
	Layout     json.RawMessage `json:"layout"`
	TerminalID string          `json:"terminal_id"`
	MerchantID string          `json:"merchant_id"`
	DUKPT      struct {
		Standard      string `json:"standard"`
		BDK           string `json:"bdk"`
		InitialKeyID  string `json:"initial_key_id"`
		InitialKey    string `json:"initial_key"`
		InitialKeyKCV string `json:"initial_key_kcv"`
		Transactions  []struct {
			Counter       uint32            `json:"counter"`
			KSN           string            `json:"ksn"`
			DerivationKey string            `json:"derivation_key"`
			Keys          map[string]string `json:"keys"`
		} `json:"transactions"`
	} `json:"dukpt"`
	Cases []vectorCase `json:"cases"`
}

type vectorCase struct {
	Name      string `json:"name"`
	Operation string `json:"operation"`
	RPC       string `json:"rpc"`
	Counter   uint32 `json:"counter"`
	KSN       string `json:"ksn"`
	Card      *struct {
		PAN    string `json:"pan"`
		Expiry string `json:"expiry"`
		CVV2   string `json:"cvv2"`
	} `json:"card"`
	CardPlaintext  string `json:"card_plaintext"`
	CardCiphertext string `json:"card_ciphertext"`
	PIN            *struct {
		PIN      string `json:"pin"`
		Fill     string `json:"fill"`
		PINField string `json:"pin_field"`
		PANField string `json:"pan_field"`
		PINBlock string `json:"pin_block"`
	} `json:"pin"`
	EMVBytes         string          `json:"emv_bytes"`
	Request          json.RawMessage `json:"request"`
	RequestMACInput  string          `json:"request_mac_input"`
	RequestMAC       string          `json:"request_mac"`
	Response         json.RawMessage `json:"response"`
	ResponseMACInput string          `json:"response_mac_input"`
	ResponseMAC      string          `json:"response_mac"`
}

// The key usages of the file's "keys" members.
var vectorUsages = map[string]dukpt.KeyUsage{
	"pin_encryption":   dukpt.PINEncryption,
	"mac_generation":   dukpt.MACGeneration,
	"mac_verification": dukpt.MACVerification,
	"data_encryption":  dukpt.DataEncrypt,
}

// Each operation's request and answer message and gRPC method.
var vectorOps = map[string]struct {
	request, response func() proto.Message
	rpc               string
}{
	seclink.OpAuthorize: {
		func() proto.Message { return &payswitchv1.AuthorizeRequest{} },
		func() proto.Message { return &payswitchv1.AuthorizeResponse{} }, "Authorize"},
	seclink.OpCapture: {
		func() proto.Message { return &payswitchv1.CaptureRequest{} },
		func() proto.Message { return &payswitchv1.CaptureResponse{} }, "Capture"},
	seclink.OpVoid: {
		func() proto.Message { return &payswitchv1.VoidRequest{} },
		func() proto.Message { return &payswitchv1.VoidResponse{} }, "Void"},
	seclink.OpRefund: {
		func() proto.Message { return &payswitchv1.RefundRequest{} },
		func() proto.Message { return &payswitchv1.RefundResponse{} }, "Refund"},
	seclink.OpGetTransaction: {
		func() proto.Message { return &payswitchv1.GetTransactionRequest{} },
		func() proto.Message { return &payswitchv1.GetTransactionResponse{} }, "GetTransaction"},
	seclink.OpCloseBatch: {
		func() proto.Message { return &payswitchv1.CloseBatchRequest{} },
		func() proto.Message { return &payswitchv1.CloseBatchResponse{} }, "CloseBatch"},
}

func readVectors(t *testing.T) *vectorFile {
	t.Helper()
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v vectorFile
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	if v.Schema != "payswitch-terminal-vectors/1" {
		t.Fatalf("schema %q", v.Schema)
	}
	if len(v.Cases) == 0 || len(v.DUKPT.Transactions) == 0 {
		t.Fatal("no cases or no DUKPT transactions in the file")
	}
	seen := map[string]bool{}
	for _, c := range v.Cases {
		seen[c.Operation] = true
	}
	if len(seen) != len(vectorOps) {
		t.Fatalf("operations in the file %v, want every one of the %d canonical forms", seen, len(vectorOps))
	}
	return &v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func ikidOf(t *testing.T, v *vectorFile) [dukpt.IKIDLen]byte {
	t.Helper()
	var ikid [dukpt.IKIDLen]byte
	if n := copy(ikid[:], unhex(t, v.DUKPT.InitialKeyID)); n != dukpt.IKIDLen {
		t.Fatalf("initial key ID is %d bytes", n)
	}
	return ikid
}

// deviceAt is the file's device one counter before counter: its next Begin is the case's.
func deviceAt(t *testing.T, v *vectorFile, counter uint32) *SecureElement {
	t.Helper()
	return &SecureElement{ik: unhex(t, v.DUKPT.InitialKey), ikid: ikidOf(t, v), counter: counter - 1}
}

func begin(t *testing.T, v *vectorFile, c *vectorCase) *Transaction {
	t.Helper()
	txn, err := deviceAt(t, v, c.Counter).Begin()
	if err != nil {
		t.Fatal(err)
	}
	if got := txn.KSN.Hex(); got != c.KSN {
		t.Fatalf("KSN of counter %d: %s, file %s", c.Counter, got, c.KSN)
	}
	return txn
}

func parse(t *testing.T, raw json.RawMessage, m proto.Message) proto.Message {
	t.Helper()
	if err := protojson.Unmarshal(raw, m); err != nil {
		t.Fatalf("protojson %T: %v", m, err)
	}
	return m
}

func requestForm(t *testing.T, op string, req proto.Message) []byte {
	t.Helper()
	switch r := req.(type) {
	case *payswitchv1.AuthorizeRequest:
		return seclink.AuthorizeMACInput(r)
	case *payswitchv1.CaptureRequest:
		return seclink.CaptureMACInput(r)
	case *payswitchv1.VoidRequest:
		return seclink.VoidMACInput(r)
	case *payswitchv1.RefundRequest:
		return seclink.RefundMACInput(r)
	case *payswitchv1.GetTransactionRequest:
		return seclink.GetTransactionMACInput(r)
	case *payswitchv1.CloseBatchRequest:
		return seclink.CloseBatchMACInput(r)
	}
	t.Fatalf("%s: no request form for %T", op, req)
	return nil
}

func wire(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorsEveryDUKPTKeyFollowsFromTheInitialKey(t *testing.T) {
	v := readVectors(t)
	ikid := ikidOf(t, v)
	ik, err := dukpt.InitialKey(unhex(t, v.DUKPT.BDK), ikid)
	if err != nil {
		t.Fatal(err)
	}
	if upperHex(ik) != v.DUKPT.InitialKey {
		t.Fatalf("IK from the BDK: %X, file %s", ik, v.DUKPT.InitialKey)
	}
	if kcv, _ := cmac.KCV(ik); kcv != v.DUKPT.InitialKeyKCV {
		t.Fatalf("IK's KCV %s, file %s", kcv, v.DUKPT.InitialKeyKCV)
	}
	counters := map[uint32]bool{}
	for _, tx := range v.DUKPT.Transactions {
		counters[tx.Counter] = true
		ksn := dukpt.KSN{IKID: ikid, Counter: tx.Counter}
		if ksn.Hex() != tx.KSN {
			t.Errorf("counter %d: KSN %s, file %s", tx.Counter, ksn.Hex(), tx.KSN)
		}
		dk, err := dukpt.DerivationKey(ik, ksn)
		if err != nil {
			t.Fatal(err)
		}
		if upperHex(dk) != tx.DerivationKey {
			t.Errorf("counter %d: derivation key %X, file %s", tx.Counter, dk, tx.DerivationKey)
		}
		if len(tx.Keys) != len(vectorUsages) {
			t.Errorf("counter %d: keys %d, want %d", tx.Counter, len(tx.Keys), len(vectorUsages))
		}
		for name, want := range tx.Keys {
			usage, ok := vectorUsages[name]
			if !ok {
				t.Errorf("counter %d: unknown key %q", tx.Counter, name)
				continue
			}
			key, err := dukpt.WorkingKey(dk, usage, ksn)
			if err != nil {
				t.Fatal(err)
			}
			if upperHex(key) != want {
				t.Errorf("counter %d %s: %X, file %s", tx.Counter, name, key, want)
			}
		}
	}
	for _, c := range v.Cases {
		if !counters[c.Counter] {
			t.Errorf("%s: counter %d has no keys in the file", c.Name, c.Counter)
		}
	}
}

// The secure element's card encryption and PIN block, and each request's canonical form and
// MAC from the request as the file gives it (protobuf JSON into the generated message).
func TestVectorsEachRequestFormMACCardAndPIN(t *testing.T) {
	v := readVectors(t)
	for i := range v.Cases {
		c := &v.Cases[i]
		t.Run(c.Name, func(t *testing.T) {
			op, ok := vectorOps[c.Operation]
			if !ok {
				t.Fatalf("unknown operation %q", c.Operation)
			}
			if c.RPC != "/payswitch.v1.TerminalService/"+op.rpc {
				t.Fatalf("rpc %s for %s", c.RPC, c.Operation)
			}
			txn := begin(t, v, c)
			req := parse(t, c.Request, op.request())
			form := requestForm(t, c.Operation, req)
			if got := upperHex(form); got != c.RequestMACInput {
				t.Fatalf("canonical request form\n got %s\nfile %s", got, c.RequestMACInput)
			}
			mac, err := txn.MAC(form)
			if err != nil {
				t.Fatal(err)
			}
			sent := req.ProtoReflect()
			sentMAC := sent.Get(sent.Descriptor().Fields().ByName("mac")).Bytes()
			if upperHex(mac) != c.RequestMAC || !bytes.Equal(sentMAC, mac) {
				t.Fatalf("request MAC %X, file %s, request's mac %X", mac, c.RequestMAC, sentMAC)
			}
			if c.Operation != seclink.OpAuthorize {
				if ksn := sent.Get(sent.Descriptor().Fields().ByName("ksn")).Bytes(); upperHex(ksn) != c.KSN {
					t.Fatalf("request's ksn %X, file %s", ksn, c.KSN)
				}
				if c.Card != nil || c.PIN != nil || c.CardPlaintext != "" || c.EMVBytes != "" {
					t.Fatal("card data in a case that is not an authorization")
				}
				return
			}
			checkCard(t, c, txn, req.(*payswitchv1.AuthorizeRequest))
		})
	}
}

func checkCard(t *testing.T, c *vectorCase, txn *Transaction, req *payswitchv1.AuthorizeRequest) {
	t.Helper()
	if c.Card == nil {
		t.Fatal("an authorization without card")
	}
	if upperHex(req.GetEncryptedCard().GetKsn()) != c.KSN {
		t.Fatalf("encrypted_card.ksn %X, file %s", req.GetEncryptedCard().GetKsn(), c.KSN)
	}
	// What PrepareAuthorize serialises: the file's canonical encoding.
	plain, err := proto.Marshal(&payswitchv1.CardData{Pan: c.Card.PAN, Expiry: c.Card.Expiry, Cvv2: c.Card.CVV2})
	if err != nil {
		t.Fatal(err)
	}
	if upperHex(plain) != c.CardPlaintext {
		t.Fatalf("card plaintext differs from the file's (%d bytes, file %d)", len(plain), len(c.CardPlaintext)/2)
	}
	ct, err := txn.EncryptCard(plain)
	if err != nil {
		t.Fatal(err)
	}
	if upperHex(ct) != c.CardCiphertext || !bytes.Equal(req.GetEncryptedCard().GetCiphertext(), ct) {
		t.Fatalf("card ciphertext %X, file %s", ct, c.CardCiphertext)
	}
	if c.EMVBytes != "" || req.GetEmv() != nil {
		if got := upperHex(seclink.EMVBytes(req.GetEmv())); got != c.EMVBytes {
			t.Fatalf("chip data as MAC'd\n got %s\nfile %s", got, c.EMVBytes)
		}
	}
	if c.PIN == nil {
		if len(req.GetPinBlock()) != 0 {
			t.Fatal("a PIN block in a case without PIN")
		}
		return
	}
	fill := unhex(t, c.PIN.Fill)
	pinField, err := pinblock.PINField(c.PIN.PIN, fill)
	if err != nil {
		t.Fatal(err)
	}
	panField, err := pinblock.PANField(c.Card.PAN)
	if err != nil {
		t.Fatal(err)
	}
	if upperHex(pinField) != c.PIN.PINField || upperHex(panField) != c.PIN.PANField {
		t.Fatal("PIN field or PAN field differs from the file's")
	}
	withFill(t, fill)
	block, err := txn.PINBlock(c.PIN.PIN, c.Card.PAN)
	if err != nil {
		t.Fatal(err)
	}
	if upperHex(block) != c.PIN.PINBlock || !bytes.Equal(req.GetPinBlock(), block) {
		t.Fatalf("PIN block %X, file %s", block, c.PIN.PINBlock)
	}
}

// withFill fixes the PIN pad's random half to the file's for the rest of the test.
func withFill(t *testing.T, fill []byte) {
	t.Helper()
	saved := pinFill
	pinFill = func() []byte { return append([]byte(nil), fill...) }
	t.Cleanup(func() { pinFill = saved })
}

// The terminal's own Prepare* calls, given the file's device, counter, clock, STAN, key and
// PIN fill, send each request byte for byte as the file has it. (The Go terminal does not
// close batches: that form is checked above from the file's request.)
func TestVectorsTheTerminalBuildsEachRequestByteForByte(t *testing.T) {
	v := readVectors(t)
	built := 0
	for i := range v.Cases {
		c := &v.Cases[i]
		if c.Operation == seclink.OpCloseBatch {
			continue
		}
		built++
		t.Run(c.Name, func(t *testing.T) {
			want := parse(t, c.Request, vectorOps[c.Operation].request())
			term := New(Config{TerminalID: v.TerminalID, MerchantID: v.MerchantID}, deviceAt(t, v, c.Counter), nil)
			p, err := prepare(t, term, c, want)
			if err != nil {
				t.Fatal(err)
			}
			if p.KSN().Hex() != c.KSN {
				t.Fatalf("prepared under KSN %s, file %s", p.KSN().Hex(), c.KSN)
			}
			if !bytes.Equal(wire(t, p.Request), wire(t, want)) {
				got, _ := protojson.Marshal(p.Request)
				t.Fatalf("the terminal's request differs from the file's: %s", redact(got))
			}
		})
	}
	if built == 0 {
		t.Fatal("no case the terminal builds")
	}
}

// redact keeps a failing request's dump free of card data (the ciphertext and PIN block are
// under test keys, but the habit is the rule).
func redact(b []byte) string {
	return string(b[:min(len(b), 120)]) + "..."
}

func prepare(t *testing.T, term *Terminal, c *vectorCase, want proto.Message) (*Prepared, error) {
	t.Helper()
	switch r := want.(type) {
	case *payswitchv1.AuthorizeRequest:
		at(t, r.GetLocalTime())
		term.stan = r.GetStan() - 1
		sale := Sale{
			AmountMinor: r.GetAmount().GetMinorUnits(), Currency: r.GetAmount().GetCurrency(),
			PAN: c.Card.PAN, Expiry: c.Card.Expiry, CVV2: c.Card.CVV2,
			EntryMode: r.GetEntryMode(), EMV: r.GetEmv(), IdempotencyKey: r.GetIdempotencyKey(),
		}
		if c.PIN != nil {
			sale.PIN = c.PIN.PIN
			withFill(t, unhex(t, c.PIN.Fill))
		}
		return term.PrepareAuthorize(sale)
	case *payswitchv1.CaptureRequest:
		return term.PrepareCapture(r.GetTransactionId(), r.GetAmount(), r.GetIdempotencyKey())
	case *payswitchv1.VoidRequest:
		return term.PrepareVoid(r.GetTransactionId(), r.GetIdempotencyKey())
	case *payswitchv1.RefundRequest:
		at(t, r.GetLocalTime())
		term.stan = r.GetStan() - 1
		return term.PrepareRefund(r.GetOriginalTransactionId(), r.GetAmount(), r.GetIdempotencyKey())
	case *payswitchv1.GetTransactionRequest:
		return term.PrepareLookup(r.GetTransactionId(), r.GetIdempotencyKey())
	}
	return nil, errors.New("the Go terminal has no call for " + c.Operation)
}

// at sets the terminal's clock to the file's local time for the rest of the test.
func at(t *testing.T, local string) {
	t.Helper()
	when, err := time.ParseInLocation("2006-01-02T15:04:05", local, time.Local)
	if err != nil {
		t.Fatal(err)
	}
	saved := now
	now = func() time.Time { return when }
	t.Cleanup(func() { now = saved })
}

// Each sample answer's canonical form and MAC are the file's, the terminal's answer check
// accepts it, and refuses it with one byte of its MAC or of its content changed.
func TestVectorsEachAnswerIsAcceptedAndRefusedWithOneByteChanged(t *testing.T) {
	v := readVectors(t)
	for i := range v.Cases {
		c := &v.Cases[i]
		t.Run(c.Name, func(t *testing.T) {
			txn := begin(t, v, c)
			resp := parse(t, c.Response, vectorOps[c.Operation].response()).(maced)
			form, err := seclink.ResponseMACInput(c.Operation, resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := upperHex(form); got != c.ResponseMACInput {
				t.Fatalf("canonical answer form\n got %s\nfile %s", got, c.ResponseMACInput)
			}
			if upperHex(resp.GetMac()) != c.ResponseMAC {
				t.Fatalf("answer's mac %X, file %s", resp.GetMac(), c.ResponseMAC)
			}
			if err := checkAnswer(c.Operation, txn, resp); err != nil {
				t.Fatalf("the published answer is refused: %v", err)
			}

			badMAC := proto.Clone(resp).(maced)
			setMAC(badMAC, flipFirst(resp.GetMac()))
			if err := checkAnswer(c.Operation, txn, badMAC); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("an answer with one MAC byte changed: %v", err)
			}
			badContent := proto.Clone(resp).(maced)
			field, ok := changeOneByte(badContent.ProtoReflect())
			if !ok {
				t.Fatal("no string field in the answer to change")
			}
			if err := checkAnswer(c.Operation, txn, badContent); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("an answer with one byte of %s changed: %v", field, err)
			}
			// The answer is MAC'd for its own KSN: the next counter's key refuses it.
			next := begin(t, v, &vectorCase{Counter: c.Counter + 1, KSN: dukpt.KSN{IKID: txn.KSN.IKID, Counter: c.Counter + 1}.Hex()})
			if err := checkAnswer(c.Operation, next, resp); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("an answer checked under another KSN: %v", err)
			}
		})
	}
}

func flipFirst(b []byte) []byte {
	out := append([]byte(nil), b...)
	out[0] ^= 0x80
	return out
}

func setMAC(m proto.Message, mac []byte) {
	r := m.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("mac"), protoreflect.ValueOfBytes(mac))
}

// changeOneByte flips one bit of the last byte of the first non-empty string field (depth
// first, in declaration order) and names it.
func changeOneByte(m protoreflect.Message) (string, bool) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.IsList() || fd.IsMap() || !m.Has(fd) {
			continue
		}
		if fd.Message() != nil {
			if name, ok := changeOneByte(m.Mutable(fd).Message()); ok {
				return name, true
			}
			continue
		}
		if fd.Kind() == protoreflect.StringKind {
			s := []byte(m.Get(fd).String())
			s[len(s)-1] ^= 0x01
			m.Set(fd, protoreflect.ValueOfString(string(s)))
			return string(fd.FullName()), true
		}
	}
	return "", false
}
