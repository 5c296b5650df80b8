// Package pinblock builds ISO 9564-1:2017 format 4 (AES) PIN blocks, as a PIN pad does.
//
// All fields are 16 bytes:
//   - plain PIN field: control nibble 4, length nibble N (4..12), N PIN digits, fill nibbles
//     A up to nibble 15, then 8 random bytes;
//   - plain PAN field: nibble M = len(PAN) - 12 (0 when shorter), the PAN left-padded with 0 to
//     12 digits, then 0 nibbles up to 32;
//   - block = E(E(PIN field) XOR PAN field), E one AES-ECB block under the PIN key.
//
// The PIN key is the DUKPT PIN-encryption key of the request's KSN; the caller passes the
// one-block encryption so this package never holds a key.
package pinblock

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// BlockLen is the size of every format 4 field and of the block.
const BlockLen = 16

// Encrypt enciphers one 16-byte block under the PIN key (AES-ECB).
type Encrypt func(block []byte) ([]byte, error)

// ErrPIN and ErrPAN name the rule that failed, never the value.
var (
	ErrPIN = errors.New("pinblock: PIN must be 4 to 12 decimal digits")
	ErrPAN = errors.New("pinblock: PAN must be 1 to 19 decimal digits")
)

func digits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// PANField is the plain PAN field.
func PANField(pan string) ([]byte, error) {
	if !digits(pan, 1, 19) {
		return nil, ErrPAN
	}
	padded := pan
	for len(padded) < 12 {
		padded = "0" + padded
	}
	nibbles := make([]byte, 0, 2*BlockLen)
	nibbles = append(nibbles, byte(len(padded)-12))
	for i := 0; i < len(padded); i++ {
		nibbles = append(nibbles, padded[i]-'0')
	}
	for len(nibbles) < 2*BlockLen {
		nibbles = append(nibbles, 0)
	}
	return pack(nibbles), nil
}

// PINField is the plain PIN field with the given 8-byte random half.
func PINField(pin string, fill []byte) ([]byte, error) {
	if !digits(pin, 4, 12) {
		return nil, ErrPIN
	}
	if len(fill) != 8 {
		return nil, fmt.Errorf("pinblock: random fill must be 8 bytes")
	}
	nibbles := []byte{4, byte(len(pin))}
	for i := 0; i < len(pin); i++ {
		nibbles = append(nibbles, pin[i]-'0')
	}
	for len(nibbles) < 16 {
		nibbles = append(nibbles, 0xA)
	}
	return append(pack(nibbles), fill...), nil
}

// Encipher builds the block for pin and pan under enc, with a fresh random fill (fill nil)
// or the one given (published vectors fix it).
func Encipher(enc Encrypt, pin, pan string, fill []byte) ([]byte, error) {
	if fill == nil {
		fill = make([]byte, 8)
		if _, err := rand.Read(fill); err != nil {
			return nil, err
		}
	}
	pinField, err := PINField(pin, fill)
	if err != nil {
		return nil, err
	}
	defer wipe(pinField)
	panField, err := PANField(pan)
	if err != nil {
		return nil, err
	}
	defer wipe(panField)
	a, err := enc(pinField)
	if err != nil {
		return nil, err
	}
	defer wipe(a)
	for i := range a {
		a[i] ^= panField[i]
	}
	return enc(a)
}

func pack(nibbles []byte) []byte {
	out := make([]byte, len(nibbles)/2)
	for i := range out {
		out[i] = nibbles[2*i]<<4 | nibbles[2*i+1]
	}
	return out
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
