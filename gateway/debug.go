package gateway

import (
	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// countLayersLocked advances the layer generations for the commit of p:
// the file's when the configuration file in force changed (base was the
// previous one), the admin layer's when its document did (doc was the
// previous one), the effective configuration's always (it is the commit's
// g.gen). The caller holds g.write and g.mu, with p's bookkeeping set.
func (g *Gateway) countLayersLocked(base *config.File, doc *state.Doc, p *plan) {
	if g.base != base {
		g.layerGens.File++
	}
	if p.doc != doc {
		g.layerGens.Admin++
	}
	g.layerGens.Config = g.gen + 1
}

// UpstreamLayers implements admin.LayerReporter.
func (g *Gateway) UpstreamLayers(name string) (built, now admin.LayerGenerations, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rt := g.upstreams[name]
	if rt == nil {
		return built, now, false
	}
	return rt.layers, g.layerGens, true
}
