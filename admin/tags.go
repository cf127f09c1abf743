package admin

import (
	"net/http"

	"github.com/outrigger-gw/outrigger/config"
)

// tagOut is one (entity, tag) pair of GET /tags, in Kong's shape.
type tagOut struct {
	EntityName string `json:"entity_name"`
	EntityID   string `json:"entity_id"`
	Tag        string `json:"tag"`
}

// tagKey is a pair's paging key: by tag, then entity kind, then id.
func tagKey(t tagOut) string { return t.Tag + "\x00" + t.EntityName + "\x00" + t.EntityID }

// kindTags appends the (entity, tag) pairs of every effective entity of k
// whose tag passes keep.
func kindTags[C, D any](w *world, k *kind[C, D], entity string, keep func(string) bool, out []tagOut) []tagOut {
	all := k.all(w.eff)
	for i := range all {
		c := &all[i]
		var id string
		for _, t := range k.tags(c) {
			if !keep(t) {
				continue
			}
			if id == "" {
				id = k.metaOf(w, k.key(c)).ID
			}
			out = append(out, tagOut{EntityName: entity, EntityID: id, Tag: t})
		}
	}
	return out
}

// allTags is every (entity, tag) pair whose tag passes keep: upstreams,
// the targets the file or the admin layer holds (discovered targets are
// no entities), services, routes, plugins, consumers, key-auth
// credentials, certificates and SNIs.
func (w *world) allTags(keep func(string) bool) []tagOut {
	out := kindTags(w, w.k.upstream, "upstreams", keep, []tagOut{})
	for i := range w.eff.Upstreams {
		u := &w.eff.Upstreams[i]
		for _, t := range w.targets(u, w.k.upstream.metaOf(w, u.Name), runtime{}) {
			if !t.owned {
				continue
			}
			for _, tag := range t.Tags {
				if keep(tag) {
					out = append(out, tagOut{EntityName: "targets", EntityID: t.ID, Tag: tag})
				}
			}
		}
	}
	out = kindTags(w, w.k.service, "services", keep, out)
	out = kindTags(w, w.k.route, "routes", keep, out)
	out = kindTags(w, w.k.plugin, "plugins", keep, out)
	out = kindTags(w, w.k.consumer, "consumers", keep, out)
	out = kindTags(w, w.k.keyAuth, "keyauth_credentials", keep, out)
	out = kindTags(w, w.k.cert, "certificates", keep, out)
	return kindTags(w, w.k.sni, "snis", keep, out)
}

// listTags is GET /tags: every tag of every entity.
func (a *api) listTags(r *http.Request) (int, any, error) {
	p, err := parsePage(r, untagged)
	if err != nil {
		return 0, nil, err
	}
	items := a.view().allTags(func(string) bool { return true })
	return http.StatusOK, paginate(r, p, items, tagKey), nil
}

// listTag is GET /tags/{tag}: the entities carrying one tag.
func (a *api) listTag(r *http.Request) (int, any, error) {
	tag := r.PathValue("tag")
	if err := config.CheckTag(tag); err != nil {
		return 0, nil, invalidOption("tag", "%v", err)
	}
	p, err := parsePage(r, untagged)
	if err != nil {
		return 0, nil, err
	}
	items := a.view().allTags(func(t string) bool { return t == tag })
	return http.StatusOK, paginate(r, p, items, tagKey), nil
}
