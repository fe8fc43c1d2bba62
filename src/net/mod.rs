//! The pod network: a bridge `minipod0` in the holder's uplink netns, one
//! veth pair per pod (peer `eth0` created directly in the pod's netns) and
//! IPv4 addresses from a lease file (docs/ARCHITECTURE.md).
//!
//! - `netlink`: a small synchronous rtnetlink socket;
//! - `ipam`: the lease file (allocate, release, reclaim dead owners);
//! - `setup`: bridge, attach and detach, as the runtime calls them;
//! - `pod_network`: one pod's lease, hostPorts and veth name, released with it;
//! - `portfwd`: hostPort listeners forwarding into the pod;
//! - `publish`: `run --publish` and `-P` applied to a pod's hostPorts;
//! - `pasta`: outbound connectivity through one pasta per holder, when it can run;
//! - `nftables`: the masquerade rule that puts pod traffic onto pasta's tap;
//! - `service_table`: every Service with its virtual IP and ready pods (`services.json`);
//! - `services`: the pure decisions behind it (virtual IPs, endpoints, what to forward);
//! - `dns`: the DNS server the holder runs for the pods (Service names, the rest forwarded).

pub mod dns;
pub mod ipam;
pub mod netlink;
pub mod nftables;
pub mod node_ports;
pub mod pasta;
pub mod pod_network;
pub mod portfwd;
pub mod publish;
pub mod service_table;
pub mod services;
pub mod setup;
