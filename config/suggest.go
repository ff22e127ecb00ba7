package config

// nearest returns the known word closest to w by edit distance, or "" when
// nothing is close enough to be a plausible misspelling.
func nearest(w string, known []string) string {
	if len(w) <= 2 {
		return "" // too short for a suggestion to mean anything
	}
	// An abbreviation of exactly one known word ("pref" for "preference").
	prefixed := ""
	for _, k := range known {
		if len(k) > len(w) && len(w) >= 3 && k[:len(w)] == w {
			if prefixed != "" {
				prefixed = ""
				break
			}
			prefixed = k
		}
	}
	if prefixed != "" {
		return prefixed
	}
	best, bestD := "", 1<<30
	limit := len(w)/3 + 1
	if limit > 3 {
		limit = 3
	}
	for _, k := range known {
		d := editDistance(w, k)
		if d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD > limit || bestD == 0 {
		return ""
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance, so a swap of two letters counts as one typo.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
