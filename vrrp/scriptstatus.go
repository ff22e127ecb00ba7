package vrrp

import "sort"

// ScriptStatus is one vrrp_script's result as the instances tracking it
// see it (after rise and fall): what keepalived's SIGUSR1 dump shows as
// "Status = GOOD/BAD".
type ScriptStatus struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// Scripts returns the tracked vrrp_scripts' results, sorted by name, as of
// the loop's last track event. Like Status it never waits for the loop.
func (m *Manager) Scripts() []ScriptStatus {
	p := m.scriptPub.Load()
	if p == nil {
		return nil
	}
	return append([]ScriptStatus(nil), (*p)...)
}

// publishScripts copies the tracker's script results for Scripts (event
// loop only; called whenever the tracked state may have changed).
func (m *Manager) publishScripts() {
	if m.track == nil {
		return
	}
	out := make([]ScriptStatus, 0, len(m.track.scripts))
	for name, ok := range m.track.scripts {
		out = append(out, ScriptStatus{Name: name, OK: ok})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	m.scriptPub.Store(&out)
}
