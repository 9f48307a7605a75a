// Package spec reads gearflow pipeline files: YAML, parsed strictly, with
// every error carrying file:line:column and a hint.
package spec
