//! The files every container of a pod gets bind-mounted at /etc/hosts,
//! /etc/hostname and /etc/resolv.conf, as kubelet writes them.

/// The name under which a pod reaches the host's loopback (podman's).
pub const HOST_NAME: &str = "host.containers.internal";

/// `/etc/hosts`: localhost, the pod's own name, the host (podman's
/// `host.containers.internal`, when pods have an outbound route), then
/// `hostAliases`.
pub fn hosts(
    hostname: &str,
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
    s.push_str(&format!("{}\t{hostname}\n", pod_ip.unwrap_or("127.0.1.1")));
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
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
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
    let add_unique = |list: &mut Vec<String>, extra: &[String]| {
        for e in extra {
            if !list.contains(e) {
                list.push(e.clone());
            }
        }
    };
    add_unique(&mut servers, &dns.nameservers);
    add_unique(&mut searches, &dns.searches);
    for opt in &dns.options {
        let name = opt.split(':').next().unwrap_or(opt);
        options.retain(|o| o.split(':').next() != Some(name));
        options.push(opt.clone());
    }
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
            &[("10.1.2.3".into(), vec!["db".into(), "db.local".into()])],
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.0.1.1\tweb\n"));
        assert!(h.ends_with("10.1.2.3\tdb\tdb.local\n"));
        assert!(hosts("web", Some("10.88.0.5"), None, &[]).contains("10.88.0.5\tweb\n"));
        assert!(
            hosts("web", Some("10.88.0.5"), Some("192.0.2.1"), &[])
                .contains("192.0.2.1\thost.containers.internal\n")
        );
    }

    #[test]
    fn resolv_conf_merges_like_kubelet() {
        let host = "# comment\nnameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n";
        let dns = Dns {
            replace_host: false,
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
}
