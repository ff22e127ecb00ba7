package checks

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func FuzzCheckDNSReply(f *testing.F) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("www.example.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	ok, _ := b.Finish()
	f.Add(uint16(7), ok)
	f.Add(uint16(7), []byte{0, 7, 0x80, 3, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(1), []byte{})
	f.Fuzz(func(t *testing.T, id uint16, buf []byte) {
		err := checkDNSReply(id, buf)
		if err == nil && (len(buf) < 12 || uint16(buf[0])<<8|uint16(buf[1]) != id || buf[2]&0x80 == 0 || buf[3]&0x0f != 0) {
			t.Fatalf("accepted %x", buf)
		}
	})
}

func FuzzCheckUDPReply(f *testing.F) {
	f.Add([]byte("pong"), []byte("po"), 0, 0)
	f.Add([]byte{}, []byte("x"), 1, 255)
	f.Fuzz(func(t *testing.T, reply, want []byte, minLen, maxLen int) {
		o := &UDPOptions{ReplyData: want, MinReplyLen: minLen, MaxReplyLen: maxLen}
		checkUDPReply(o, reply)
	})
}
