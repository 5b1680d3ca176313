package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes, written as a number of bytes or with a
// unit: 512K, 100MB, 10GB, 1.5TiB. K, M, G and T are powers of 1024, as
// in the NATS server's own configuration (KB and KiB alike); B is bytes.
// 0 means no limit.
type ByteSize int64

// sizeUnits are the units of a [ByteSize], longest first per letter.
var sizeUnits = []struct {
	suffix string
	factor float64
}{
	{"TIB", 1 << 40}, {"TB", 1 << 40}, {"T", 1 << 40},
	{"GIB", 1 << 30}, {"GB", 1 << 30}, {"G", 1 << 30},
	{"MIB", 1 << 20}, {"MB", 1 << 20}, {"M", 1 << 20},
	{"KIB", 1 << 10}, {"KB", 1 << 10}, {"K", 1 << 10},
	{"B", 1},
}

// parseSize parses a [ByteSize].
func parseSize(s string) (ByteSize, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	factor := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
	if err != nil || t == "" || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a size (like 1048576, 512K, 100MB or 10GB)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative (0 means no limit)", s)
	}
	b := v * factor
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(b), nil
}

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size (like 100MB or 10GB)")
	}
	v, err := parseSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats the size with the largest unit that divides it evenly
// to a tenth (10GB, 1.5MB, 1000B).
func (b ByteSize) String() string { return formatSize(int64(b)) }

// Set parses a size given as a command-line flag (pflag.Value).
func (b *ByteSize) Set(s string) error {
	v, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type names the flag's kind in help texts (pflag.Value).
func (b *ByteSize) Type() string { return "size" }

// formatSize formats bytes for people: 10GB, 1.5MB, 999B.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if n >= u.factor {
			v := float64(n) / float64(u.factor)
			if n%u.factor == 0 {
				return fmt.Sprintf("%d%s", n/u.factor, u.suffix)
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + u.suffix
		}
	}
	return fmt.Sprintf("%dB", n)
}
