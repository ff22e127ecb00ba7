package config

import (
	"math/bits"
	"math/rand/v2"
)

// textHash hashes a block's text for the incremental reload: two 64-bit
// lanes, each a chain of 64x64->128-bit multiplications (wyhash's mum),
// keyed by seeds drawn once per process. It does the work of two
// hash/maphash passes in one, and without the AES instructions maphash
// uses, which an emulated CPU (qemu TCG, where the reload is measured)
// runs tens of times slower than a multiplication.
type textHash struct{ a, b uint64 }

var textSeedA, textSeedB = rand.Uint64(), rand.Uint64()

func newTextHash() textHash { return textHash{textSeedA, textSeedB} }

// Odd 64-bit constants (wyhash's).
const (
	mix1 = 0xa0761d6478bd642f
	mix2 = 0xe7037ed1a0b428db
	mix3 = 0x8ebc6af09c88c6e3
	mix4 = 0x589965cc75374cc3
)

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// write adds s; its length is folded in, so that pieces written one
// after the other hash differently from the same bytes cut elsewhere.
func (h *textHash) write(s string) {
	n := uint64(len(s))
	a, b := h.a, h.b
	for len(s) >= 16 {
		w0, w1 := le64(s), le64(s[8:])
		a = mum(w0^a^mix1, w1^mix2)
		b = mum(w1^b^mix3, w0^mix4)
		s = s[16:]
	}
	var t [16]byte
	copy(t[:], s)
	w0, w1 := le64(string(t[:8])), le64(string(t[8:]))
	h.a = mum(w0^a^mix1, w1^mix2^n)
	h.b = mum(w1^b^mix3, w0^mix4^n)
}
