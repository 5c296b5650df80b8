package terminal

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the KIF wraps with RSA-OAEP SHA-1
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/payswitch/payswitch/clients/go/cmac"
)

// X9.24-3 published initial key and ID (the vectors of dukpt_test.go).
var (
	publishedIKID = mustHex("1234567890123456")
	publishedIK   = mustHex("1273671EA26AC29AFA4D1084127652A1")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// wrapLikeTheKIF wraps ik under the device's public key as payswitch-kif does.
func wrapLikeTheKIF(t *testing.T, modulus, exponent, ik []byte) []byte {
	t.Helper()
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(modulus), E: int(new(big.Int).SetBytes(exponent).Int64())}
	wrapped, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, ik, nil)
	if err != nil {
		t.Fatal(err)
	}
	return wrapped
}

func loaded(t *testing.T) *SecureElement {
	t.Helper()
	se := &SecureElement{}
	n, e, err := se.TransportPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != 256 || hex.EncodeToString(e) != "010001" {
		t.Fatalf("transport key: %d-byte modulus, exponent %x", len(n), e)
	}
	kcv, _ := cmac.KCV(publishedIK)
	if err := se.LoadInitialKey(publishedIKID, wrapLikeTheKIF(t, n, e, publishedIK), kcv); err != nil {
		t.Fatal(err)
	}
	return se
}

// The first transaction of a freshly injected device MACs as the published vectors say
// (moov-io/dukpt's request CMAC of "4012345678909D987" under counter 1).
func TestInjectedDeviceMACsAsPublished(t *testing.T) {
	se := loaded(t)
	txn, err := se.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if txn.KSN.Hex() != "123456789012345600000001" {
		t.Errorf("first KSN %s", txn.KSN.Hex())
	}
	mac, _ := txn.MAC([]byte("4012345678909D987"))
	if strings.ToUpper(hex.EncodeToString(mac)) != "A2EB5C1C35809E58404E873C3C411E31" {
		t.Errorf("MAC %X", mac)
	}
	if strings.Contains(se.String(), hex.EncodeToString(publishedIK)) {
		t.Error("String shows the key")
	}
}

func TestAKeyWhoseCheckValueDiffersIsRefused(t *testing.T) {
	se := &SecureElement{}
	n, e, _ := se.TransportPublicKey()
	if err := se.LoadInitialKey(publishedIKID, wrapLikeTheKIF(t, n, e, publishedIK), "000000"); err == nil {
		t.Fatal("a key with another KCV was loaded")
	}
	if _, err := se.Begin(); err == nil {
		t.Fatal("a refused key derived a transaction")
	}
}

func TestCardDataIsPKCS7UnderTheDataKey(t *testing.T) {
	se := loaded(t)
	txn, _ := se.Begin()
	ct, err := txn.EncryptCard([]byte("4012345678909D987")) // 17 bytes: two blocks, 15 bytes of padding
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != 32 {
		t.Fatalf("ciphertext of %d bytes", len(ct))
	}
	// moov-io/dukpt's zero-padded vector shares the first block (same key, zero IV).
	if strings.ToUpper(hex.EncodeToString(ct[:16])) != "E5AFA5B408A3310E3D779C8A9A2AE294" {
		t.Errorf("first block %X", ct[:16])
	}
}

func TestCountersAdvance(t *testing.T) {
	se := loaded(t)
	a, _ := se.Begin()
	b, _ := se.Begin()
	if a.KSN.Counter != 1 || b.KSN.Counter != 2 {
		t.Errorf("counters %d, %d", a.KSN.Counter, b.KSN.Counter)
	}
}
