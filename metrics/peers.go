package metrics

import "github.com/prometheus/client_golang/prometheus"

// peerCollector reads the federated peers at scrape time: a peer added
// or removed by the operator appears or goes with the next scrape, with
// no series left behind.
type peerCollector struct {
	peers                               func() []Peer
	approved, share, linkUp, references *prometheus.Desc
}

func newPeerCollector(peers func() []Peer) *peerCollector {
	labels := []string{"peer", "domain"}
	return &peerCollector{
		peers: peers,
		approved: prometheus.NewDesc("mfa_federation_peer_approved",
			"1 when this broker's operator approved the peer.", labels, nil),
		share: prometheus.NewDesc("mfa_federation_peer_sharing",
			"1 when this broker shares its identity references with the peer.", labels, nil),
		linkUp: prometheus.NewDesc("mfa_federation_peer_link_up",
			"1 while the link with an approved peer is up: both operators approved it and it answers.", labels, nil),
		references: prometheus.NewDesc("mfa_federation_peer_references",
			"Identity references the peer shares with this broker.", labels, nil),
	}
}

func (c *peerCollector) names() []string {
	return []string{"mfa_federation_peer_approved", "mfa_federation_peer_sharing", "mfa_federation_peer_link_up", "mfa_federation_peer_references"}
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.approved
	ch <- c.share
	ch <- c.linkUp
	ch <- c.references
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.peers() {
		ch <- prometheus.MustNewConstMetric(c.approved, prometheus.GaugeValue, boolFloat(p.Approved), p.ID, p.Domain)
		ch <- prometheus.MustNewConstMetric(c.share, prometheus.GaugeValue, boolFloat(p.Share), p.ID, p.Domain)
		ch <- prometheus.MustNewConstMetric(c.linkUp, prometheus.GaugeValue, boolFloat(p.LinkUp), p.ID, p.Domain)
		ch <- prometheus.MustNewConstMetric(c.references, prometheus.GaugeValue, float64(p.References), p.ID, p.Domain)
	}
}
