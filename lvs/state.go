package lvs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// StateFileName is the reconciler's state file within hakeepd's state
// directory (--state-dir): the director passes
// filepath.Join(dir, StateFileName) as Options.StateFile.
const StateFileName = "ipvs-services.json"

// stateVersion is the state file's format. A file of another version is
// unreadable, hence treated as empty: never delete on a guess.
const stateVersion = 1

// The state file records the services the reconciler owns (created, or
// adopted because they were desired), so that a later run deletes those it
// no longer wants and still never touches a service someone else made.
//
//	{"version": 1, "services": [
//	{"service":"TCP 10.0.0.1:80","family":2,"proto":6,"addr":"10.0.0.1","port":80},
//	{"service":"FWM 7","family":2,"fwmark":7}
//	]}
//
// "service" is for people grepping the file; it must agree with the
// fields, or the file is rejected as corrupt (a half-done hand edit).
type stateDoc struct {
	Version  int          `json:"version"`
	Services []stateEntry `json:"services"`
}

type stateEntry struct {
	Service string     `json:"service"`
	Family  uint16     `json:"family"`
	Proto   uint16     `json:"proto,omitempty"`
	Addr    netip.Addr `json:"addr,omitzero"`
	Port    uint16     `json:"port,omitempty"`
	FWMark  uint32     `json:"fwmark,omitempty"`
}

// appendStateEntry appends k's entry as json.Marshal of its stateEntry
// writes it, without reflection: a reload that adds a service rewrites
// every entry before its first kernel change, and json.Marshal of 2,000
// entries took tens of milliseconds of an emulated CPU.
func appendStateEntry(b []byte, k ServiceKey) ([]byte, error) {
	svc := k.String()
	var addr string
	if k.Addr.IsValid() {
		addr = k.Addr.String()
	}
	if !jsonPlain(svc) || !jsonPlain(addr) {
		e, err := json.Marshal(stateEntry{Service: svc, Family: k.Family, Proto: k.Proto, Addr: k.Addr, Port: k.Port, FWMark: k.FWMark})
		return append(b, e...), err
	}
	b = append(b, `{"service":"`...)
	b = append(b, svc...)
	b = append(b, `","family":`...)
	b = strconv.AppendUint(b, uint64(k.Family), 10)
	if k.Proto != 0 {
		b = append(b, `,"proto":`...)
		b = strconv.AppendUint(b, uint64(k.Proto), 10)
	}
	if addr != "" {
		b = append(b, `,"addr":"`...)
		b = append(b, addr...)
		b = append(b, '"')
	}
	if k.Port != 0 {
		b = append(b, `,"port":`...)
		b = strconv.AppendUint(b, uint64(k.Port), 10)
	}
	if k.FWMark != 0 {
		b = append(b, `,"fwmark":`...)
		b = strconv.AppendUint(b, uint64(k.FWMark), 10)
	}
	return append(b, '}'), nil
}

// jsonPlain reports whether JSON writes s as it is between quotes.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func (e stateEntry) key() ServiceKey {
	return ServiceKey{Family: e.Family, Proto: e.Proto, Addr: e.Addr, Port: e.Port, FWMark: e.FWMark}
}

// check rejects entries that are not a key the kernel can hold, in the
// form Dump reports it.
func (e stateEntry) check() error {
	k := e.key()
	if k.Family != AFInet && k.Family != AFInet6 {
		return fmt.Errorf("family %d", k.Family)
	}
	if k.FWMark != 0 {
		if k.Addr.IsValid() || k.Proto != 0 || k.Port != 0 {
			return errors.New("a firewall-mark service with an address, protocol or port")
		}
	} else {
		if !k.Addr.IsValid() || k.Proto == 0 {
			return errors.New("neither a firewall mark nor an address and protocol")
		}
		// Dump reports IPv4 services with plain IPv4 addresses.
		if k.Addr.Is4() != (k.Family == AFInet) || k.Addr.Zone() != "" {
			return fmt.Errorf("address %s in family %d", k.Addr, k.Family)
		}
	}
	if s := k.String(); s != e.Service {
		return fmt.Errorf("service %q does not match its fields (%s)", e.Service, s)
	}
	return nil
}

// readState reads a state file. A missing file is fs.ErrNotExist; any
// other error means the file cannot be trusted.
func readState(path string) (map[ServiceKey]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc stateDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("IPVS state file %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("IPVS state file %s: data after the document", path)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("IPVS state file %s: version %d, want %d", path, doc.Version, stateVersion)
	}
	owned := make(map[ServiceKey]bool, len(doc.Services))
	for i, e := range doc.Services {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("IPVS state file %s: service %d: %w", path, i+1, err)
		}
		owned[e.key()] = true
	}
	return owned, nil
}

// writeState replaces the state file atomically (a crash leaves the old
// file or the new one, never a mix), mode 0600, creating its directory
// with mode 0700 when missing.
func writeState(path string, owned map[ServiceKey]bool) error {
	var st stateText
	return st.write(path, owned)
}

// stateText is the state file's entries as last written, in order: a
// reload that adds a few services to thousands (and must record them
// before creating them) formats and sorts only those. Rewriting 2,000
// entries from scratch took 60 ms of an emulated CPU, on the path to a
// programmed table.
type stateText struct {
	keys  []ServiceKey // sorted
	lines map[ServiceKey][]byte
}

// write writes owned to path, formatting only the entries not written
// before.
func (st *stateText) write(path string, owned map[ServiceKey]bool) error {
	if err := st.update(owned); err != nil {
		return err
	}
	n := 64
	for _, l := range st.lines {
		n += len(l) + 2
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	fmt.Fprintf(b, "{\"version\": %d, \"services\": [\n", stateVersion)
	for i, k := range st.keys {
		b.Write(st.lines[k])
		if i < len(st.keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return replaceFile(path, b.Bytes())
}

// update makes keys and lines hold exactly owned.
func (st *stateText) update(owned map[ServiceKey]bool) error {
	if st.lines == nil {
		st.lines = make(map[ServiceKey][]byte, len(owned))
	}
	kept := st.keys[:0]
	for _, k := range st.keys {
		if owned[k] {
			kept = append(kept, k)
		} else {
			delete(st.lines, k)
		}
	}
	st.keys = kept
	if len(kept) == len(owned) {
		return nil
	}
	var added []ServiceKey
	for k, ok := range owned {
		if _, had := st.lines[k]; ok && !had {
			added = append(added, k)
		}
	}
	slices.SortFunc(added, ServiceKey.compare)
	for _, k := range added {
		line, err := appendStateEntry(nil, k)
		if err != nil {
			st.keys, st.lines = nil, nil // start again next time
			return err
		}
		st.lines[k] = line
	}
	merged := make([]ServiceKey, 0, len(kept)+len(added))
	i, j := 0, 0
	for i < len(kept) || j < len(added) {
		if j == len(added) || (i < len(kept) && kept[i].compare(added[j]) < 0) {
			merged = append(merged, kept[i])
			i++
		} else {
			merged = append(merged, added[j])
			j++
		}
	}
	st.keys = merged
	return nil
}

// replaceFile writes data to path atomically.
func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write IPVS state file: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("write IPVS state file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync() // the rename must not land before the data
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write IPVS state file %s: %w", path, err)
	}
	// Make the rename itself durable where the directory is on disk (in
	// /run, tmpfs, this is free).
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// OwnedInStateFile reports whether the state file at path lists services
// a previous run programmed (that the next reconciler will delete unless
// they are desired again). A missing file lists none. The director uses it
// to start a reconciler even when no virtual_server is configured, so the
// services of removed ones do not linger; on an error it should start one
// too, which logs the error and rewrites the file.
func OwnedInStateFile(path string) (bool, error) {
	owned, err := readState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(owned) > 0, nil
}
