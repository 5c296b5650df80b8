package terminal

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/payswitch/payswitch/clients/go/dukpt"
	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
	"github.com/payswitch/payswitch/clients/go/seclink"
)

// ErrUntrusted: the answer's response MAC is missing or wrong. Print no receipt; resend the
// same prepared request (the switch replays its answer, MAC'd for that KSN) or look it up.
var ErrUntrusted = errors.New("answer not trusted: its response MAC does not verify")

// Config is what a terminal needs to reach its switch.
type Config struct {
	Switch     string // host:port of the switch's terminal port
	TerminalID string
	MerchantID string
	// CertsDir is a payswitch-certs folder: ca.pem (the terminal CA, which signed the switch's
	// certificate) and terminals/<TerminalID>.pem / .key (this terminal's client certificate).
	CertsDir string
}

// Terminal sends signed requests and trusts only answers whose MAC verifies.
type Terminal struct {
	cfg  Config
	se   *SecureElement
	conn *grpc.ClientConn
	stub payswitchv1.TerminalServiceClient

	mu   sync.Mutex
	stan uint32
}

// Dial opens the mTLS channel to the switch (nothing is sent until the first call).
func Dial(cfg Config, se *SecureElement) (*Terminal, error) {
	creds, err := mtls(cfg.CertsDir, cfg.TerminalID)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Switch, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	return New(cfg, se, conn), nil
}

// New is a terminal on a channel of the caller's (Dial makes the mTLS one).
func New(cfg Config, se *SecureElement, conn *grpc.ClientConn) *Terminal {
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	return &Terminal{
		cfg: cfg, se: se, conn: conn, stub: payswitchv1.NewTerminalServiceClient(conn),
		stan: binary.BigEndian.Uint32(seed[:]) % 999_999,
	}
}

func mtls(dir, terminalID string) (credentials.TransportCredentials, error) {
	base := filepath.Join(dir, "terminals", terminalID)
	cert, err := tls.LoadX509KeyPair(base+".pem", base+".key")
	if err != nil {
		return nil, fmt.Errorf("terminal certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("terminal CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("terminal CA: no certificate in ca.pem")
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
	}), nil
}

// Close closes the channel.
func (t *Terminal) Close() error { return t.conn.Close() }

// Echo is liveness and sign-on: the one call without KSN or MAC.
func (t *Terminal) Echo(ctx context.Context, message string) (*payswitchv1.EchoResponse, error) {
	return t.stub.Echo(ctx, &payswitchv1.EchoRequest{TerminalId: t.cfg.TerminalID, Message: message})
}

// Prepared is a signed request under one KSN. Sending it again resends the same bytes,
// which is what a retry must do (a new KSN is other content).
type Prepared struct {
	Operation string
	Request   proto.Message
	txn       *Transaction
}

// KSN of the request (its keys and its answer's).
func (p *Prepared) KSN() dukpt.KSN { return p.txn.KSN }

// Sale is an authorization as the terminal reads it from the card and the keypad.
type Sale struct {
	AmountMinor    int64
	Currency       string
	PAN, Expiry    string // Expiry YYMM
	CVV2, PIN      string // empty when not keyed
	EntryMode      payswitchv1.EntryMode
	EMV            *payswitchv1.EmvData // chip data the card produced (GENERATE AC)
	IdempotencyKey string               // empty: a fresh one
}

func (t *Terminal) nextSTAN() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stan = t.stan%999_999 + 1
	return t.stan
}

// now is the terminal's clock (a variable so the published vectors' fixed time can be set in
// a unit test).
var now = time.Now

func localTime() string { return now().Format("2006-01-02T15:04:05") }

// NewIdempotencyKey is 32 random hex characters.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func orNewKey(key string) string {
	if key == "" {
		return NewIdempotencyKey()
	}
	return key
}

// PrepareAuthorize encrypts the card data, builds the PIN block and MACs the request, all
// under the next DUKPT transaction.
func (t *Terminal) PrepareAuthorize(s Sale) (*Prepared, error) {
	txn, err := t.se.Begin()
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(&payswitchv1.CardData{Pan: s.PAN, Expiry: s.Expiry, Cvv2: s.CVV2})
	if err != nil {
		return nil, err
	}
	ciphertext, err := txn.EncryptCard(plain)
	wipe(plain)
	if err != nil {
		return nil, err
	}
	req := &payswitchv1.AuthorizeRequest{
		IdempotencyKey: orNewKey(s.IdempotencyKey),
		TerminalId:     t.cfg.TerminalID,
		MerchantId:     t.cfg.MerchantID,
		Stan:           t.nextSTAN(),
		LocalTime:      localTime(),
		Amount:         &payswitchv1.Money{MinorUnits: s.AmountMinor, Currency: s.Currency},
		EntryMode:      s.EntryMode,
		EncryptedCard:  &payswitchv1.EncryptedCard{Ksn: txn.KSN.Bytes(), Ciphertext: ciphertext},
		Emv:            s.EMV,
	}
	if s.PIN != "" {
		if req.PinBlock, err = txn.PINBlock(s.PIN, s.PAN); err != nil {
			return nil, err
		}
	}
	if req.Mac, err = txn.MAC(seclink.AuthorizeMACInput(req)); err != nil {
		return nil, err
	}
	return &Prepared{Operation: seclink.OpAuthorize, Request: req, txn: txn}, nil
}

// PrepareCapture: amount nil captures the full authorized amount.
func (t *Terminal) PrepareCapture(txID string, amount *payswitchv1.Money, key string) (*Prepared, error) {
	txn, err := t.se.Begin()
	if err != nil {
		return nil, err
	}
	req := &payswitchv1.CaptureRequest{
		IdempotencyKey: orNewKey(key), TerminalId: t.cfg.TerminalID, TransactionId: txID,
		Amount: amount, Ksn: txn.KSN.Bytes(),
	}
	if req.Mac, err = txn.MAC(seclink.CaptureMACInput(req)); err != nil {
		return nil, err
	}
	return &Prepared{Operation: seclink.OpCapture, Request: req, txn: txn}, nil
}

// PrepareVoid cancels an approved, not yet captured authorization.
func (t *Terminal) PrepareVoid(txID, key string) (*Prepared, error) {
	txn, err := t.se.Begin()
	if err != nil {
		return nil, err
	}
	req := &payswitchv1.VoidRequest{
		IdempotencyKey: orNewKey(key), TerminalId: t.cfg.TerminalID, TransactionId: txID,
		Ksn: txn.KSN.Bytes(),
	}
	if req.Mac, err = txn.MAC(seclink.VoidMACInput(req)); err != nil {
		return nil, err
	}
	return &Prepared{Operation: seclink.OpVoid, Request: req, txn: txn}, nil
}

// PrepareRefund refunds all or part of a captured sale.
func (t *Terminal) PrepareRefund(txID string, amount *payswitchv1.Money, key string) (*Prepared, error) {
	txn, err := t.se.Begin()
	if err != nil {
		return nil, err
	}
	req := &payswitchv1.RefundRequest{
		IdempotencyKey: orNewKey(key), TerminalId: t.cfg.TerminalID, OriginalTransactionId: txID,
		Amount: amount, Stan: t.nextSTAN(), LocalTime: localTime(), Ksn: txn.KSN.Bytes(),
	}
	if req.Mac, err = txn.MAC(seclink.RefundMACInput(req)); err != nil {
		return nil, err
	}
	return &Prepared{Operation: seclink.OpRefund, Request: req, txn: txn}, nil
}

// PrepareLookup looks a transaction up by id, or by the idempotency key that made it.
func (t *Terminal) PrepareLookup(txID, key string) (*Prepared, error) {
	txn, err := t.se.Begin()
	if err != nil {
		return nil, err
	}
	req := &payswitchv1.GetTransactionRequest{TerminalId: t.cfg.TerminalID, Ksn: txn.KSN.Bytes()}
	if key != "" {
		req.Lookup = &payswitchv1.GetTransactionRequest_IdempotencyKey{IdempotencyKey: key}
	} else {
		req.Lookup = &payswitchv1.GetTransactionRequest_TransactionId{TransactionId: txID}
	}
	if req.Mac, err = txn.MAC(seclink.GetTransactionMACInput(req)); err != nil {
		return nil, err
	}
	return &Prepared{Operation: seclink.OpGetTransaction, Request: req, txn: txn}, nil
}

type maced interface {
	proto.Message
	GetMac() []byte
}

// Send sends p (again, for a retry: the same bytes) and checks the answer's MAC. A gRPC
// error comes back as it is (see Problem); an answer whose MAC fails comes back with
// ErrUntrusted, and must not be acted on.
func (t *Terminal) Send(ctx context.Context, p *Prepared) (proto.Message, error) {
	var (
		resp maced
		err  error
	)
	switch r := p.Request.(type) {
	case *payswitchv1.AuthorizeRequest:
		resp, err = t.stub.Authorize(ctx, r)
	case *payswitchv1.CaptureRequest:
		resp, err = t.stub.Capture(ctx, r)
	case *payswitchv1.VoidRequest:
		resp, err = t.stub.Void(ctx, r)
	case *payswitchv1.RefundRequest:
		resp, err = t.stub.Refund(ctx, r)
	case *payswitchv1.GetTransactionRequest:
		resp, err = t.stub.GetTransaction(ctx, r)
	default:
		return nil, fmt.Errorf("no such operation %T", r)
	}
	if err != nil {
		return nil, err
	}
	return resp, checkAnswer(p.Operation, p.txn, resp)
}

// checkAnswer is nil only for an answer MAC'd under the response key of txn's KSN over the
// operation's answer form; anything else is ErrUntrusted.
func checkAnswer(operation string, txn *Transaction, resp maced) error {
	input, err := seclink.ResponseMACInput(operation, resp)
	if err != nil || len(resp.GetMac()) == 0 || !txn.VerifyResponse(input, resp.GetMac()) {
		return ErrUntrusted
	}
	return nil
}
