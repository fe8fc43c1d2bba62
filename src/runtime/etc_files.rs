//! The files every container of a pod gets bind-mounted at /etc/hosts,
//! /etc/hostname and /etc/resolv.conf, as kubelet writes them.

/// The name under which a pod reaches the host's loopback (podman's).
pub const HOST_NAME: &str = "host.containers.internal";

/// `/etc/hosts`: localhost, the pod's own name (with kubelet's FQDN first,
/// `HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN`, when the pod has a
/// subdomain: `domain` is `SUBDOMAIN.NAMESPACE.svc.DOMAIN`), the host
/// (podman's `host.containers.internal`, when pods have an outbound route),
/// then `hostAliases`.
pub fn hosts(
    hostname: &str,
    domain: Option<&str>,
    pod_ip: Option<&str>,
    host_gateway: Option<&str>,
    aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file (written by minipod).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    // Without a pod IP the name still has to resolve to this pod.
    let ip = pod_ip.unwrap_or("127.0.1.1");
    match domain {
        Some(domain) => s.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
        None => s.push_str(&format!("{ip}\t{hostname}\n")),
    }
    if let Some(gateway) = host_gateway {
        s.push_str(&format!("{gateway}\t{HOST_NAME}\n"));
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// What `dnsConfig` asks for, and whether it replaces the host's settings
/// (`dnsPolicy: None`) or adds to them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dns {
    pub replace_host: bool,
    /// `dnsPolicy: ClusterFirst`: minipod's DNS server is the only
    /// nameserver, Kubernetes' search path comes before the host's, and
    /// `ndots:5` replaces the host's options (kubelet's).
    pub cluster: Option<ClusterDns>,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// Where a ClusterFirst pod's names are answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDns {
    /// The DNS server: the bridge's gateway address.
    pub server: String,
    pub namespace: String,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// Where a pod's resolv.conf starts from, once `dnsPolicy` and
/// `hostNetwork` are taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsSource {
    /// minipod's DNS server and Kubernetes' search path.
    Cluster,
    /// The host's resolv.conf.
    Host,
    /// `dnsConfig` alone.
    Empty,
}

/// kubelet's `getPodDNSType`: ClusterFirst on the host's network is
/// Default. ClusterFirstWithHostNet on the host's network would need the
/// cluster's DNS server reachable from the host, and the host cannot reach
/// the bridge in the holder's network namespace: the host's, with a
/// warning. Without a DNS server (`cluster: false`, a holder started by an
/// older minipod) the cluster policies use the host's, with a warning.
pub fn dns_source(
    policy: crate::spec::DnsBase,
    host_network: bool,
    cluster: bool,
) -> (DnsSource, Option<&'static str>) {
    use crate::spec::DnsBase;
    match (policy, host_network) {
        (DnsBase::Empty, _) => (DnsSource::Empty, None),
        (DnsBase::Host, _) | (DnsBase::Cluster, true) => (DnsSource::Host, None),
        (DnsBase::ClusterWithHostNet, true) => (
            DnsSource::Host,
            Some(
                "dnsPolicy ClusterFirstWithHostNet: the host's network cannot reach minipod's DNS \
                 server (it serves the bridge in the holder's network namespace), so this \
                 hostNetwork pod uses the host's resolv.conf and cannot resolve Service names",
            ),
        ),
        (DnsBase::Cluster | DnsBase::ClusterWithHostNet, false) if !cluster => (
            DnsSource::Host,
            Some(
                "the running holder has no DNS server (an older minipod started it), so this pod \
                 uses the host's resolv.conf and cannot resolve Service names; `minipod system \
                 reset` (which stops every pod) starts a new one",
            ),
        ),
        (DnsBase::Cluster | DnsBase::ClusterWithHostNet, false) => (DnsSource::Cluster, None),
    }
}

/// kubelet's `generateSearchesForDNSClusterFirst`: the pod's namespace,
/// the cluster's Services, the cluster domain, then the host's.
fn cluster_searches(cluster: &ClusterDns, host: Vec<String>) -> Vec<String> {
    let mut out = vec![
        format!("{}.svc.{}", cluster.namespace, cluster.domain),
        format!("svc.{}", cluster.domain),
        cluster.domain.clone(),
    ];
    add_unique(&mut out, &host);
    out
}

fn add_unique(list: &mut Vec<String>, extra: &[String]) {
    for e in extra {
        if !list.contains(e) {
            list.push(e.clone());
        }
    }
}

/// `/etc/resolv.conf` from the host's, merged with `dns` as kubelet merges
/// them (nameservers and searches appended without duplicates, options
/// overriding by name).
pub fn resolv_conf(host: &str, dns: &Dns) -> String {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::<String>::new());
    if !dns.replace_host {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => searches.extend(words.map(str::to_string)),
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
    }
    if let Some(cluster) = &dns.cluster {
        servers = vec![cluster.server.clone()];
        searches = cluster_searches(cluster, searches);
        options = vec!["ndots:5".to_string()];
    }
    add_unique(&mut servers, &dns.nameservers);
    add_unique(&mut searches, &dns.searches);
    for opt in &dns.options {
        let name = opt.split(':').next().unwrap_or(opt);
        options.retain(|o| o.split(':').next() != Some(name));
        options.push(opt.clone());
    }
    // kubelet's limits (formDNSConfigFitsLimits): 3 nameservers, 32 searches.
    servers.truncate(3);
    searches.truncate(32);
    let mut s = String::new();
    if !searches.is_empty() {
        s.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in servers {
        s.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_localhost_name_and_aliases() {
        let h = hosts(
            "web",
            None,
            None,
            None,
            &[("10.1.2.3".into(), vec!["db".into(), "db.local".into()])],
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.0.1.1\tweb\n"));
        assert!(h.ends_with("10.1.2.3\tdb\tdb.local\n"));
        assert!(hosts("web", None, Some("10.88.0.5"), None, &[]).contains("10.88.0.5\tweb\n"));
        assert!(
            hosts("web", None, Some("10.88.0.5"), Some("192.0.2.1"), &[])
                .contains("192.0.2.1\thost.containers.internal\n")
        );
        // A StatefulSet's pod under its headless Service: the FQDN first.
        assert!(
            hosts(
                "db-0",
                Some("db.default.svc.cluster.local"),
                Some("10.88.0.7"),
                None,
                &[]
            )
            .contains("10.88.0.7\tdb-0.db.default.svc.cluster.local\tdb-0\n")
        );
    }

    #[test]
    fn resolv_conf_merges_like_kubelet() {
        let host = "# comment\nnameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n";
        let dns = Dns {
            replace_host: false,
            cluster: None,
            nameservers: vec!["1.1.1.1".into(), "8.8.8.8".into()],
            searches: vec!["svc.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(host, &dns),
            "search example.com svc.local\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions edns0 ndots:5\n"
        );
        let only = Dns {
            replace_host: true,
            nameservers: vec!["9.9.9.9".into()],
            ..Dns::default()
        };
        assert_eq!(resolv_conf(host, &only), "nameserver 9.9.9.9\n");
        assert_eq!(
            resolv_conf(host, &Dns::default()),
            "search example.com\nnameserver 1.1.1.1\noptions ndots:1 edns0\n"
        );
    }

    fn cluster() -> Option<ClusterDns> {
        Some(ClusterDns {
            server: "10.88.0.1".into(),
            namespace: "shop".into(),
            domain: "cluster.local".into(),
        })
    }

    #[test]
    fn cluster_first_is_our_server_the_search_path_and_ndots_5() {
        let host =
            "nameserver 127.0.0.53\nsearch example.com cluster.local\noptions edns0 trust-ad\n";
        let dns = Dns {
            cluster: cluster(),
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf(host, &dns),
            "search shop.svc.cluster.local svc.cluster.local cluster.local example.com\n\
             nameserver 10.88.0.1\n\
             options ndots:5\n"
        );
        // dnsConfig merges on top, as with Default.
        let dns = Dns {
            cluster: cluster(),
            nameservers: vec!["9.9.9.9".into()],
            searches: vec!["extra.test".into()],
            options: vec!["ndots:2".into(), "edns0".into()],
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf(host, &dns),
            "search shop.svc.cluster.local svc.cluster.local cluster.local example.com extra.test\n\
             nameserver 10.88.0.1\nnameserver 9.9.9.9\n\
             options ndots:2 edns0\n"
        );
    }

    #[test]
    fn the_policy_and_host_network_decide_the_source_as_kubelet() {
        use crate::spec::DnsBase::*;
        let source = |p, host_net, cluster| dns_source(p, host_net, cluster).0;
        assert_eq!(source(Cluster, false, true), DnsSource::Cluster);
        assert_eq!(source(ClusterWithHostNet, false, true), DnsSource::Cluster);
        assert_eq!(source(Cluster, true, true), DnsSource::Host);
        assert_eq!(dns_source(Cluster, true, true).1, None);
        assert_eq!(source(Host, false, true), DnsSource::Host);
        assert_eq!(source(Empty, true, true), DnsSource::Empty);
        let (with_host_net, warning) = dns_source(ClusterWithHostNet, true, true);
        assert_eq!(with_host_net, DnsSource::Host);
        assert!(warning.unwrap().contains("ClusterFirstWithHostNet"));
        let (old_holder, warning) = dns_source(Cluster, false, false);
        assert_eq!(old_holder, DnsSource::Host);
        assert!(warning.unwrap().contains("system reset"));
    }
}
