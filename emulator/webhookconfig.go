package emulator

import (
	"fmt"
	"slices"
	"strings"
)

// Webhook is a service endpoint with contract Webhook and the steps
// registered on it: after a matching create, update or delete the emulator
// POSTs a RemoteExecutionContext to URL, as Dataverse does.
type Webhook struct {
	// Name is the service endpoint's name; it must be unique.
	Name string `yaml:"name"`
	// URL is the absolute http or https address the context is posted to.
	URL  string      `yaml:"url"`
	Auth WebhookAuth `yaml:"auth"`
	// Steps are the sdkmessageprocessingstep rows bound to the endpoint.
	Steps []WebhookStep `yaml:"steps"`
}

// WebhookAuth is the endpoint's authtype and authvalue. The receiver checks
// them itself; Dataverse only sends them.
type WebhookAuth struct {
	// Type is "webhookkey" (authtype 4: ?code=<Value>), "header" (5: each
	// of Values as a request header) or "querystring" (6: each of Values as
	// a query parameter).
	Type string `yaml:"type"`
	// Value is the key of a webhookkey endpoint.
	Value string `yaml:"value,omitempty"`
	// Values are the header or query-string pairs of the other types.
	Values map[string]string `yaml:"values,omitempty"`
}

// WebhookStep is one sdkmessageprocessingstep on a webhook.
type WebhookStep struct {
	// Name of the step; default "<webhook>: <message> of <table>".
	Name string `yaml:"name,omitempty"`
	// Message is Create, Update or Delete.
	Message string `yaml:"message"`
	// Table is the logical name of the table the step filters on.
	Table string `yaml:"table"`
	// Stage is 10 (pre-validation), 20 (pre-operation) or 40
	// (post-operation, the default).
	Stage int `yaml:"stage,omitempty"`
	// Mode is "async" (the default) or "sync". Asynchronous steps are
	// post-operation only; a failing synchronous step fails the write.
	Mode string `yaml:"mode,omitempty"`
	// FilteringAttributes limit an Update step to updates that set at least
	// one of these columns; empty means every update.
	FilteringAttributes []string `yaml:"filtering_attributes,omitempty"`
	// Images are the sdkmessageprocessingstepimage rows of the step.
	Images []WebhookImage `yaml:"images,omitempty"`
}

// WebhookImage is a pre or post image: a snapshot of the row, sent in
// PreEntityImages or PostEntityImages under Alias.
type WebhookImage struct {
	// Type is "pre", "post" or "both". Create has no pre image, Delete no
	// post image, and only post-operation steps have post images.
	Type string `yaml:"type"`
	// Alias is the entityalias, the key of the image; default PreImage,
	// PostImage or Image (both).
	Alias string `yaml:"alias,omitempty"`
	// Attributes are the columns in the image; empty means all.
	Attributes []string `yaml:"attributes,omitempty"`
}

// webhookMessages are the messages a step may register for.
var webhookMessages = []string{"Create", "Update", "Delete"}

func validateWebhooks(s *Schema) []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path, fmt.Sprintf(format, args...)})
	}
	tables := map[string]*Table{}
	for i := range s.Tables {
		tables[s.Tables[i].LogicalName] = &s.Tables[i]
	}
	names := map[string]int{}
	for i, w := range s.Webhooks {
		path := fmt.Sprintf("webhooks[%d]", i)
		if w.Name == "" {
			add(path+".name", "is required")
		} else if j, dup := names[w.Name]; dup {
			add(path+".name", "duplicate webhook name %q (also webhooks[%d])", w.Name, j)
		}
		names[w.Name] = i
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			add(path+".url", "%q is not an absolute http or https URL", w.URL)
		} else if len(w.URL) > 2000 {
			add(path+".url", "is longer than 2000 characters")
		}
		switch w.Auth.Type {
		case "webhookkey":
			if w.Auth.Value == "" {
				add(path+".auth.value", "is required for auth type webhookkey")
			}
		case "header", "querystring":
			if len(w.Auth.Values) == 0 {
				add(path+".auth.values", "at least one pair is required for auth type %s", w.Auth.Type)
			}
		case "":
			add(path+".auth.type", "is required (webhookkey, header or querystring)")
		default:
			add(path+".auth.type", "unknown auth type %q (want webhookkey, header or querystring)", w.Auth.Type)
		}
		if len(w.Steps) == 0 {
			add(path+".steps", "at least one step is required")
		}
		for j, st := range w.Steps {
			probs = append(probs, validateStep(&st, fmt.Sprintf("%s.steps[%d]", path, j), tables)...)
		}
	}
	return probs
}

func validateStep(st *WebhookStep, path string, tables map[string]*Table) []problem {
	var probs []problem
	add := func(field, format string, args ...any) {
		probs = append(probs, problem{path + field, fmt.Sprintf(format, args...)})
	}
	if !slices.Contains(webhookMessages, st.Message) {
		add(".message", "%q is not a supported message (want Create, Update or Delete)", st.Message)
	}
	stage := stageOf(st)
	if stage != 10 && stage != 20 && stage != 40 {
		add(".stage", "%d is not a step stage (want 10, 20 or 40)", stage)
	}
	switch st.Mode {
	case "", "async":
		if stage != 40 {
			add(".mode", "asynchronous steps are post-operation (stage 40) only")
		}
	case "sync":
	default:
		add(".mode", "unknown mode %q (want sync or async)", st.Mode)
	}
	t, ok := tables[st.Table]
	if !ok {
		add(".table", "%q is not the logical name of a table in this schema", st.Table)
	}
	hasColumn := func(name string) bool {
		if t == nil {
			return true // reported above
		}
		if name == t.PrimaryID || (t.PrimaryID == "" && name == t.LogicalName+"id") || slices.Contains(systemColumns, name) {
			return true
		}
		return slices.ContainsFunc(t.Attributes, func(a Attribute) bool { return a.Name == name })
	}
	if len(st.FilteringAttributes) > 0 && st.Message != "Update" {
		add(".filtering_attributes", "only Update steps have filtering attributes")
	}
	for i, name := range st.FilteringAttributes {
		if !hasColumn(name) {
			add(fmt.Sprintf(".filtering_attributes[%d]", i), "%q is not a column of %s", name, st.Table)
		}
	}
	aliases := map[string]bool{}
	for i, im := range st.Images {
		ip := fmt.Sprintf(".images[%d]", i)
		pre, post := im.Type == "pre" || im.Type == "both", im.Type == "post" || im.Type == "both"
		switch {
		case !pre && !post:
			add(ip+".type", "unknown image type %q (want pre, post or both)", im.Type)
		case pre && st.Message == "Create":
			add(ip+".type", "a Create step has no pre image")
		case post && st.Message == "Delete":
			add(ip+".type", "a Delete step has no post image")
		case post && stage != 40:
			add(ip+".type", "only post-operation steps have a post image")
		}
		alias := imageAlias(im)
		if aliases[alias] {
			add(ip+".alias", "duplicate image alias %q", alias)
		}
		aliases[alias] = true
		for j, name := range im.Attributes {
			if !hasColumn(name) {
				add(fmt.Sprintf("%s.attributes[%d]", ip, j), "%q is not a column of %s", name, st.Table)
			}
		}
	}
	return probs
}

func stageOf(st *WebhookStep) int {
	if st.Stage == 0 {
		return 40
	}
	return st.Stage
}

func imageAlias(im WebhookImage) string {
	if im.Alias != "" {
		return im.Alias
	}
	return map[string]string{"pre": "PreImage", "post": "PostImage", "both": "Image"}[im.Type]
}
