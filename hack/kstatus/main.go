// Command kstatus prints the kstatus of Kubernetes objects as judged by sigs.k8s.io/cli-utils,
// the library Flux, kpt and Config Sync use for health.
//
// It reads JSON from stdin: one or more objects or Lists (the output of `kubectl get -o json`),
// and writes one JSON line per object:
//
//	{"apiVersion":"...","kind":"...","namespace":"...","name":"...","status":"Current","message":"..."}
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(bufio.NewReader(in))
	decoder.UseNumber() // generations stay integers, as NestedInt64 expects
	writer := bufio.NewWriter(out)
	defer writer.Flush()
	encoder := json.NewEncoder(writer)
	count := 0
	for {
		var document map[string]interface{}
		err := decoder.Decode(&document)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		objects, err := flatten(document)
		if err != nil {
			return err
		}
		for _, object := range objects {
			computed, err := status.Compute(object)
			if err != nil {
				return fmt.Errorf("%s %s/%s: %w", object.GetKind(), object.GetNamespace(), object.GetName(), err)
			}
			line := result{
				APIVersion: object.GetAPIVersion(),
				Kind:       object.GetKind(),
				Namespace:  object.GetNamespace(),
				Name:       object.GetName(),
				Status:     computed.Status.String(),
				Message:    computed.Message,
			}
			if err := encoder.Encode(line); err != nil {
				return err
			}
			count++
		}
	}
	if count == 0 {
		return errors.New("no objects on stdin") // an empty answer must not read as "all healthy"
	}
	return nil
}

// flatten returns the items of a List, or the object itself.
func flatten(document map[string]interface{}) ([]*unstructured.Unstructured, error) {
	object := &unstructured.Unstructured{Object: normalize(document).(map[string]interface{})}
	if object.GetKind() == "" {
		return nil, errors.New("an object without kind")
	}
	if !object.IsList() {
		return []*unstructured.Unstructured{object}, nil
	}
	list, err := object.ToList()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", object.GetKind(), err)
	}
	objects := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		objects = append(objects, &list.Items[i])
	}
	return objects, nil
}

// normalize turns json.Number into int64 or float64, the types unstructured helpers accept.
func normalize(value interface{}) interface{} {
	switch typed := value.(type) {
	case map[string]interface{}:
		for key, item := range typed {
			typed[key] = normalize(item)
		}
		return typed
	case []interface{}:
		for i, item := range typed {
			typed[i] = normalize(item)
		}
		return typed
	case json.Number:
		if integer, err := typed.Int64(); err == nil {
			return integer
		}
		float, _ := typed.Float64()
		return float
	default:
		return value
	}
}
