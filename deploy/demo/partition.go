package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"hakeep/api"
)

// ownerSampler looks at which directors hold vip every 5 ms and counts the
// samples with two owners and the moves of a single owner.
type ownerSampler struct {
	d *demo

	mu      sync.Mutex
	samples int
	doubles int
	last    string // last single owner
	moves   int
	quit    chan struct{}
	done    chan struct{}
}

func (d *demo) sampleOwners() *ownerSampler {
	s := &ownerSampler{d: d, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			who := d.l.WhoHas(vip, directors...)
			s.mu.Lock()
			s.samples++
			if len(who) > 1 {
				s.doubles++
			}
			if len(who) == 1 {
				if s.last != "" && who[0] != s.last {
					s.moves++
				}
				s.last = who[0]
			}
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

// read returns samples, double-owner samples and moves so far.
func (s *ownerSampler) read() (samples, doubles, moves int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.doubles, s.moves
}

func (s *ownerSampler) stop() {
	close(s.quit)
	<-s.done
}

// cut makes every director drop what comes from across {h1} | {h2, h3}
// (iptables INPUT, links up: VRRP adverts leave through AF_PACKET, so the
// cut is made where they arrive).
func (d *demo) cut(on bool) error {
	for _, h := range directors {
		if !on {
			if err := d.l.Iptables(h, "-F", "INPUT"); err != nil {
				return err
			}
			continue
		}
		for _, o := range directors {
			if (h == "h1") != (o == "h1") {
				if err := d.l.Iptables(h, "-A", "INPUT", "-s", d.l.Host(o).Addr4.Addr().String(), "-j", "DROP"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// partition cuts h1 (the master) from h2 and h3 and heals the cut, with
// the VIP's owners sampled throughout. With hakeepd's fence h1 (a minority
// of one) gives the VIP up and shows FENCED, h2 takes it once, and after
// the heal h1 takes it back once, never two owners at a time; keepalived
// keeps it on both sides.
func (d *demo) partition() error {
	s := d.sampleOwners()
	defer s.stop()
	d.say("PARTITION: {h1} | {h2, h3}: every director drops the other side's packets (iptables INPUT; links stay up); sampling %s's owners every 5 ms", vip)
	cutAt := time.Now()
	if err := d.cut(true); err != nil {
		return err
	}
	if _, err := poll("h2 holding "+vip.String(), d.limit()+5*time.Second, func() error {
		if who := d.l.WhoHas(vip, directors...); !slices.Contains(who, "h2") {
			return fmt.Errorf("held by %v", who)
		}
		return nil
	}); err != nil {
		return err
	}
	took := time.Since(cutAt)
	if d.cluster() {
		var st api.Status
		if _, err := poll("h1's VI_1 FENCED", 10*time.Second, func() error {
			if err := d.hactlJSON("h1", &st, "status"); err != nil {
				return err
			}
			for _, in := range st.Instances {
				if in.Name == "VI_1" && in.State == "FENCED" {
					return nil
				}
			}
			return fmt.Errorf("h1: %+v", st.Instances)
		}); err != nil {
			return err
		}
		if err := d.show("h1", "status"); err != nil {
			return err
		}
		if who := d.l.WhoHas(vip, directors...); !slices.Equal(who, []string{"h2"}) {
			return fmt.Errorf("fenced partition: %s held by %v, want h2 alone", vip, who)
		}
		_, doubles, moves := s.read()
		d.say("FENCED: h1 (1 of 3 voters) gave %s up and shows FENCED; h2 holds it, %s after the cut; moves %d, samples with two owners %d",
			vip, took.Round(time.Millisecond), moves, doubles)
	} else {
		who := d.l.WhoHas(vip, directors...)
		d.say("SPLIT BRAIN: %s held by %s, %s after the cut (keepalived has no quorum: both sides are MASTER)", vip, strings.Join(who, " and "), took.Round(time.Millisecond))
	}
	healAt := time.Now()
	if err := d.cut(false); err != nil {
		return err
	}
	// Polled, not WaitOwner: keepalived's two masters overlap until the
	// first advert across the healed cut, which is the point here.
	if _, err := poll("h1 alone holding "+vip.String(), d.limit()+10*time.Second, func() error {
		if who := d.l.WhoHas(vip, directors...); !slices.Equal(who, []string{"h1"}) {
			return fmt.Errorf("held by %v", who)
		}
		return nil
	}); err != nil {
		return err
	}
	back := time.Since(healAt)
	// A moment more: a late second move would show.
	time.Sleep(time.Second)
	samples, doubles, moves := s.read()
	d.say("HEALED: h1 holds %s again %s after the heal (preemption); %d moves in all, %d of %d samples with two owners",
		vip, back.Round(time.Millisecond), moves, doubles, samples)
	if d.cluster() && (doubles > 0 || moves != 2) {
		return fmt.Errorf("fence: %d samples with two owners and %d moves through a partition and its heal, want 0 and 2", doubles, moves)
	}
	if !d.cluster() {
		// keepalived's second master sent gratuitous ARP: a client that
		// took it still sends to h2 after the heal, until h1's delayed
		// repeat (vrrp_garp_master_delay, 5 s) or the client's own ARP
		// timeout. Say how long, rather than fail on it.
		lost, err := poll("the client reaching "+vip.String(), d.limit()+10*time.Second, func() error {
			return d.l.Ping("client", vip)
		})
		if err != nil {
			return err
		}
		if lost > 0 {
			d.say("client: reached %s again %s after h1 was alone (its ARP followed h2's gratuitous ARP during the split)", vip, lost.Round(100*time.Millisecond))
		}
	}
	return d.showClient()
}
