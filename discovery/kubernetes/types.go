package kubernetes

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The discovery.k8s.io/v1 EndpointSlice, as far as the watcher reads it: the
// fields and JSON names of k8s.io/api/discovery/v1, nothing else. They are
// declared here because k8s.io/api/discovery/v1 imports k8s.io/api/core/v1,
// whose package initialisation registers every core type with protobuf and
// so keeps all of their generated code in the binary (4.4 MB, measured);
// the watcher needs none of it. The API server answers in JSON; fields the
// gateway does not read are skipped when decoding.

// groupVersion is discovery.k8s.io/v1.
var groupVersion = schema.GroupVersion{Group: "discovery.k8s.io", Version: "v1"}

// labelServiceName labels each EndpointSlice with the Service it belongs to.
const labelServiceName = "kubernetes.io/service-name"

// Address types and the protocol the watcher uses.
const (
	addressTypeIPv4 = "IPv4"
	addressTypeIPv6 = "IPv6"
	protocolTCP     = "TCP"
)

// endpointSlice is a discovery.k8s.io/v1 EndpointSlice.
type endpointSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	AddressType       string         `json:"addressType"`
	Endpoints         []endpoint     `json:"endpoints"`
	Ports             []endpointPort `json:"ports"`
}

// endpointSliceList is a discovery.k8s.io/v1 EndpointSliceList.
type endpointSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []endpointSlice `json:"items"`
}

type endpoint struct {
	Addresses  []string           `json:"addresses"`
	Conditions endpointConditions `json:"conditions,omitempty"`
	TargetRef  *objectReference   `json:"targetRef,omitempty"`
	NodeName   *string            `json:"nodeName,omitempty"`
	Zone       *string            `json:"zone,omitempty"`
	Hints      *endpointHints     `json:"hints,omitempty"`
}

type endpointConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

type endpointHints struct {
	ForZones []named `json:"forZones,omitempty"`
	ForNodes []named `json:"forNodes,omitempty"`
}

// named is a ForZone or a ForNode.
type named struct {
	Name string `json:"name"`
}

type objectReference struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

type endpointPort struct {
	Name     *string `json:"name,omitempty"`
	Protocol *string `json:"protocol,omitempty"`
	Port     *int32  `json:"port,omitempty"`
}

// addToScheme registers the two kinds and the meta types (list options,
// watch events, Status) under discovery.k8s.io/v1.
func addToScheme(s *runtime.Scheme) {
	s.AddKnownTypeWithName(groupVersion.WithKind("EndpointSlice"), &endpointSlice{})
	s.AddKnownTypeWithName(groupVersion.WithKind("EndpointSliceList"), &endpointSliceList{})
	metav1.AddToGroupVersion(s, groupVersion)
}

// DeepCopyObject implements runtime.Object.
func (in *endpointSlice) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	return in.deepCopy()
}

func (in *endpointSlice) deepCopy() *endpointSlice {
	out := &endpointSlice{TypeMeta: in.TypeMeta, AddressType: in.AddressType}
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if in.Endpoints != nil {
		out.Endpoints = make([]endpoint, len(in.Endpoints))
		for i := range in.Endpoints {
			out.Endpoints[i] = in.Endpoints[i].deepCopy()
		}
	}
	if in.Ports != nil {
		out.Ports = make([]endpointPort, len(in.Ports))
		for i, p := range in.Ports {
			out.Ports[i] = endpointPort{Name: clone(p.Name), Protocol: clone(p.Protocol), Port: clone(p.Port)}
		}
	}
	return out
}

func (in *endpoint) deepCopy() endpoint {
	out := endpoint{
		Conditions: endpointConditions{Ready: clone(in.Conditions.Ready), Serving: clone(in.Conditions.Serving), Terminating: clone(in.Conditions.Terminating)},
		TargetRef:  clone(in.TargetRef), NodeName: clone(in.NodeName), Zone: clone(in.Zone),
	}
	if in.Addresses != nil {
		out.Addresses = append([]string(nil), in.Addresses...)
	}
	if h := in.Hints; h != nil {
		out.Hints = &endpointHints{}
		if h.ForZones != nil {
			out.Hints.ForZones = append([]named(nil), h.ForZones...)
		}
		if h.ForNodes != nil {
			out.Hints.ForNodes = append([]named(nil), h.ForNodes...)
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *endpointSliceList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := &endpointSliceList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]endpointSlice, len(in.Items))
		for i := range in.Items {
			out.Items[i] = *in.Items[i].deepCopy()
		}
	}
	return out
}

// clone copies what p points to (nil stays nil).
func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
