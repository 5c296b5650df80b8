// Package cmac is AES-CMAC (NIST SP 800-38B, RFC 4493), the MAC of the payswitch terminal
// link: request MACs under the DUKPT MAC-generation key, response MACs under the
// MAC-verification key, and the AES key check value (KCV).
//
// Go's standard library has no CMAC, and CMAC is small enough that a dependency would cost
// more than the 40 lines; the RFC 4493 examples in cmac_test.go check it.
package cmac

import (
	"crypto/aes"
	"crypto/subtle"
	"errors"
)

const blockSize = aes.BlockSize

// Sum returns the 16-byte AES-CMAC of msg under key (16, 24 or 32 bytes).
func Sum(key, msg []byte) ([]byte, error) {
	c, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("cmac: bad AES key length")
	}
	var zero, l [blockSize]byte
	c.Encrypt(l[:], zero[:])
	k1 := shift(l[:])
	k2 := shift(k1)

	n := (len(msg) + blockSize - 1) / blockSize
	complete := n > 0 && len(msg)%blockSize == 0
	if n == 0 {
		n = 1
	}
	last := make([]byte, blockSize)
	tail := msg[(n-1)*blockSize:]
	if complete {
		subtle.XORBytes(last, tail, k1)
	} else {
		copy(last, tail)
		last[len(tail)] = 0x80
		subtle.XORBytes(last, last, k2)
	}
	x := make([]byte, blockSize)
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x, x, msg[i*blockSize:(i+1)*blockSize])
		c.Encrypt(x, x)
	}
	subtle.XORBytes(x, x, last)
	c.Encrypt(x, x)
	return x, nil
}

// Verify reports whether mac is the AES-CMAC of msg under key, in constant time.
func Verify(key, msg, mac []byte) bool {
	want, err := Sum(key, msg)
	if err != nil || len(mac) != len(want) {
		return false
	}
	return subtle.ConstantTimeCompare(want, mac) == 1
}

// KCV is the key check value payswitch prints for an AES key (payswitch-kif's "kcv"): the
// first 3 bytes of the AES-CMAC of 16 zero bytes, as upper-case hex.
func KCV(key []byte) (string, error) {
	sum, err := Sum(key, make([]byte, blockSize))
	if err != nil {
		return "", err
	}
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 6)
	for _, b := range sum[:3] {
		out = append(out, digits[b>>4], digits[b&0x0F])
	}
	return string(out), nil
}

// shift is the subkey step of SP 800-38B: a left shift by one bit, XOR 0x87 on carry.
func shift(in []byte) []byte {
	out := make([]byte, blockSize)
	carry := in[0] >> 7
	for i := 0; i < blockSize-1; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[blockSize-1] = in[blockSize-1] << 1
	out[blockSize-1] ^= 0x87 * carry
	return out
}
