// Package dukpt is AES-DUKPT (ANSI X9.24-3-2017) for AES-128 keys, as a POS terminal runs it:
// the key serial number (KSN), the transaction counter, and the keys of one transaction
// derived from the terminal's initial key (IK).
//
// Every derivation is one AES-ECB encryption of a 16-byte derivation-data block under the
// parent key:
//
//	IK             = AES(BDK, 01 01 8001 0002 0080 || ikid)                   (the KIF does this)
//	for each 1-bit of the counter, high to low (working |= bit):
//	  D            = AES(D,   01 01 8000 0002 0080 || ikid[4:8] || working)
//	working key    = AES(D,   01 01 <usage> 0002 0080 || ikid[4:8] || counter)
//
// A terminal keeps intermediate keys in registers; deriving from the IK each time (the host
// algorithm) gives the same keys, which is what this package does. Checked against the
// published X9.24-3 vectors in dukpt_test.go.
package dukpt

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/bits"
	"strings"
)

// KeyUsage is the key usage indicator of the derivation data (X9.24-3 table 2).
type KeyUsage uint16

// The usages a terminal needs (and the two derivation usages).
const (
	PINEncryption        KeyUsage = 0x1000
	MACGeneration        KeyUsage = 0x2000 // request MAC
	MACVerification      KeyUsage = 0x2001 // "MAC, response": the switch's answer MAC
	DataEncrypt          KeyUsage = 0x3000 // card data, terminal to switch
	KeyDerivation        KeyUsage = 0x8000
	KeyDerivationInitial KeyUsage = 0x8001
)

const (
	// IKIDLen is the initial key ID: 4-byte BDK ID || 4-byte device ID.
	IKIDLen = 8
	// KSNLen is the AES-DUKPT KSN: initial key ID || 32-bit counter, big-endian.
	KSNLen = 12
	// MaxCounterBits: a valid counter has at most 16 one-bits.
	MaxCounterBits = 16
	// LastCounter is the last valid counter; past it the device needs a new initial key.
	LastCounter uint32 = 0xFFFF0000

	algorithmAES128 = 0x0002
	lengthAES128    = 0x0080
)

// ErrExhausted: the counter has no valid successor; inject a new initial key.
var ErrExhausted = errors.New("dukpt: counter exhausted, the terminal needs a new initial key")

// KSN is a key serial number.
type KSN struct {
	IKID    [IKIDLen]byte
	Counter uint32
}

// Bytes is the 12-byte wire form (EncryptedCard.ksn, CaptureRequest.ksn, ...).
func (k KSN) Bytes() []byte {
	out := make([]byte, KSNLen)
	copy(out, k.IKID[:])
	binary.BigEndian.PutUint32(out[IKIDLen:], k.Counter)
	return out
}

// Hex is the KSN in upper-case hex, for logs (a KSN is not secret).
func (k KSN) Hex() string { return strings.ToUpper(hex.EncodeToString(k.Bytes())) }

// ValidCounter reports whether c may be used: non-zero, at most 16 one-bits.
func ValidCounter(c uint32) bool { return c != 0 && bits.OnesCount32(c) <= MaxCounterBits }

// NextCounter is the next valid counter after c (values with more than 16 one-bits are
// skipped by adding the lowest set bit, as X9.24-3's terminal algorithm does).
func NextCounter(c uint32) (uint32, error) {
	next := uint64(c) + 1
	for bits.OnesCount64(next) > MaxCounterBits {
		next += next & -next
	}
	if next > uint64(LastCounter) {
		return 0, ErrExhausted
	}
	return uint32(next), nil
}

func derivationData(usage KeyUsage, ikid [IKIDLen]byte, counter uint32) []byte {
	d := make([]byte, 16)
	d[0], d[1] = 0x01, 0x01
	binary.BigEndian.PutUint16(d[2:], uint16(usage))
	binary.BigEndian.PutUint16(d[4:], algorithmAES128)
	binary.BigEndian.PutUint16(d[6:], lengthAES128)
	if usage == KeyDerivationInitial {
		copy(d[8:], ikid[:])
		return d
	}
	copy(d[8:12], ikid[4:8])
	binary.BigEndian.PutUint32(d[12:], counter)
	return d
}

func derive(parent, data []byte) ([]byte, error) {
	if len(parent) != 16 {
		return nil, errors.New("dukpt: AES-128 keys only")
	}
	c, err := aes.NewCipher(parent)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 16)
	c.Encrypt(out, data)
	return out, nil
}

// InitialKey derives a device's IK from a BDK (the key-injection facility's step; a terminal
// never holds a BDK: here for the published vectors).
func InitialKey(bdk []byte, ikid [IKIDLen]byte) ([]byte, error) {
	return derive(bdk, derivationData(KeyDerivationInitial, ikid, 0))
}

// DerivationKey is the transaction's derivation key for ksn, from the device's IK.
func DerivationKey(ik []byte, ksn KSN) ([]byte, error) {
	if !ValidCounter(ksn.Counter) {
		return nil, errors.New("dukpt: counter is zero or has more than 16 one-bits")
	}
	key := append([]byte(nil), ik...)
	var working uint32
	for mask := uint32(1) << 31; mask != 0; mask >>= 1 {
		if ksn.Counter&mask == 0 {
			continue
		}
		working |= mask
		next, err := derive(key, derivationData(KeyDerivation, ksn.IKID, working))
		zero(key)
		if err != nil {
			return nil, err
		}
		key = next
	}
	return key, nil
}

// WorkingKey is the AES-128 key of one usage for ksn, from the transaction's derivation key.
func WorkingKey(derivationKey []byte, usage KeyUsage, ksn KSN) ([]byte, error) {
	return derive(derivationKey, derivationData(usage, ksn.IKID, ksn.Counter))
}

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
