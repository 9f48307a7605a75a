package spec

import (
	"errors"
	"os"
)

// Load reads and validates the pipeline file at path; params are -p
// name=value overrides, converted to their declared types. Errors are
// *Error, or an errors.Join of several *Error sorted by position.
func Load(path string, params map[string]string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, params)
}

// Parse is Load on data read from file.
func Parse(data []byte, file string, params map[string]string) (*Pipeline, error) {
	return nil, errors.New("spec: parser not available yet")
}
