package pinblock

// Published vectors:
//   - psec (github.com/knovichikhin/psec) tests/test_pinblock.py: test_encipher_pinblock_iso_4_det
//     (key 00112233445566778899AABBCCDDEEFF, PIN 1234, PAN 1234567890123456789, fill FF..FF)
//     and test_encode_pan_field_iso_4;
//   - ep2 eft/pos 2000 Security Specification 8.0.0, 8.4, as reproduced in psec's
//     test_decipher_pinblock_iso_4 (key C1D0F8FB4958670DBA40AB1F3752EF0D, PAN
//     432198765432109870, block CC17F65586BFD0953010226C4FC5B3CA, PIN 1234).

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"strings"
	"testing"
)

func aesEncrypt(t *testing.T, key string) Encrypt {
	t.Helper()
	c, err := aes.NewCipher(mustHex(key))
	if err != nil {
		t.Fatal(err)
	}
	return func(block []byte) ([]byte, error) {
		out := make([]byte, 16)
		c.Encrypt(out, block)
		return out, nil
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestPsecEncipherVector(t *testing.T) {
	block, err := Encipher(aesEncrypt(t, "00112233445566778899AABBCCDDEEFF"), "1234",
		"1234567890123456789", bytes.Repeat([]byte{0xFF}, 8))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ToUpper(hex.EncodeToString(block)) != "28B41FDDD29B743E93124BD8E32D921E" {
		t.Errorf("block %X", block)
	}
}

// decipher reverses Encipher (test only: a terminal never deciphers a PIN block).
func decipher(t *testing.T, key string, block []byte, pan string) []byte {
	c, _ := aes.NewCipher(mustHex(key))
	a := make([]byte, 16)
	c.Decrypt(a, block)
	panField, err := PANField(pan)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		a[i] ^= panField[i]
	}
	field := make([]byte, 16)
	c.Decrypt(field, a)
	return field
}

func TestEp2Vector(t *testing.T) {
	// The published block opens to a format 4 PIN field holding 1234 under the PAN.
	field := decipher(t, "C1D0F8FB4958670DBA40AB1F3752EF0D", mustHex("CC17F65586BFD0953010226C4FC5B3CA"),
		"432198765432109870")
	if got := strings.ToUpper(hex.EncodeToString(field[:8])); got != "441234AAAAAAAAAA" {
		t.Errorf("PIN field %s", got)
	}
	// And a block we build under that key for the same PIN and PAN (same fill) is the same.
	again, err := Encipher(aesEncrypt(t, "C1D0F8FB4958670DBA40AB1F3752EF0D"), "1234", "432198765432109870", field[8:])
	if err != nil {
		t.Fatal(err)
	}
	if strings.ToUpper(hex.EncodeToString(again)) != "CC17F65586BFD0953010226C4FC5B3CA" {
		t.Errorf("rebuilt block %X", again)
	}
}

func TestPANField(t *testing.T) {
	cases := map[string]string{
		"112233445566778899":  "61122334455667788990000000000000", // psec
		"1":                   "00000000000010000000000000000000",
		"4111111111111111":    "44111111111111111000000000000000",
		"1234567890123456789": "71234567890123456789000000000000",
	}
	for pan, want := range cases {
		got, err := PANField(pan)
		if err != nil || strings.ToUpper(hex.EncodeToString(got)) != want {
			t.Errorf("PANField(%s) = %X, %v", pan, got, err)
		}
	}
	for _, bad := range []string{"", "12345678901234567890", "41111111111A", " 4111"} {
		if _, err := PANField(bad); err != ErrPAN {
			t.Errorf("PANField(%q): %v", bad, err)
		}
	}
}

func TestBadPINsAreRefusedWithoutTheirValue(t *testing.T) {
	enc := aesEncrypt(t, "00112233445566778899AABBCCDDEEFF")
	for _, pin := range []string{"123", "1234567890123", "12a4", "１２３４"} {
		_, err := Encipher(enc, pin, "4111111111111111", nil)
		if err != ErrPIN {
			t.Errorf("PIN %q: %v", pin, err)
		}
	}
}

func TestRandomFillDiffers(t *testing.T) {
	enc := aesEncrypt(t, "00112233445566778899AABBCCDDEEFF")
	a, _ := Encipher(enc, "1234", "4111111111111111", nil)
	b, _ := Encipher(enc, "1234", "4111111111111111", nil)
	if bytes.Equal(a, b) {
		t.Error("two blocks of the same PIN are equal: the fill is not random")
	}
}
