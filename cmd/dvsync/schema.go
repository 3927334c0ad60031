package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/invopop/jsonschema"
	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/config"
)

// configSchemaJSON is the JSON Schema of the daemon config file, generated
// from config.Config with its doc comments by configSchema; a test keeps
// it in step with the structs (go test ./cmd/dvsync -run Schema -update
// rewrites it).
//
//go:embed config.schema.json
var configSchemaJSON []byte

// configSchemaID is the schema's $id. Editors only need it to be stable.
const configSchemaID = "https://github.com/dvsync/dvsync/config.schema.json"

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config schema",
		Short: "Tools for the daemon config file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the daemon config file, for editors",
		Long: `schema prints a JSON Schema (draft 2020-12) of dvsync.yaml: every field, its
type and its description. Point your editor at it, for example with a first
line in the file reading

  # yaml-language-server: $schema=./dvsync.schema.json

after 'dvsync config schema > dvsync.schema.json'. 'dvsync validate' remains
the authority: it also checks values against each other and the mappings.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(configSchemaJSON)
			return err
		},
	})
	return cmd
}

// durationPattern matches what time.ParseDuration accepts, such as 20ms
// or 1m30s.
const durationPattern = `^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$|^0$`

// configSchema reflects the JSON Schema of config.Config, the YAML field
// names of its structs. configDir, when not empty, is the folder of package
// config's source, whose doc comments become the descriptions.
func configSchema(configDir string) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag: "yaml",
		// Nothing is required by the structs' shape: Load applies defaults.
		RequiredFromJSONSchemaTags: true,
		BaseSchemaID:               configSchemaID,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[time.Duration]() {
				return &jsonschema.Schema{
					Type: "string", Pattern: durationPattern,
					Description: "A duration such as 500ms, 10s or 1m30s.",
				}
			}
			return nil
		},
	}
	if configDir != "" {
		if err := r.AddGoComments("github.com/dvsync/dvsync", configDir); err != nil {
			return nil, fmt.Errorf("config schema: read comments: %w", err)
		}
	}
	s := r.Reflect(&config.Config{})
	s.ID = configSchemaID
	s.Title = "dvsync daemon config"
	if root, ok := s.Definitions["Config"]; ok {
		// The only field the file must give; Load says so with a line number.
		root.Required = []string{"version"}
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return append(out, '\n'), nil
}
