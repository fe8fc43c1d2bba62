//! `run --publish` and `run -P`: the hostPorts a pod publishes, as its
//! YAML declares them and as the command line overrides them (podman's
//! `kube play --publish`). Pure but for `check_local`.

use std::net::IpAddr;

use anyhow::{Result, bail};

use super::portfwd::{HostPort, Protocol};

/// The form `--publish` takes, for its errors.
const FORM: &str = "[[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp], e.g. 8080:80, \
                    127.0.0.1:8080:80/udp, or 80 for a free host port";

/// One `--publish` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The flag's value as given, for messages.
    pub text: String,
    pub host_ip: Option<IpAddr>,
    /// None: a free port, chosen when it is bound.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// What `run`'s flags change in a pod's hostPorts.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub publish: Vec<Publish>,
    /// `-P`: every hostPort the YAML declares gets a free port.
    pub all_random: bool,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && !self.all_random
    }
}

/// Parses `[[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/PROTO]` (podman's form;
/// an IPv6 HOSTIP in brackets).
pub fn parse(text: &str) -> Result<Publish> {
    let fail =
        |why: &str| -> Result<Publish> { bail!("--publish {text:?}: {why}; the form is {FORM}") };
    let (rest, protocol) = match text.rsplit_once('/') {
        None => (text, Protocol::Tcp),
        Some((r, p)) => match p.to_ascii_lowercase().as_str() {
            "tcp" => (r, Protocol::Tcp),
            "udp" => (r, Protocol::Udp),
            "sctp" => return fail("SCTP is not supported by minipod; use tcp or udp"),
            _ => return fail(&format!("unknown protocol {p:?}")),
        },
    };
    // HOSTIP first: an IPv6 one holds colons of its own.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let Some((ip, r)) = r.split_once("]:") else {
            return fail("an IPv6 HOSTIP goes in brackets followed by :HOSTPORT:");
        };
        (Some(ip), r)
    } else if rest.matches(':').count() == 2 {
        let (ip, r) = rest.split_once(':').expect("two colons");
        (Some(ip), r)
    } else {
        (None, rest)
    };
    let host_ip = match host_ip {
        None | Some("") => None,
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => return fail(&format!("{ip:?} is not an IP address")),
        },
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host, container) = match parts.as_slice() {
        [c] if host_ip.is_none() => (None, *c),
        [h, c] => (Some(*h), *c),
        _ => return fail("too many colons"),
    };
    let port = |s: &str, what: &str, zero: bool| -> Result<u16> {
        if s.contains('-') {
            bail!("--publish {text:?}: port ranges are not supported; give one {what}");
        }
        match s.parse::<u16>() {
            Ok(0) if !zero => {
                bail!("--publish {text:?}: {what} 0 is not a port; the form is {FORM}")
            }
            Ok(n) => Ok(n),
            Err(_) => bail!(
                "--publish {text:?}: {what} {s:?} is not a port (1-65535); the form is {FORM}"
            ),
        }
    };
    let container_port = port(container, "CONTAINERPORT", false)?;
    let host_port = match host {
        None | Some("") => None,
        // 0 is what bind(2) reads as "any free port".
        Some(h) => Some(port(h, "HOSTPORT", true)?).filter(|&p| p != 0),
    };
    Ok(Publish {
        text: text.to_string(),
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// A pod's hostPorts once the flags applied: a `--publish` of a container
/// port and protocol the YAML publishes replaces its hostPorts (podman:
/// the option takes precedence), else it is a new mapping on the pod; `-P`
/// gives each declared hostPort a free port (host port 0), while a
/// `--publish` with a HOSTPORT keeps it. Two mappings of one host address,
/// port and protocol are refused.
pub fn apply(declared: Vec<HostPort>, overrides: &Overrides) -> Result<Vec<HostPort>> {
    let mut out: Vec<HostPort> = declared
        .into_iter()
        .filter(|d| {
            !overrides
                .publish
                .iter()
                .any(|p| p.container_port == d.container_port && p.protocol == d.protocol)
        })
        .map(|mut d| {
            if overrides.all_random {
                d.host_port = 0;
            }
            d
        })
        .collect();
    for p in &overrides.publish {
        out.push(HostPort {
            asked_by: format!("--publish {}", p.text),
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            host_port: p.host_port.unwrap_or(0),
            container_port: p.container_port,
            protocol: p.protocol,
        });
    }
    for (i, a) in out.iter().enumerate() {
        if a.host_port == 0 {
            continue;
        }
        if let Some(b) = out[..i].iter().find(|b| {
            b.host_port == a.host_port && b.protocol == a.protocol && b.host_ip == a.host_ip
        }) {
            bail!(
                "{} and {} both publish host port {}/{}; give one of them another port (or \
                 -P for free ports)",
                b.asked_by,
                a.asked_by,
                a.host_port,
                a.protocol.name()
            );
        }
    }
    Ok(out)
}

/// Whether `ip` is an address of this machine (binding to it works).
pub fn check_local(p: &Publish) -> Result<()> {
    if let Some(ip) = p.host_ip
        && let Err(e) = std::net::UdpSocket::bind((ip, 0))
    {
        bail!(
            "--publish {:?}: {ip} is not an address of this machine ({e}); give one of its \
             addresses, or none for all",
            p.text
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ok(text: &str) -> (Option<IpAddr>, Option<u16>, u16, Protocol) {
        let p = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (p.host_ip, p.host_port, p.container_port, p.protocol)
    }

    #[test]
    fn parses_podman_forms() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(ok("8080:80"), (None, Some(8080), 80, Protocol::Tcp));
        assert_eq!(ok("8080:80/udp"), (None, Some(8080), 80, Protocol::Udp));
        assert_eq!(ok("8080:80/TCP"), (None, Some(8080), 80, Protocol::Tcp));
        assert_eq!(ok("127.0.0.1:8080:80"), (lo, Some(8080), 80, Protocol::Tcp));
        assert_eq!(ok("127.0.0.1::80"), (lo, None, 80, Protocol::Tcp));
        assert_eq!(ok("80"), (None, None, 80, Protocol::Tcp));
        assert_eq!(ok("0:80"), (None, None, 80, Protocol::Tcp));
        assert_eq!(ok(":80/udp"), (None, None, 80, Protocol::Udp));
        assert_eq!(
            ok("[::1]:8080:80"),
            (Some("::1".parse().unwrap()), Some(8080), 80, Protocol::Tcp)
        );
    }

    #[test]
    fn bad_forms_name_the_value_and_the_form() {
        for (text, why) in [
            ("", "CONTAINERPORT \"\" is not a port"),
            ("web", "CONTAINERPORT \"web\" is not a port"),
            ("8080:0", "CONTAINERPORT 0 is not a port"),
            ("8080:70000", "is not a port"),
            ("8080:80/icmp", "unknown protocol \"icmp\""),
            ("8080:80/sctp", "SCTP is not supported"),
            ("1.2.3:8080:80", "\"1.2.3\" is not an IP address"),
            ("8080-8090:80", "port ranges are not supported"),
            ("a:b:c:d", "too many colons"),
            ("[::1:8080:80", "IPv6 HOSTIP goes in brackets"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("--publish {text:?}")), "{err}");
            assert!(err.contains(why), "{text}: {err}");
            if !err.contains("ranges") {
                assert!(err.contains("CONTAINERPORT[/tcp|udp]"), "{err}");
            }
        }
    }

    fn declared(container_port: u16, host_port: u16, protocol: Protocol) -> HostPort {
        HostPort {
            asked_by: "container web".into(),
            host_ip: None,
            host_port,
            container_port,
            protocol,
        }
    }

    fn with(publish: &[&str], all_random: bool) -> Overrides {
        Overrides {
            publish: publish.iter().map(|p| parse(p).unwrap()).collect(),
            all_random,
        }
    }

    fn ports(v: &[HostPort]) -> Vec<(u16, u16, Protocol)> {
        v.iter()
            .map(|p| (p.host_port, p.container_port, p.protocol))
            .collect()
    }

    #[test]
    fn publish_overrides_or_adds() {
        let yaml = vec![
            declared(80, 18080, Protocol::Tcp),
            declared(53, 18053, Protocol::Udp),
        ];
        let out = apply(yaml.clone(), &with(&["19090:80", "19091:81"], false)).unwrap();
        assert_eq!(
            ports(&out),
            [
                (18053, 53, Protocol::Udp),
                (19090, 80, Protocol::Tcp),
                (19091, 81, Protocol::Tcp)
            ]
        );
        assert_eq!(out[1].asked_by, "--publish 19090:80");
        // Another protocol is another mapping.
        let out = apply(yaml, &with(&["19053:53"], false)).unwrap();
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn all_random_frees_declared_ports_only() {
        let yaml = vec![
            declared(80, 18080, Protocol::Tcp),
            declared(53, 18053, Protocol::Udp),
        ];
        let out = apply(yaml, &with(&["19053:53/udp", "81"], true)).unwrap();
        assert_eq!(
            ports(&out),
            [
                (0, 80, Protocol::Tcp),
                (19053, 53, Protocol::Udp),
                (0, 81, Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn one_host_port_one_mapping() {
        let yaml = vec![declared(80, 18080, Protocol::Tcp)];
        let err = apply(yaml.clone(), &with(&["18080:81"], false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("container web and --publish 18080:81"),
            "{err}"
        );
        // Free ports never clash; another host IP or protocol is another address.
        apply(yaml.clone(), &with(&["81", "82"], false)).unwrap();
        apply(yaml, &with(&["127.0.0.1:18080:81", "18080:81/udp"], false)).unwrap();
    }
}
