package terminal

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Injection says how to reach the key-injection facility: its command line
// (`payswitch-kif` with its global options, e.g. --switch-admin and --certs-dir) and who
// operates the bench (the KIF's audit line names them).
type Injection struct {
	Command  []string
	Operator string
}

// Injected is what the KIF reported: the device's initial key ID and the IK's check value.
type Injected struct {
	IKID string `json:"ikid"`
	KCV  string `json:"kcv"`
}

// Inject loads a new device's initial key into se: `payswitch-kif inject --register` assigns
// a new device (initial key ID) to terminalID, reads the transport public key as JSON
// ({"modulus": hex, "exponent": hex}) on stdin and writes {"ikid", "wrapped", "kcv"}: the IK
// wrapped under that key (RSA-OAEP), never in clear.
func Inject(ctx context.Context, se *SecureElement, inj Injection, terminalID string) (Injected, error) {
	if len(inj.Command) == 0 {
		return Injected{}, errors.New("no KIF command")
	}
	modulus, exponent, err := se.TransportPublicKey()
	if err != nil {
		return Injected{}, err
	}
	request, _ := json.Marshal(map[string]string{
		"modulus": hex.EncodeToString(modulus), "exponent": hex.EncodeToString(exponent),
	})
	args := append(append([]string(nil), inj.Command[1:]...),
		"inject", "--register", "--terminal", terminalID, "--operator", inj.Operator)
	cmd := exec.CommandContext(ctx, inj.Command[0], args...)
	cmd.Stdin = bytes.NewReader(request)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		return Injected{}, fmt.Errorf("key injection refused (%v): %s", err, msg)
	}
	var answer struct {
		IKID    string `json:"ikid"`
		Wrapped string `json:"wrapped"`
		KCV     string `json:"kcv"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &answer); err != nil {
		return Injected{}, errors.New("key injection: the KIF's answer is not JSON")
	}
	ikid, err1 := hex.DecodeString(answer.IKID)
	wrapped, err2 := hex.DecodeString(answer.Wrapped)
	if err1 != nil || err2 != nil {
		return Injected{}, errors.New("key injection: the KIF's answer is not hex")
	}
	if err := se.LoadInitialKey(ikid, wrapped, strings.ToUpper(answer.KCV)); err != nil {
		return Injected{}, fmt.Errorf("key injection: %w", err)
	}
	return Injected{IKID: strings.ToUpper(answer.IKID), KCV: strings.ToUpper(answer.KCV)}, nil
}
