package dataplane

import (
	"hakeep/config"
	"hakeep/lvs"
)

// setTimeouts applies global_defs' lvs_timeouts (IPVS_CMD_SET_CONFIG) when
// IPVS is open and they differ from old's (nil: at open). A kernel write
// of three numbers: it does not hold the plane's loop for long. Removing
// the line leaves the kernel's values as they are, as keepalived does.
func (s *state) setTimeouts(old *config.Config) {
	lt := s.cfg.Global.LVSTimeouts
	if lt == nil || s.ipvs == nil {
		return
	}
	if old != nil && old.Global.LVSTimeouts != nil {
		o := old.Global.LVSTimeouts
		if o.TCP == lt.TCP && o.TCPFin == lt.TCPFin && o.UDP == lt.UDP {
			return
		}
	}
	c, ok := s.ipvs.(lvs.TimeoutClient)
	if !ok {
		s.p.log.Error("lvs_timeouts: this IPVS client cannot set timeouts", "pos", lt.Pos.String())
		return
	}
	if err := c.SetTimeouts(lvs.Timeouts{TCP: lt.TCP, TCPFin: lt.TCPFin, UDP: lt.UDP}); err != nil {
		s.p.log.Error("lvs_timeouts not applied", "pos", lt.Pos.String(), "err", err)
		return
	}
	s.p.log.Info("IPVS timeouts set", "tcp", lt.TCP, "tcpfin", lt.TCPFin, "udp", lt.UDP)
}
