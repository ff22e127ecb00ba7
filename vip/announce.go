package vip

import (
	"context"
	"time"
)

// startAnnounce starts the takeover schedule. Called with s.mu held.
func (s *Set) startAnnounce(links map[string]Link) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.annContext = cancel, ctx
	s.annWG.Add(1)
	t := s.spec.Timing
	go func() {
		defer s.annWG.Done()
		s.burst(ctx, links, t.MasterRepeat)
		if t.MasterDelay > 0 {
			if !s.wait(ctx, t.MasterDelay) {
				return
			}
			s.burst(ctx, links, t.MasterRepeat)
		}
		if t.MasterRefresh <= 0 {
			return
		}
		for s.wait(ctx, t.MasterRefresh) {
			s.burst(ctx, links, t.MasterRefreshRepeat)
		}
	}()
}

// stopAnnounce cancels the schedule and waits for its goroutines.
func (s *Set) stopAnnounce() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		s.annWG.Wait()
	}
}

// wait reports whether d passed before ctx ended.
func (s *Set) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.clock.After(d):
		return true
	}
}

// burst sends repeat rounds; each round announces every address once
// (keepalived's order), with GARPInterval / GNAInterval between packets.
func (s *Set) burst(ctx context.Context, links map[string]Link, repeat int) {
	t := s.spec.Timing
	sent := 0
	for i := 0; i < repeat; i++ {
		for _, a := range s.allAddrs() {
			if ctx.Err() != nil {
				return
			}
			if s.expired() {
				s.logger.Debug("VIPs not announced: their kernel lifetime ran out")
				return
			}
			if a.Scope == ScopeHost {
				continue // nothing on the wire answers for a host-scope address
			}
			dev := s.dev(a.Dev)
			l, ok := links[dev]
			if !ok {
				var err error
				if l, err = s.k.LinkByName(dev); err != nil {
					s.logger.Warn("announce VIP: no interface", "addr", a.Prefix.String(), "dev", dev, "err", err)
					continue
				}
			}
			gap := t.GARPInterval
			var err error
			if a.Prefix.Addr().Is4() {
				err = s.k.SendGARP(l, a.Prefix.Addr())
			} else {
				gap = t.GNAInterval
				err = s.k.SendNA(l, a.Prefix.Addr())
			}
			if err != nil {
				s.logger.Warn("announce VIP failed", "addr", a.Prefix.String(), "dev", dev, "err", err)
			} else {
				sent++
			}
			if gap > 0 && !s.wait(ctx, gap) {
				return
			}
		}
	}
	s.logger.Debug("VIPs announced", "packets", sent)
}
