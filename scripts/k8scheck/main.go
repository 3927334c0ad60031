// Command k8scheck checks Kubernetes manifests offline, as an API server
// would decode them: every document must be a known kind whose fields all
// exist and have the right types (strict decoding against the typed API
// of k8s.io/api), and a workload's selector must match its pod labels.
// Kinds from outside the core API (a ServiceMonitor) are checked for
// apiVersion, kind and metadata.name only, and listed as such.
//
// It stands in for kubeconform, which fetches its JSON schemas over the
// network at run time. It is its own module so that dvsync's go.mod does
// not carry the Kubernetes API.
//
// Usage: k8scheck [-configmaps DIR] FILE... ("-" reads standard input).
// Exit status 1 on any problem, each printed as FILE: DOCUMENT: PROBLEM.
// With -configmaps, the data of every ConfigMap holding a dvsync.yaml is
// also written to DIR/NAME/, one file per key, as a pod would see it
// mounted, for `dvsync validate` to check.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func main() {
	flag.StringVar(&configMapDir, "configmaps", "", "write the data of ConfigMaps holding a dvsync.yaml under this folder")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: k8scheck [-configmaps DIR] FILE...")
		os.Exit(2)
	}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	failed := false
	for _, name := range flag.Args() {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		}
		n, problems := check(dec, r)
		for _, p := range problems {
			fmt.Printf("%s: %s\n", name, p)
			failed = true
		}
		if len(problems) == 0 {
			fmt.Printf("%s: %d documents ok\n", name, n)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check decodes every document of a YAML stream and returns how many it
// read and what is wrong with them.
func check(dec runtime.Decoder, r io.Reader) (int, []string) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var problems []string
	n := 0
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return n, problems
		}
		if err != nil {
			return n, append(problems, err.Error())
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		n++
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if runtime.IsNotRegisteredError(err) {
			kind, p := checkForeign(doc)
			if p != "" {
				problems = append(problems, fmt.Sprintf("document %d: %s", n, p))
			} else {
				fmt.Printf("  document %d: %s: not in the core API, checked for apiVersion, kind and name only\n", n, kind)
			}
			continue
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", n, err))
			continue
		}
		for _, p := range checkObject(obj) {
			problems = append(problems, fmt.Sprintf("document %d (%s): %s", n, gvk.Kind, p))
		}
	}
}

// checkObject applies the checks the API server would and strict decoding
// does not: names present, selectors matching the pods they select.
func checkObject(obj runtime.Object) []string {
	var problems []string
	if m, ok := obj.(metav1.Object); ok && m.GetName() == "" {
		problems = append(problems, "metadata.name is empty")
	}
	selects := func(sel *metav1.LabelSelector, podLabels map[string]string) {
		if sel == nil {
			problems = append(problems, "spec.selector is missing")
			return
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			problems = append(problems, "spec.selector: "+err.Error())
			return
		}
		if s.Empty() || !s.Matches(labels.Set(podLabels)) {
			problems = append(problems, fmt.Sprintf("spec.selector %s does not select the pod template's labels %v", s, podLabels))
		}
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		if err := writeConfigMap(o); err != nil {
			problems = append(problems, err.Error())
		}
	case *appsv1.Deployment:
		selects(o.Spec.Selector, o.Spec.Template.Labels)
	case *appsv1.StatefulSet:
		selects(o.Spec.Selector, o.Spec.Template.Labels)
		if o.Spec.ServiceName == "" {
			problems = append(problems, "spec.serviceName is empty")
		}
	case *policyv1.PodDisruptionBudget:
		if o.Spec.Selector == nil || len(o.Spec.Selector.MatchLabels)+len(o.Spec.Selector.MatchExpressions) == 0 {
			problems = append(problems, "spec.selector selects every pod")
		}
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			problems = append(problems, "give one of spec.minAvailable and spec.maxUnavailable")
		}
	}
	return problems
}

// configMapDir is the -configmaps folder; empty writes nothing.
var configMapDir string

// writeConfigMap writes a ConfigMap holding a dvsync config to
// configMapDir/NAME/.
func writeConfigMap(cm *corev1.ConfigMap) error {
	if configMapDir == "" || cm.Data["dvsync.yaml"] == "" {
		return nil
	}
	dir := filepath.Join(configMapDir, cm.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(k)), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkForeign checks a document of a kind outside the core API and
// returns its kind and what is wrong with it.
func checkForeign(doc []byte) (kind, problem string) {
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(doc, &u.Object); err != nil {
		return "", err.Error()
	}
	switch {
	case u.GetAPIVersion() == "":
		return u.GetKind(), "apiVersion is empty"
	case u.GetKind() == "":
		return "", "kind is empty"
	case u.GetName() == "":
		return u.GetKind(), "metadata.name is empty"
	}
	return u.GetKind(), ""
}

// stripComments drops comment-only lines, so that a document holding
// nothing but comments (what helm renders for a disabled template) counts
// as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}
