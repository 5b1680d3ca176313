// Package suggest finds the likely intended word behind a typo: a flag
// name, a configuration key.
package suggest

// Closest returns the candidate nearest to s by edit distance, when it is
// near enough to be a likely typo (at most a third of its length, and at
// least 1 edit allowed); "" otherwise.
func Closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(len(s)/3, 1)
	if bestD < 0 || bestD > limit || bestD == 0 {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b (by
// bytes): insertions, deletions, substitutions and transpositions of two
// neighbours each cost 1, so "levle" is 1 from "level".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
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
