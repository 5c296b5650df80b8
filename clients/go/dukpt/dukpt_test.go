package dukpt

// Published vectors (AES-128 BDK FEDCBA9876543210F1F1F1F1F1F1F1F1, initial key ID
// 1234567890123456):
//   - ASC X9, ANSI X9.24-3-2017 Annex B.1 and the "X9.24-3-2017 Supplement Test Vectors"
//     (X9.24-3-2017-Test-Vectors-20180129-1.pdf): the initial key, per-counter derivation keys
//     and the PIN / MAC-generation / data-encryption working keys of counters 1, 2 and 8;
//   - openemv/dukpt test/dukpt_aes128_test.c, which transcribes the derivation keys of
//     counters 1-8, 0x1FFFE, 0x20000, 0x20001 and the last four counters from that supplement;
//   - moov-io/dukpt pkg/aes/aes_test.go: the request AES-CMAC of "4012345678909D987" and its
//     AES-CBC ciphertext (zero IV, zero padding) under counters 1-3.
//
// These are the values tests/hsm/test_dukpt.py checks the switch's HSM side against.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/payswitch/payswitch/clients/go/cmac"
)

var (
	bdk  = mustHex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ikid = [IKIDLen]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56}
	ik   = mustHex("1273671EA26AC29AFA4D1084127652A1")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func eqHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !strings.EqualFold(hex.EncodeToString(got), want) {
		t.Errorf("%s: got %X, want %s", what, got, want)
	}
}

func TestDerivationDataLayout(t *testing.T) {
	eqHex(t, "initial", derivationData(KeyDerivationInitial, ikid, 0), "01018001000200801234567890123456")
	eqHex(t, "PIN #1", derivationData(PINEncryption, ikid, 1), "01011000000200809012345600000001")
}

func TestInitialKey(t *testing.T) {
	got, err := InitialKey(bdk, ikid)
	if err != nil {
		t.Fatal(err)
	}
	eqHex(t, "IK", got, hex.EncodeToString(ik))
}

func TestDerivationKeys(t *testing.T) {
	published := map[uint32]string{
		0x00000001: "4F21B565BAD9835E112B6465635EAE44",
		0x00000002: "2F34D68DE10F68D38091A73B9E7C437C",
		0x00000003: "031504E530365CF81264238540518318",
		0x00000004: "0EEFC7ADA628BA68878DA9165A8A1887",
		0x00000005: "C2A7AC328A5DA2D6002D62465BFC028B",
		0x00000006: "D30F7D9351DA58448A2F5E92B4EE3B7D",
		0x00000007: "A8253CEED9AC042C54F75D35C8352278",
		0x00000008: "718EE6CF0B27E53D5F7AF99C4D8146A2",
		0x0001FFFE: "E21E8C8D347F8561A2BE752DAA85A111",
		0x00020000: "F7AE9025468A25D37B7249CFFED224C8",
		0x00020001: "692C8EA4013645135B36497131DF9D2C",
		0xFFFE2000: "48E585B694EB0B18D5C35443E163C0BA",
		0xFFFE4000: "396C2C7CA1EA701C03B86B7D41F0C562",
		0xFFFE8000: "0387625F189B58AE03EF0E8CCA41105E",
		0xFFFF0000: "F6BA59389BD14A9855BE9727E7C52E3C",
	}
	for counter, want := range published {
		got, err := DerivationKey(ik, KSN{ikid, counter})
		if err != nil {
			t.Fatalf("%#x: %v", counter, err)
		}
		eqHex(t, "derivation key", got, want)
	}
}

func TestWorkingKeys(t *testing.T) {
	published := []struct {
		counter uint32
		usage   KeyUsage
		key     string
	}{
		{1, PINEncryption, "AF8CB133A78F8DC2D1359F18527593FB"},
		{1, MACGeneration, "A2DC23DE6FDE0824A2BC321E08E4B8B7"},
		{1, DataEncrypt, "A35C412EFD41FDB98B69797C02DCD08F"},
		{2, PINEncryption, "D30BDC73EC9714B000BEC66BDB7B6D09"},
		{8, PINEncryption, "4D9DF3FBEE3448FC3E676D04320A90F5"},
		{8, MACGeneration, "6FD572E5D59E618875F193484F9178FB"},
		{8, DataEncrypt, "650F34204ABD4E57764D61AC3D266FB1"},
	}
	for _, p := range published {
		ksn := KSN{ikid, p.counter}
		dk, err := DerivationKey(ik, ksn)
		if err != nil {
			t.Fatal(err)
		}
		got, err := WorkingKey(dk, p.usage, ksn)
		if err != nil {
			t.Fatal(err)
		}
		eqHex(t, "working key", got, p.key)
	}
}

// moov-io/dukpt's request MAC and data ciphertexts, under keys this package derives.
func TestRequestMACAndDataVectors(t *testing.T) {
	data := []byte("4012345678909D987")
	macs := map[uint32]string{
		1: "A2EB5C1C35809E58404E873C3C411E31",
		2: "4D104704C53491A60944193DCAF6B411",
		3: "6A18904AA8E966A03505F5EEBDAEBD82",
	}
	cts := map[uint32]string{
		1: "E5AFA5B408A3310E3D779C8A9A2AE29448BD5B4232582090DB703AF647205A79",
		2: "A17A9658EE0F451D6CA11B65B592EF9C5F90BB175D926F1457B63B3273042476",
		3: "E289C32A084A39419A6C147DE40B53A67BABE2BD22DC3D5EE09B002E83B93ACE",
	}
	for counter := uint32(1); counter <= 3; counter++ {
		ksn := KSN{ikid, counter}
		dk, err := DerivationKey(ik, ksn)
		if err != nil {
			t.Fatal(err)
		}
		macKey, _ := WorkingKey(dk, MACGeneration, ksn)
		mac, err := cmac.Sum(macKey, data)
		if err != nil {
			t.Fatal(err)
		}
		eqHex(t, "request CMAC", mac, macs[counter])

		dataKey, _ := WorkingKey(dk, DataEncrypt, ksn)
		block, _ := aes.NewCipher(dataKey)
		padded := make([]byte, 32) // zero padding, as the vector was made
		copy(padded, data)
		ct := make([]byte, 32)
		cipher.NewCBCEncrypter(block, make([]byte, 16)).CryptBlocks(ct, padded)
		eqHex(t, "data ciphertext", ct, cts[counter])
	}
}

func TestCounterRules(t *testing.T) {
	cases := []struct{ from, next uint32 }{
		{0, 1}, {1, 2}, {7, 8},
		{0x0000FFFF, 0x00010000},
		{0x0001FFFE, 0x00020000}, // 0x1FFFF has 17 one-bits: skipped
		{0xFFFE8000, 0xFFFF0000},
	}
	for _, c := range cases {
		got, err := NextCounter(c.from)
		if err != nil || got != c.next {
			t.Errorf("NextCounter(%#x) = %#x, %v; want %#x", c.from, got, err, c.next)
		}
	}
	if _, err := NextCounter(LastCounter); err != ErrExhausted {
		t.Errorf("NextCounter(LastCounter): %v, want ErrExhausted", err)
	}
	if ValidCounter(0) || ValidCounter(0x0001FFFF|0x00100000) {
		t.Error("a zero counter or one with 18 one-bits was valid")
	}
	if _, err := DerivationKey(ik, KSN{ikid, 0x001FFFFF}); err == nil {
		t.Error("a 21-bit counter derived a key")
	}
}

func TestKSNWireForm(t *testing.T) {
	k := KSN{ikid, 0x0A}
	if !bytes.Equal(k.Bytes(), mustHex("12345678901234560000000A")) || k.Hex() != "12345678901234560000000A" {
		t.Errorf("KSN %X", k.Bytes())
	}
}
