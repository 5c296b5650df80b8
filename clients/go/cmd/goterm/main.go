// Command goterm is the Go reference POS terminal of payswitch. At start it gets a new
// device's initial key from the key-injection facility (payswitch-kif), then reads commands
// as JSON lines on stdin, one operation each, and writes one JSON line per command on stdout:
// a card reader, a keypad and a receipt printer, as lines.
//
//	goterm -switch 127.0.0.1:50051 -terminal T-0002 -merchant M-GROCER \
//	    -certs .run/certs -kif .venv/bin/payswitch-kif
//
// Commands (fields not needed by an operation are ignored):
//
//	{"id":"a1","op":"authorize","minor":1250,"currency":"EUR","pan":"4111111111111111",
//	 "expiry":"2812","cvv2":"","pin":"1234","entry_mode":"manual","emv":{...},"key":"..."}
//	{"id":"c1","op":"capture","transaction_id":"...","minor":1250,"currency":"EUR"}
//	{"id":"v1","op":"void","transaction_id":"..."}
//	{"id":"r1","op":"refund","transaction_id":"...","minor":500,"currency":"EUR"}
//	{"id":"g1","op":"get","transaction_id":"..."}    (or "key": the idempotency key)
//	{"id":"a1b","op":"resend","ref":"a1"}           the same bytes again: a retry
//	{"id":"e1","op":"echo"}
//
// "emv" is the chip data the card produced, as the card reader hands it over: EmvData field
// names, byte fields in hex, pan_sequence_number as text. Each result line carries "id",
// "op", "ok", the request's "ksn" and "idempotency_key", and either "code" (the ISO 8583
// two-digit response code), "mac_verified" and "answer" (the answer as protobuf JSON), or
// "error" (status, message, BadRequest field violations; "untrusted" when the answer's MAC
// did not verify: then no answer is printed). Nothing printed carries a PAN, PIN or key.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
	"github.com/payswitch/payswitch/clients/go/terminal"
)

type command struct {
	ID            string            `json:"id"`
	Op            string            `json:"op"`
	Minor         *int64            `json:"minor"`
	Currency      string            `json:"currency"`
	PAN           string            `json:"pan"`
	Expiry        string            `json:"expiry"`
	CVV2          string            `json:"cvv2"`
	PIN           string            `json:"pin"`
	EntryMode     string            `json:"entry_mode"`
	EMV           map[string]string `json:"emv"`
	Key           string            `json:"key"`
	TransactionID string            `json:"transaction_id"`
	Ref           string            `json:"ref"`
}

type problem struct {
	terminal.Problem
	Untrusted bool `json:"untrusted,omitempty"`
}

type result struct {
	ID             string          `json:"id"`
	Op             string          `json:"op"`
	OK             bool            `json:"ok"`
	KSN            string          `json:"ksn,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Code           string          `json:"code,omitempty"`
	MACVerified    bool            `json:"mac_verified"`
	Answer         json.RawMessage `json:"answer,omitempty"`
	Error          *problem        `json:"error,omitempty"`
}

var entryModes = map[string]payswitchv1.EntryMode{
	"chip":        payswitchv1.EntryMode_ENTRY_MODE_CHIP,
	"contactless": payswitchv1.EntryMode_ENTRY_MODE_CONTACTLESS,
	"magstripe":   payswitchv1.EntryMode_ENTRY_MODE_MAGSTRIPE,
	"manual":      payswitchv1.EntryMode_ENTRY_MODE_MANUAL,
}

func main() {
	var cfg terminal.Config
	flag.StringVar(&cfg.Switch, "switch", "127.0.0.1:50051", "the switch's terminal port, host:port")
	flag.StringVar(&cfg.TerminalID, "terminal", "", "this terminal's id (its certificate names it)")
	flag.StringVar(&cfg.MerchantID, "merchant", "", "the terminal's merchant id")
	flag.StringVar(&cfg.CertsDir, "certs", ".run/certs", "payswitch-certs folder (ca.pem, terminals/<id>.pem/.key)")
	kif := flag.String("kif", ".venv/bin/payswitch-kif", "the key-injection facility's command line (split on spaces)")
	operator := flag.String("operator", "goterm", "who runs the injection bench (the KIF's audit)")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each call")
	flag.Parse()
	if cfg.TerminalID == "" || cfg.MerchantID == "" {
		fmt.Fprintln(os.Stderr, "goterm: -terminal and -merchant are required")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	fatal := func(err error) {
		_ = out.Encode(map[string]string{"event": "fatal", "error": err.Error()})
		os.Exit(1)
	}

	se := &terminal.SecureElement{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	injected, err := terminal.Inject(ctx, se, terminal.Injection{Command: strings.Fields(*kif), Operator: *operator}, cfg.TerminalID)
	cancel()
	if err != nil {
		fatal(err)
	}
	term, err := terminal.Dial(cfg, se)
	if err != nil {
		fatal(err)
	}
	defer term.Close()
	_ = out.Encode(map[string]string{
		"event": "ready", "terminal_id": cfg.TerminalID, "ikid": injected.IKID, "kcv": injected.KCV,
	})

	s := session{term: term, timeout: *timeout, sent: map[string]*terminal.Prepared{}}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 1024*1024)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		var cmd command
		if err := json.Unmarshal([]byte(line), &cmd); err != nil {
			_ = out.Encode(result{Error: &problem{Problem: terminal.Problem{Status: "BAD_COMMAND", Message: "not a JSON command"}}})
			continue
		}
		_ = out.Encode(s.run(cmd))
	}
}

type session struct {
	term    *terminal.Terminal
	timeout time.Duration
	sent    map[string]*terminal.Prepared // by command id, for "resend"
}

func (s *session) run(cmd command) result {
	res := result{ID: cmd.ID, Op: cmd.Op}
	bad := func(msg string) result {
		res.Error = &problem{Problem: terminal.Problem{Status: "BAD_COMMAND", Message: msg}}
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if cmd.Op == "echo" {
		answer, err := s.term.Echo(ctx, cmd.ID)
		return s.report(res, answer, err)
	}
	p, err := s.prepare(cmd)
	if err != nil {
		return bad(err.Error())
	}
	if cmd.ID != "" {
		s.sent[cmd.ID] = p
	}
	res.KSN = p.KSN().Hex()
	res.IdempotencyKey = idempotencyKey(p.Request)
	answer, err := s.term.Send(ctx, p)
	return s.report(res, answer, err)
}

func (s *session) prepare(cmd command) (*terminal.Prepared, error) {
	money := func() *payswitchv1.Money {
		if cmd.Minor == nil {
			return nil
		}
		return &payswitchv1.Money{MinorUnits: *cmd.Minor, Currency: cmd.Currency}
	}
	switch cmd.Op {
	case "authorize":
		sale := terminal.Sale{
			Currency: cmd.Currency, PAN: cmd.PAN, Expiry: cmd.Expiry, CVV2: cmd.CVV2, PIN: cmd.PIN,
			IdempotencyKey: cmd.Key, EntryMode: payswitchv1.EntryMode_ENTRY_MODE_MANUAL,
		}
		if cmd.Minor != nil {
			sale.AmountMinor = *cmd.Minor
		}
		if cmd.EMV != nil {
			emv, err := emvData(cmd.EMV)
			if err != nil {
				return nil, err
			}
			sale.EMV, sale.EntryMode = emv, payswitchv1.EntryMode_ENTRY_MODE_CHIP
		}
		if cmd.EntryMode != "" {
			mode, ok := entryModes[cmd.EntryMode]
			if !ok {
				return nil, errors.New("entry_mode must be chip, contactless, magstripe or manual")
			}
			sale.EntryMode = mode
		}
		return s.term.PrepareAuthorize(sale)
	case "capture":
		return s.term.PrepareCapture(cmd.TransactionID, money(), cmd.Key)
	case "void":
		return s.term.PrepareVoid(cmd.TransactionID, cmd.Key)
	case "refund":
		return s.term.PrepareRefund(cmd.TransactionID, money(), cmd.Key)
	case "get":
		return s.term.PrepareLookup(cmd.TransactionID, cmd.Key)
	case "resend":
		if p, ok := s.sent[cmd.Ref]; ok {
			return p, nil
		}
		return nil, errors.New("resend: no earlier command with that id")
	}
	return nil, errors.New("op must be authorize, capture, void, refund, get, resend or echo")
}

// emvData builds EmvData from field names: byte fields in hex, string fields as text.
func emvData(fields map[string]string) (*payswitchv1.EmvData, error) {
	emv := &payswitchv1.EmvData{}
	m := emv.ProtoReflect()
	for name, value := range fields {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("emv: no field %q", name)
		}
		if fd.Kind() == protoreflect.StringKind {
			m.Set(fd, protoreflect.ValueOfString(value))
			continue
		}
		raw, err := hex.DecodeString(value)
		if err != nil {
			return nil, fmt.Errorf("emv: %s is not hex", name)
		}
		m.Set(fd, protoreflect.ValueOfBytes(raw))
	}
	return emv, nil
}

func idempotencyKey(req proto.Message) string {
	if k, ok := req.(interface{ GetIdempotencyKey() string }); ok {
		return k.GetIdempotencyKey()
	}
	return ""
}

func (s *session) report(res result, answer proto.Message, err error) result {
	if errors.Is(err, terminal.ErrUntrusted) {
		res.Error = &problem{Problem: terminal.Problem{Message: err.Error()}, Untrusted: true}
		return res
	}
	if err != nil {
		if p, ok := terminal.ProblemOf(err); ok {
			res.Error = &problem{Problem: p}
		} else {
			res.Error = &problem{Problem: terminal.Problem{Message: err.Error()}}
		}
		return res
	}
	res.OK = true
	_, isEcho := answer.(*payswitchv1.EchoResponse)
	res.MACVerified = !isEcho
	if c, ok := answer.(interface {
		GetResponseCode() payswitchv1.ResponseCode
	}); ok && c.GetResponseCode() >= 100 {
		res.Code = fmt.Sprintf("%02d", int32(c.GetResponseCode())-100)
	}
	raw, mErr := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(answer)
	if mErr == nil {
		res.Answer = raw
	}
	return res
}
