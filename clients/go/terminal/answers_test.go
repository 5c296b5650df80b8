package terminal

// Send trusts only answers MAC'd under the response key of the request's own KSN. The switch
// here is a stand-in inside this unit test (in-process gRPC over bufconn); the real switch is
// in tests/e2e/test_go_terminal.py.

import (
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/payswitch/payswitch/clients/go/cmac"
	"github.com/payswitch/payswitch/clients/go/dukpt"
	payswitchv1 "github.com/payswitch/payswitch/clients/go/gen/payswitch/v1"
	"github.com/payswitch/payswitch/clients/go/seclink"
)

type standIn struct {
	payswitchv1.UnimplementedTerminalServiceServer
	usage  dukpt.KeyUsage
	tamper func(*payswitchv1.VoidResponse)
}

func (s *standIn) Void(_ context.Context, r *payswitchv1.VoidRequest) (*payswitchv1.VoidResponse, error) {
	resp := &payswitchv1.VoidResponse{
		ResponseCode: payswitchv1.ResponseCode_RESPONSE_CODE_APPROVED,
		Transaction:  &payswitchv1.Transaction{TransactionId: r.GetTransactionId()},
	}
	var ksn dukpt.KSN
	copy(ksn.IKID[:], r.GetKsn()[:8])
	ksn.Counter = uint32(r.GetKsn()[8])<<24 | uint32(r.GetKsn()[9])<<16 | uint32(r.GetKsn()[10])<<8 | uint32(r.GetKsn()[11])
	dk, _ := dukpt.DerivationKey(publishedIK, ksn)
	key, _ := dukpt.WorkingKey(dk, s.usage, ksn)
	input, _ := seclink.ResponseMACInput(seclink.OpVoid, resp)
	resp.Mac, _ = cmac.Sum(key, input)
	if s.tamper != nil {
		s.tamper(resp)
	}
	return resp, nil
}

func voidThrough(t *testing.T, sw *standIn) error {
	t.Helper()
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer()
	payswitchv1.RegisterTerminalServiceServer(srv, sw)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///switch",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	term := New(Config{TerminalID: "T-0002", MerchantID: "M-GROCER"}, loaded(t), conn)
	defer term.Close()
	p, err := term.PrepareVoid("tx-1", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = term.Send(context.Background(), p)
	return err
}

func TestAnswerMACdUnderTheResponseKeyIsTrusted(t *testing.T) {
	if err := voidThrough(t, &standIn{usage: dukpt.MACVerification}); err != nil {
		t.Fatal(err)
	}
}

func TestUntrustedAnswers(t *testing.T) {
	cases := map[string]*standIn{
		"changed after its MAC": {usage: dukpt.MACVerification, tamper: func(r *payswitchv1.VoidResponse) {
			r.ResponseCode = payswitchv1.ResponseCode_RESPONSE_CODE_DO_NOT_HONOUR
		}},
		"no MAC":                    {usage: dukpt.MACVerification, tamper: func(r *payswitchv1.VoidResponse) { r.Mac = nil }},
		"under the request MAC key": {usage: dukpt.MACGeneration},
		"re-keyed flag added":       {usage: dukpt.MACVerification, tamper: func(r *payswitchv1.VoidResponse) { r.RekeyRequired = true }},
	}
	for name, sw := range cases {
		if err := voidThrough(t, sw); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v, want ErrUntrusted", name, err)
		}
	}
}
