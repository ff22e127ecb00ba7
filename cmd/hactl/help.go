package main

import "strings"

// commands are hactl's commands as the usage text names them; the tests
// hold the usage, the dispatcher and the shell completions to this list.
var commands = []string{
	"status", "vrrp", "ipvs", "checks",
	"config validate", "config push", "config show", "config history", "config rollback",
	"cluster init", "cluster join", "cluster members", "cluster remove",
	"genhash", "tls init", "tls ca", "tls cert", "keygen",
	"reload", "version", "help",
}

// helpError asks for the usage of command (empty: all of it).
type helpError struct{ command []string }

func (h helpError) Error() string { return "help" }

func (h helpError) Is(target error) bool { return target == errHelp }

func helpRequest(command []string) error { return helpError{command: command} }

// commandUsage is the usage of the command named by words: its lines of
// the commands list and the global flags; the whole text when no line
// matches (or no command is named).
func commandUsage(words []string) string {
	if len(words) == 0 {
		return usage
	}
	head, rest, _ := strings.Cut(usage, "\ncommands:\n")
	list, flags, _ := strings.Cut(rest, "\nglobal flags")
	want := words[0]
	if len(words) > 1 {
		want += " " + words[1]
	}
	var b strings.Builder
	taking := false
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   "):
			text := strings.TrimSpace(line)
			taking = strings.HasPrefix(text+" ", want+" ") || strings.Contains(text, "| "+want+" ")
			if !taking && len(words) > 1 {
				// "config bogus": fall back to all of config's lines.
				taking = strings.HasPrefix(text+" ", words[0]+" ") && !knownCommand(words[:2])
			}
		case line == "":
			taking = false
		}
		if taking {
			b.WriteString(line + "\n")
		}
	}
	if b.Len() == 0 {
		return usage
	}
	return head + "\ncommands:\n" + b.String() + "\nglobal flags" + flags
}

func knownCommand(words []string) bool {
	name := strings.Join(words, " ")
	for _, c := range commands {
		if c == name {
			return true
		}
	}
	return false
}
