package cmac

import (
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 4493 section 4, examples 1-4 (AES-128), and its subkeys K1, K2.
func TestRFC4493Examples(t *testing.T) {
	key := unhex(t, "2b7e1516 28aed2a6 abf71588 09cf4f3c")
	msg := unhex(t, "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51"+
		"30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710")
	cases := []struct {
		n   int
		mac string
	}{
		{0, "bb1d6929 e9593728 7fa37d12 9b756746"},
		{16, "070a16b4 6b4d4144 f79bdd9d d04a287c"},
		{40, "dfa66747 de9ae630 30ca3261 1497c827"},
		{64, "51f0bebf 7e3b9d92 fc497417 79363cfe"},
	}
	for _, c := range cases {
		got, err := Sum(key, msg[:c.n])
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != strings.ReplaceAll(c.mac, " ", "") {
			t.Errorf("len %d: got %x", c.n, got)
		}
		if !Verify(key, msg[:c.n], got) {
			t.Errorf("len %d: Verify refused its own MAC", c.n)
		}
		bad := append([]byte(nil), got...)
		bad[15] ^= 1
		if Verify(key, msg[:c.n], bad) {
			t.Errorf("len %d: Verify accepted a changed MAC", c.n)
		}
	}
}

func TestSubkeys(t *testing.T) {
	l := unhex(t, "7df76b0c 1ab899b3 3e42f047 b91b546f") // RFC 4493: AES-128(key, 0^128)
	k1 := shift(l)
	k2 := shift(k1)
	if hex.EncodeToString(k1) != "fbeed618357133667c85e08f7236a8de" {
		t.Errorf("K1 %x", k1)
	}
	if hex.EncodeToString(k2) != "f7ddac306ae266ccf90bc11ee46d513b" {
		t.Errorf("K2 %x", k2)
	}
}

func TestBadKeyLength(t *testing.T) {
	if _, err := Sum(make([]byte, 15), nil); err == nil {
		t.Fatal("a 15-byte key was accepted")
	}
}
