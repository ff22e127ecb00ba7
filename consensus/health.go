package consensus

import (
	"slices"
	"time"
)

// Effective is the health of one real server as this director should
// program it.
type Effective struct {
	Up bool `json:"up"`
	// Source says whose view decided: "quorum", "master", "local", or
	// "local-fallback" when this director is cut off from the quorum.
	Source string `json:"source"`
	// Views holds every director's replicated view (node -> up).
	Views map[string]bool `json:"views,omitempty"`
	// Known is false when nobody (not even this director) has a view.
	Known bool `json:"known"`
}

// HealthStatus says which mode is configured and which is in force.
type HealthStatus struct {
	Mode     string `json:"mode"`
	Fallback bool   `json:"fallback"`
	Reason   string `json:"reason,omitempty"`
}

// HealthState returns the configured mode and whether this director has
// fallen back to its own checks because it is cut off from the quorum.
func (n *Node) HealthState() HealthStatus {
	hs := HealthStatus{Mode: n.cfg.HealthMode}
	if n.cfg.HealthMode == HealthLocal {
		return hs
	}
	if cut, why := n.cutOff(); cut {
		hs.Fallback, hs.Reason = true, why
	}
	return hs
}

// Healthy returns the effective health of rs in vs under the configured
// mode. With no view at all it reports Known false (the caller keeps its
// own default, e.g. keepalived's "up until a checker says otherwise").
func (n *Node) Healthy(vs, rs string) Effective {
	hs := n.HealthState()
	views := n.fsm.Views(vs, rs)
	n.repMu.Lock()
	local, haveLocal := n.local[healthKey{vs, rs}]
	n.repMu.Unlock()
	return decide(hs, n.cfg.NodeName, n.Leader(), n.Voters(), views, local, haveLocal)
}

// decide is the pure health rule, separate for table tests.
func decide(hs HealthStatus, self, leader string, voters []string, views map[string]View, local, haveLocal bool) Effective {
	e := Effective{Views: map[string]bool{}}
	for node, v := range views {
		e.Views[node] = v.Up
	}
	localResult := func(src string) Effective {
		if haveLocal {
			e.Up, e.Known = local, true
		} else if v, ok := views[self]; ok {
			e.Up, e.Known = v.Up, true
		}
		e.Source = src
		return e
	}
	if hs.Fallback {
		return localResult("local-fallback")
	}
	switch hs.Mode {
	case HealthMaster:
		if v, ok := views[leader]; ok && leader != "" {
			e.Up, e.Known, e.Source = v.Up, true, HealthMaster
			return e
		}
		return localResult(HealthLocal)
	case HealthQuorum:
		// Down only when a quorum of the voters sees it down: one director's
		// bad network path cannot take a real server out everywhere.
		n := len(voters)
		if n == 0 {
			return localResult(HealthLocal)
		}
		quorum := n/2 + 1
		down, seen := 0, 0
		for _, node := range voters {
			v, ok := views[node]
			if node == self && haveLocal {
				v, ok = View{Up: local}, true
			}
			if !ok {
				continue
			}
			seen++
			if !v.Up {
				down++
			}
		}
		if seen == 0 {
			return localResult(HealthLocal)
		}
		e.Up, e.Known, e.Source = down < quorum, true, HealthQuorum
		return e
	}
	return localResult(HealthLocal)
}

// Member is one director as `hactl cluster members` shows it.
type Member struct {
	Name       string `json:"name"`
	Status     string `json:"status"` // alive, suspect, dead, left, unknown
	GossipAddr string `json:"gossip_addr,omitempty"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	Voter      bool   `json:"voter"`
	Leader     bool   `json:"leader"`
}

// Members merges the gossip view with the Raft configuration.
func (n *Node) Members() []Member {
	leader := n.Leader()
	byName := map[string]*Member{}
	for _, g := range n.gossip.members() {
		byName[g.Name] = &Member{Name: g.Name, Status: g.State, GossipAddr: g.Addr, RaftAddr: g.Meta.RaftAddr}
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			m := byName[string(s.ID)]
			if m == nil {
				m = &Member{Name: string(s.ID), Status: MemberUnknown}
				byName[string(s.ID)] = m
			}
			m.RaftAddr = string(s.Address)
			m.Voter = s.Suffrage.String() == "Voter"
		}
	}
	out := make([]Member, 0, len(byName))
	for _, m := range byName {
		m.Leader = m.Name == leader && leader != ""
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Status is this node's view of the cluster.
type Status struct {
	Node        string                   `json:"node"`
	State       string                   `json:"state"`
	Leader      string                   `json:"leader"`
	Term        uint64                   `json:"term"`
	LastIndex   uint64                   `json:"last_index"`
	CommitIndex uint64                   `json:"commit_index"`
	Config      *ConfigVersion           `json:"config,omitempty"` // Text left out
	Applied     map[string]AppliedRecord `json:"applied"`
	Members     []Member                 `json:"members"`
	Health      HealthStatus             `json:"health"`
	At          time.Time                `json:"at"`
}

// Status returns this node's view of the cluster.
func (n *Node) Status() Status {
	st := Status{
		Node: n.cfg.NodeName, State: n.State(), Leader: n.Leader(), Term: n.raft.CurrentTerm(),
		LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(),
		Applied: n.fsm.AppliedRecords(), Members: n.Members(), Health: n.HealthState(), At: time.Now().UTC(),
	}
	if cv, ok := n.fsm.Current(); ok {
		cv.Text = ""
		st.Config = &cv
	}
	return st
}

// EffectiveAll returns the effective health of every real server that
// this director or any other has a view of: vs -> rs -> Effective. It is
// Healthy for each, computed against one reading of the cluster state.
func (n *Node) EffectiveAll() map[string]map[string]Effective {
	hs := n.HealthState()
	leader, voters := n.Leader(), n.Voters()
	table := n.fsm.HealthTable()
	n.repMu.Lock()
	local := make(map[healthKey]bool, len(n.local))
	for k, v := range n.local {
		local[k] = v
	}
	n.repMu.Unlock()
	for k := range local {
		if table[k.vs] == nil {
			table[k.vs] = map[string]map[string]View{}
		}
		if table[k.vs][k.rs] == nil {
			table[k.vs][k.rs] = map[string]View{}
		}
	}
	out := make(map[string]map[string]Effective, len(table))
	for vs, rss := range table {
		m := make(map[string]Effective, len(rss))
		for rs, views := range rss {
			l, ok := local[healthKey{vs, rs}]
			m[rs] = decide(hs, n.cfg.NodeName, leader, voters, views, l, ok)
		}
		out[vs] = m
	}
	return out
}
