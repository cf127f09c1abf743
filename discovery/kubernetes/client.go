package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultServiceAccountDir is where the kubelet mounts a pod's
// service-account token, CA bundle and namespace.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// ErrNotInCluster is the cause of the error a Source reports when it has
// no kubeconfig and the environment lacks KUBERNETES_SERVICE_HOST or
// KUBERNETES_SERVICE_PORT.
var ErrNotInCluster = errors.New("not running in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset) and no kubeconfig given")

// client lists and watches EndpointSlices of one API server with one set
// of credentials. It is a client of discovery.k8s.io/v1 only: its scheme
// knows EndpointSlices and the meta types, nothing else.
type client struct {
	rc     rest.Interface
	params runtime.ParameterCodec
	// namespace is the default namespace of the credentials: the pod's
	// (in-cluster), or the kubeconfig context's; "default" when neither
	// says.
	namespace string
	// host is the API server's URL, for messages.
	host string
}

// credentials say how to reach the API server: Kubeconfig, when set, is a
// kubeconfig file (its current context); otherwise the pod's service
// account (in-cluster).
type credentials struct {
	kubeconfig string
}

func (o options) newClient(cr credentials) (*client, error) {
	var (
		cfg *rest.Config
		ns  string
	)
	if cr.kubeconfig != "" {
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: cr.kubeconfig}, &clientcmd.ConfigOverrides{})
		var err error
		if cfg, err = cc.ClientConfig(); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cr.kubeconfig, err)
		}
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cr.kubeconfig, err)
		}
	} else {
		var err error
		if cfg, ns, err = o.inCluster(); err != nil {
			return nil, err
		}
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	scheme := runtime.NewScheme()
	addToScheme(scheme)
	cfg = rest.CopyConfig(cfg)
	gv := groupVersion
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	// JSON: the watcher's own types (types.go) have no protobuf codec.
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.UserAgent = o.userAgent
	// The API server's warning headers would go to klog's stderr, outside
	// the gateway's log.
	cfg.WarningHandler = rest.NoWarnings{}
	// The watch is long-lived; requests other than watches are bounded.
	cfg.Timeout = 0
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &client{rc: rc, params: runtime.NewParameterCodec(scheme), namespace: ns, host: cfg.Host}, nil
}

// inCluster is the pod's service-account configuration, as client-go's
// rest.InClusterConfig builds it, with the environment and the directory
// injectable. The token file is re-read as the kubelet rotates it.
func (o options) inCluster() (*rest.Config, string, error) {
	host, _ := o.lookupEnv("KUBERNETES_SERVICE_HOST")
	port, _ := o.lookupEnv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, "", ErrNotInCluster
	}
	tokenFile := filepath.Join(o.serviceAccountDir, "token")
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("in-cluster credentials: %w", err)
	}
	caFile := filepath.Join(o.serviceAccountDir, "ca.crt")
	if _, err := os.Stat(caFile); err != nil {
		return nil, "", fmt.Errorf("in-cluster credentials: %w", err)
	}
	ns := ""
	if b, err := os.ReadFile(filepath.Join(o.serviceAccountDir, "namespace")); err == nil {
		ns = strings.TrimSpace(string(b))
	}
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
		BearerToken:     strings.TrimSpace(string(token)),
		BearerTokenFile: tokenFile,
	}, ns, nil
}

// list lists the EndpointSlices of namespace ns that opts select.
func (c *client) list(ctx context.Context, ns string, opts metav1.ListOptions, timeout time.Duration) (*endpointSliceList, error) {
	out := &endpointSliceList{}
	err := c.rc.Get().Namespace(ns).Resource("endpointslices").
		VersionedParams(&opts, c.params).Timeout(timeout).Do(ctx).Into(out)
	return out, err
}

// watch watches the EndpointSlices of namespace ns that opts select.
func (c *client) watch(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(ns).Resource("endpointslices").
		VersionedParams(&opts, c.params).Watch(ctx)
}

// explain turns an API error into one that says what to fix: a denial
// names the verb and resource the gateway's identity lacks.
func explain(verb, ns string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %s endpointslices: forbidden: grant %q on endpointslices (apiGroups: [discovery.k8s.io]) in namespace %q to the gateway's service account, with a Role and RoleBinding allowing get, list and watch: %v",
			ErrForbidden, verb, verb, ns, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s endpointslices: unauthorized (the token or client certificate was refused): %w", verb, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s endpointslices: not found (the API server does not serve discovery.k8s.io/v1, Kubernetes >= 1.21 does): %w", verb, err)
	}
	return fmt.Errorf("%s endpointslices: %w", verb, err)
}

// ErrForbidden is the cause of the error a Source reports when the API
// server denies the gateway's identity a verb on endpointslices.
var ErrForbidden = errors.New("RBAC denied")
