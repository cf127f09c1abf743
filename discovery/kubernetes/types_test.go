package kubernetes

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The watcher's EndpointSlice reads what k8s.io/api/discovery/v1 writes,
// field for field, and its deep copies share nothing with the original.
func TestEndpointSliceTypes(t *testing.T) {
	if discoveryv1.SchemeGroupVersion.String() != groupVersion.String() || discoveryv1.LabelServiceName != labelServiceName ||
		string(discoveryv1.AddressTypeIPv4) != addressTypeIPv4 || string(discoveryv1.AddressTypeIPv6) != addressTypeIPv6 ||
		string(corev1.ProtocolTCP) != protocolTCP {
		t.Fatal("a constant differs from k8s.io/api's")
	}
	in := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: "web-a", Namespace: "prod", ResourceVersion: "7", Labels: map[string]string{labelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"192.0.2.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)},
			Hostname:   ptr("h"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "prod", Name: "web-1", UID: "u"},
			NodeName:   ptr("n1"),
			Zone:       ptr("z1"),
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z1"}, {Name: "z2"}}, ForNodes: []discoveryv1.ForNode{{Name: "n1"}}},
		}, {Addresses: []string{"192.0.2.2"}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(int32(8080)), AppProtocol: ptr("http")}},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var got endpointSlice
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := endpointSlice{TypeMeta: in.TypeMeta, ObjectMeta: in.ObjectMeta, AddressType: addressTypeIPv4,
		Endpoints: []endpoint{{
			Addresses:  []string{"192.0.2.1"},
			Conditions: endpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)},
			TargetRef:  &objectReference{Kind: "Pod", Namespace: "prod", Name: "web-1"},
			NodeName:   ptr("n1"), Zone: ptr("z1"),
			Hints: &endpointHints{ForZones: []named{{"z1"}, {"z2"}}, ForNodes: []named{{"n1"}}},
		}, {Addresses: []string{"192.0.2.2"}}},
		Ports: []endpointPort{{Name: ptr("http"), Protocol: ptr(protocolTCP), Port: ptr(int32(8080))}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}

	cp := got.DeepCopyObject().(*endpointSlice)
	if !reflect.DeepEqual(*cp, got) {
		t.Fatalf("deep copy\n%+v\nof\n%+v", *cp, got)
	}
	*cp.Endpoints[0].Conditions.Ready = true
	cp.Endpoints[0].Addresses[0] = "x"
	cp.Endpoints[0].Hints.ForZones[0].Name = "x"
	*cp.Endpoints[0].TargetRef = objectReference{}
	*cp.Ports[0].Port = 1
	cp.Labels["x"] = "y"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changing the copy changed the original: %+v", got)
	}
	list := &endpointSliceList{Items: []endpointSlice{got}}
	lc := list.DeepCopyObject().(*endpointSliceList)
	lc.Items[0].Endpoints[0].Addresses[0] = "x"
	if !reflect.DeepEqual(list.Items[0], want) {
		t.Fatal("changing the list's copy changed the original")
	}
}
