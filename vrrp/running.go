package vrrp

// Running reports whether Run's event loop is up (Reload and Status need
// it); false before Run and after it returned.
func (m *Manager) Running() bool { return m.running.Load() }

// StateNames lists every state's name in order (INIT ... FENCED), for
// metrics and operator views that enumerate them.
func StateNames() []string { return append([]string(nil), stateNames[:]...) }
