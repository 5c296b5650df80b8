// Package terminal is a payswitch POS terminal: its secure element (AES-DUKPT keys, loaded
// by key injection), the signed requests of each operation, and the checked answers.
package terminal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RSA-OAEP with SHA-1 is what the KIF's HSM (SoftHSM) wraps with
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/payswitch/payswitch/clients/go/cmac"
	"github.com/payswitch/payswitch/clients/go/dukpt"
	"github.com/payswitch/payswitch/clients/go/pinblock"
)

// SecureElement holds the device's initial key in process memory only and hands out
// operations, never keys. A real terminal keeps this in tamper-responsive hardware; nothing
// here is ever written to disk, so each start is a fresh key injection (new device, counter
// from 1).
type SecureElement struct {
	mu        sync.Mutex
	transport *rsa.PrivateKey
	ik        []byte
	ikid      [dukpt.IKIDLen]byte
	counter   uint32
}

// String never shows key material.
func (se *SecureElement) String() string {
	return fmt.Sprintf("SecureElement(ikid=%X, counter=%d)", se.ikid, se.counter)
}

// TransportPublicKey makes a fresh RSA-2048 transport key and returns its public half as the
// KIF reads it: modulus (256 bytes) and public exponent, big-endian.
func (se *SecureElement) TransportPublicKey() (modulus, exponent []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	se.mu.Lock()
	se.transport = key
	se.mu.Unlock()
	return key.N.FillBytes(make([]byte, 256)), big.NewInt(int64(key.E)).Bytes(), nil
}

// LoadInitialKey unwraps the IK the KIF wrapped under the transport key (RSA-OAEP, SHA-1,
// MGF1-SHA-1, no label), checks it against the KIF's KCV and discards the transport key.
func (se *SecureElement) LoadInitialKey(ikid []byte, wrapped []byte, kcv string) error {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.transport == nil {
		return errors.New("no transport key: make one first")
	}
	if len(ikid) != dukpt.IKIDLen {
		return errors.New("initial key ID must be 8 bytes")
	}
	ik, err := rsa.DecryptOAEP(sha1.New(), nil, se.transport, wrapped, nil)
	se.transport = nil
	if err != nil {
		return errors.New("initial key does not unwrap under this device's transport key")
	}
	if len(ik) != 16 {
		wipe(ik)
		return errors.New("initial key is not an AES-128 key")
	}
	got, err := cmac.KCV(ik)
	if err != nil || got != kcv {
		wipe(ik)
		return errors.New("initial key's check value differs from the KIF's")
	}
	copy(se.ikid[:], ikid)
	se.ik, se.counter = ik, 0
	return nil
}

// IKID is the loaded device's initial key ID (not secret: it is in every KSN).
func (se *SecureElement) IKID() [dukpt.IKIDLen]byte { return se.ikid }

// Begin advances the counter and returns the next transaction's keys.
func (se *SecureElement) Begin() (*Transaction, error) {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.ik == nil {
		return nil, errors.New("no initial key loaded")
	}
	next, err := dukpt.NextCounter(se.counter)
	if err != nil {
		return nil, err
	}
	ksn := dukpt.KSN{IKID: se.ikid, Counter: next}
	dk, err := dukpt.DerivationKey(se.ik, ksn)
	if err != nil {
		return nil, err
	}
	se.counter = next
	return &Transaction{KSN: ksn, dk: dk}, nil
}

// Transaction is one DUKPT transaction: a KSN and the keys derived for it.
type Transaction struct {
	KSN dukpt.KSN
	dk  []byte
}

func (t *Transaction) key(usage dukpt.KeyUsage) ([]byte, error) {
	return dukpt.WorkingKey(t.dk, usage, t.KSN)
}

// EncryptCard is AES-128-CBC, 16 zero bytes IV, PKCS#7 padding, under the data-encryption
// key: the EncryptedCard.ciphertext of a serialised CardData.
func (t *Transaction) EncryptCard(plaintext []byte) ([]byte, error) {
	key, err := t.key(dukpt.DataEncrypt)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	data := make([]byte, len(plaintext)+pad)
	copy(data, plaintext)
	for i := len(plaintext); i < len(data); i++ {
		data[i] = byte(pad)
	}
	defer wipe(data)
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(block, make([]byte, aes.BlockSize)).CryptBlocks(out, data)
	return out, nil
}

// PINBlock is the ISO 9564 format 4 block of pin for pan under the PIN-encryption key.
func (t *Transaction) PINBlock(pin, pan string) ([]byte, error) {
	key, err := t.key(dukpt.PINEncryption)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	enc := func(in []byte) ([]byte, error) {
		out := make([]byte, aes.BlockSize)
		block.Encrypt(out, in)
		return out, nil
	}
	return pinblock.Encipher(enc, pin, pan, pinFill())
}

// pinFill is the PIN field's 8 random bytes: nil asks pinblock for fresh ones (a variable so
// the published vectors' fixed fill can be set in a unit test).
var pinFill = func() []byte { return nil }

// MAC is the request MAC: AES-CMAC under the MAC-generation key (usage 0x2000).
func (t *Transaction) MAC(msg []byte) ([]byte, error) {
	key, err := t.key(dukpt.MACGeneration)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	return cmac.Sum(key, msg)
}

// VerifyResponse checks an answer's MAC under the MAC-verification key (usage 0x2001, "MAC,
// response") of this transaction's KSN.
func (t *Transaction) VerifyResponse(msg, mac []byte) bool {
	key, err := t.key(dukpt.MACVerification)
	if err != nil {
		return false
	}
	defer wipe(key)
	return cmac.Verify(key, msg, mac)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
