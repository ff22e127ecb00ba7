package director

import "sync"

// configSignal wakes the followers of the running configuration (the plain
// metrics listener, the IPVS sync daemon) when the loop publishes a new
// one. They used to compare it every second; an idle daemon should wake
// for VRRP's adverts and nothing else (issue 13: idle CPU).
type configSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next change. Take it before reading
// the configuration, so a change between the two is not missed.
func (s *configSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// fire wakes every waiter; call it after storing the new configuration.
func (s *configSignal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
