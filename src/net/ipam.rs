//! IPv4 address management for the pod bridge: a JSON lease file, changed
//! only under a file lock and replaced atomically, so concurrent minipod
//! commands never hand out one address twice.
//!
//! Each lease names its owner process (the pod's supervisor, or whatever the
//! runtime picks) with the kernel start time of that pid; a lease whose owner
//! is gone is reclaimed by the next allocation, so a killed supervisor does
//! not leak its address.

// Some queries (links, routes, leases) serve the tests and diagnostics only.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::sys::fs::{atomic_write, pid_alive};
use crate::sys::lock::{FileLock, Mode};

/// podman's default network.
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";

const LEASES_FILE: &str = "ipam.json";
const LOCK_FILE: &str = "ipam.lock";

/// An IPv4 address with a prefix length: `10.88.0.1/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net> {
        if prefix > 32 {
            bail!("prefix length {prefix} is longer than 32");
        }
        Ok(Ipv4Net { addr, prefix })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.netmask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.netmask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.netmask() == u32::from(self.network())
    }
}

impl FromStr for Ipv4Net {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Ipv4Net> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("{s:?}: expected ADDRESS/PREFIX, like 10.88.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("{s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .with_context(|| format!("{s:?}: {prefix:?} is not a prefix length"))?;
        Ipv4Net::new(addr, prefix).with_context(|| format!("{s:?}"))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The pods' subnet: its network address, prefix and gateway (the bridge's
/// address, the first host address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    net: Ipv4Net,
}

impl Subnet {
    /// `10.88.0.0/16`: host bits must be zero, and the prefix at most /30
    /// (a gateway and at least one pod).
    pub fn parse(cidr: &str) -> Result<Subnet> {
        let net: Ipv4Net = cidr.parse()?;
        if net.addr != net.network() {
            bail!(
                "subnet {cidr} has host bits set; did you mean {}/{}?",
                net.network(),
                net.prefix
            );
        }
        if net.prefix > 30 {
            bail!(
                "subnet {cidr} is too small: it needs room for a gateway and a pod (at most /30)"
            );
        }
        Ok(Subnet { net })
    }

    pub fn network(&self) -> Ipv4Net {
        self.net
    }

    pub fn prefix(&self) -> u8 {
        self.net.prefix
    }

    /// The first host address (`.1`): the bridge's address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()) + 1)
    }

    /// The gateway with the subnet's prefix, as the bridge carries it.
    pub fn gateway_net(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.gateway(),
            prefix: self.net.prefix,
        }
    }

    /// The lowest address after the gateway that is not in `used`, never
    /// the broadcast address.
    pub fn first_free(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.net.broadcast()) - 1;
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }
}

impl Default for Subnet {
    fn default() -> Subnet {
        Subnet::parse(DEFAULT_SUBNET).expect("the default subnet parses")
    }
}

/// One pod's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// The process whose life the lease lasts.
    pub pid: i32,
    /// Kernel start time of `pid` (field 22 of /proc/PID/stat), so that a
    /// reused pid does not keep a dead pod's lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    subnet: String,
    /// Pod name ↦ lease.
    leases: BTreeMap<String, Lease>,
}

/// The lease file of one subnet in a directory (the run root's `net/`).
pub struct Ipam {
    dir: PathBuf,
    subnet: Subnet,
}

impl Ipam {
    pub fn new(dir: &Path, subnet: Subnet) -> Ipam {
        Ipam {
            dir: dir.to_path_buf(),
            subnet,
        }
    }

    /// Leases an address to `pod`, owned by process `owner_pid`. A pod that
    /// holds a lease already keeps its address (the pod lock makes pod names
    /// unique among running pods, so that lease is a stale one of the same
    /// pod). Leases of dead owners are reclaimed first.
    pub fn allocate(&self, pod: &str, owner_pid: i32) -> Result<Ipv4Addr> {
        let start_time = start_time(owner_pid);
        self.update(|file| assign(file, &self.subnet, pod, owner_pid, start_time, owner_alive))
            .with_context(|| format!("allocating an address for pod {pod:?}"))
    }

    /// Drops the pod's lease. Returns whether it had one.
    pub fn release(&self, pod: &str) -> Result<bool> {
        self.update(|file| Ok(file.leases.remove(pod).is_some()))
            .with_context(|| format!("releasing the address of pod {pod:?}"))
    }

    /// The current leases (read under a shared lock).
    pub fn leases(&self) -> Result<BTreeMap<String, Lease>> {
        let _lock = FileLock::acquire(&self.dir.join(LOCK_FILE), Mode::Shared)?;
        Ok(self.read()?.leases)
    }

    fn read(&self) -> Result<LeaseFile> {
        let path = self.dir.join(LEASES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LeaseFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn update<T>(&self, change: impl FnOnce(&mut LeaseFile) -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.dir.join(LOCK_FILE), Mode::Exclusive)?;
        let mut file = self.read()?;
        let subnet = self.subnet.network().to_string();
        if file.subnet != subnet {
            reclaim(&mut file.leases, owner_alive);
            if !file.leases.is_empty() {
                bail!(
                    "the address leases in {} are for subnet {}, not {subnet}, and pods still use them",
                    self.dir.display(),
                    file.subnet
                );
            }
            file.subnet = subnet;
        }
        let out = change(&mut file)?;
        let json = serde_json::to_vec_pretty(&file)?;
        atomic_write(&self.dir.join(LEASES_FILE), &json)?;
        Ok(out)
    }
}

/// Drops `pod`'s lease in the lease file of `dir`, whatever its subnet:
/// for `rm` of a pod whose supervisor died (under the pod's lock, so no
/// live process can own that lease). Returns whether there was one.
pub fn release_stale(dir: &Path, pod: &str) -> Result<bool> {
    let path = dir.join(LEASES_FILE);
    if !path.exists() {
        return Ok(false);
    }
    let _lock = FileLock::acquire(&dir.join(LOCK_FILE), Mode::Exclusive)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut file: LeaseFile =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if file.leases.remove(pod).is_none() {
        return Ok(false);
    }
    atomic_write(&path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(true)
}

/// The allocation itself, on the file's contents: reclaim, keep the pod's
/// own lease, or take the first free address.
fn assign(
    file: &mut LeaseFile,
    subnet: &Subnet,
    pod: &str,
    pid: i32,
    start_time: Option<u64>,
    alive: impl Fn(&Lease) -> bool,
) -> Result<Ipv4Addr> {
    reclaim(&mut file.leases, alive);
    let keep = file
        .leases
        .get(pod)
        .map(|l| l.ip)
        .filter(|ip| subnet.network().contains(*ip));
    let ip = match keep {
        Some(ip) => ip,
        None => {
            let used: HashSet<Ipv4Addr> = file
                .leases
                .iter()
                .filter(|(name, _)| name.as_str() != pod)
                .map(|(_, l)| l.ip)
                .collect();
            subnet.first_free(&used).ok_or_else(|| {
                anyhow!(
                    "subnet {} is full ({} pods hold addresses)",
                    subnet.network(),
                    used.len()
                )
            })?
        }
    };
    file.leases.insert(
        pod.to_string(),
        Lease {
            ip,
            pid,
            start_time,
        },
    );
    Ok(ip)
}

/// Drops the leases whose owner is dead; returns their pod names.
fn reclaim(leases: &mut BTreeMap<String, Lease>, alive: impl Fn(&Lease) -> bool) -> Vec<String> {
    let dead: Vec<String> = leases
        .iter()
        .filter(|(_, l)| !alive(l))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &dead {
        leases.remove(name);
    }
    dead
}

fn owner_alive(lease: &Lease) -> bool {
    // With a recorded start time, reading the owner's is the whole check
    // (none for a dead or zombie pid): no kill(0) beside it.
    match lease.start_time {
        Some(recorded) => start_time(lease.pid) == Some(recorded),
        None => pid_alive(lease.pid),
    }
}

use crate::sys::proc::live_start_time as start_time;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lease(s: &str, pid: i32) -> Lease {
        Lease {
            ip: ip(s),
            pid,
            start_time: None,
        }
    }

    #[test]
    fn subnets_parse_and_name_their_parts() {
        let s = Subnet::default();
        assert_eq!(s.network().to_string(), "10.88.0.0/16");
        assert_eq!(s.gateway(), ip("10.88.0.1"));
        assert_eq!(s.gateway_net().to_string(), "10.88.0.1/16");
        assert_eq!(s.network().broadcast(), ip("10.88.255.255"));
        assert!(s.network().contains(ip("10.88.3.4")));
        assert!(!s.network().contains(ip("10.89.0.1")));

        let err = Subnet::parse("10.88.0.5/16").unwrap_err().to_string();
        assert!(err.contains("did you mean 10.88.0.0/16"), "{err}");
        assert!(Subnet::parse("10.88.0.0/31").is_err());
        assert!(Subnet::parse("10.88.0.0/33").is_err());
        assert!(Subnet::parse("10.88.0.0").is_err());
        assert!(Subnet::parse("10.88.0/16").is_err());
        assert!(Subnet::parse("0.0.0.0/0").is_ok());
        assert_eq!(
            "192.168.7.9/24".parse::<Ipv4Net>().unwrap().network(),
            ip("192.168.7.0")
        );
    }

    #[test]
    fn first_free_skips_network_gateway_and_broadcast() {
        let s = Subnet::parse("10.0.0.0/30").unwrap();
        let mut used = HashSet::new();
        assert_eq!(s.first_free(&used), Some(ip("10.0.0.2")));
        used.insert(ip("10.0.0.2"));
        // .3 is the broadcast address.
        assert_eq!(s.first_free(&used), None);

        let s = Subnet::default();
        let used: HashSet<_> = [ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.0.5")].into();
        assert_eq!(s.first_free(&used), Some(ip("10.88.0.4")));
    }

    #[test]
    fn assign_reclaims_dead_owners_and_keeps_a_pods_own_lease() {
        let s = Subnet::default();
        let mut file = LeaseFile::default();
        file.leases.insert("a".into(), lease("10.88.0.2", 10));
        file.leases.insert("dead".into(), lease("10.88.0.3", 11));
        file.leases.insert("c".into(), lease("10.88.0.4", 12));
        let alive = |l: &Lease| l.pid != 11;

        // The dead owner's .3 is the lowest free address again.
        let got = assign(&mut file, &s, "new", 20, Some(7), alive).unwrap();
        assert_eq!(got, ip("10.88.0.3"));
        assert!(!file.leases.contains_key("dead"));
        assert_eq!(file.leases["new"].start_time, Some(7));

        // A pod that has a lease keeps its address, with the new owner.
        let got = assign(&mut file, &s, "c", 30, None, alive).unwrap();
        assert_eq!(got, ip("10.88.0.4"));
        assert_eq!(file.leases["c"].pid, 30);

        let next = assign(&mut file, &s, "d", 31, None, alive).unwrap();
        assert_eq!(next, ip("10.88.0.5"));
    }

    #[test]
    fn a_full_subnet_is_an_error() {
        let s = Subnet::parse("10.0.0.0/30").unwrap();
        let mut file = LeaseFile::default();
        assign(&mut file, &s, "a", 1, None, |_| true).unwrap();
        let err = assign(&mut file, &s, "b", 1, None, |_| true).unwrap_err();
        assert!(err.to_string().contains("is full"), "{err}");
    }

    #[test]
    fn reclaim_names_what_it_dropped() {
        let mut leases = BTreeMap::new();
        leases.insert("x".to_string(), lease("10.88.0.2", 1));
        leases.insert("y".to_string(), lease("10.88.0.3", 2));
        assert_eq!(reclaim(&mut leases, |l| l.pid == 1), vec!["y".to_string()]);
        assert_eq!(leases.len(), 1);
    }

    #[test]
    fn lease_file_allocate_release_and_reclaim_a_dead_pid() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), Subnet::default());
        let me = std::process::id() as i32;
        assert_eq!(ipam.allocate("one", me).unwrap(), ip("10.88.0.2"));
        assert_eq!(ipam.allocate("two", me).unwrap(), ip("10.88.0.3"));
        assert_eq!(ipam.leases().unwrap()["one"].start_time, start_time(me));

        // A lease whose owner has exited...
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(ipam.allocate("three", dead).unwrap(), ip("10.88.0.4"));
        // ...reclaimed by the next allocation, which gets the same address.
        assert_eq!(ipam.allocate("four", me).unwrap(), ip("10.88.0.4"));
        assert!(!ipam.leases().unwrap().contains_key("three"));

        assert!(ipam.release("one").unwrap());
        assert!(!ipam.release("one").unwrap());
        assert_eq!(ipam.allocate("five", me).unwrap(), ip("10.88.0.2"));
        let names: Vec<String> = ipam.leases().unwrap().into_keys().collect();
        assert_eq!(names, ["five", "four", "two"]);
    }

    #[test]
    fn a_pid_reused_by_another_process_does_not_keep_the_lease() {
        let me = std::process::id() as i32;
        let mut l = lease("10.88.0.2", me);
        l.start_time = start_time(me);
        assert!(owner_alive(&l));
        l.start_time = l.start_time.map(|t| t + 1);
        assert!(!owner_alive(&l));
    }

    #[test]
    fn a_changed_subnet_is_refused_while_pods_use_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        Ipam::new(dir.path(), Subnet::default())
            .allocate("a", me)
            .unwrap();
        let other = Ipam::new(dir.path(), Subnet::parse("10.99.0.0/24").unwrap());
        let err = format!("{:#}", other.allocate("b", me).unwrap_err());
        assert!(err.contains("are for subnet 10.88.0.0/16"), "{err}");
    }

    #[test]
    fn fifty_concurrent_allocations_get_fifty_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let dir = dir.path().to_path_buf();
                let barrier = barrier.clone();
                // Each allocation opens the lock file anew: flock works per
                // open file description, so threads exclude each other.
                std::thread::spawn(move || {
                    barrier.wait();
                    Ipam::new(&dir, Subnet::default())
                        .allocate(&format!("pod-{i}"), me)
                        .unwrap()
                })
            })
            .collect();
        let ips: HashSet<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(ips.len(), 50);
        let leases = Ipam::new(dir.path(), Subnet::default()).leases().unwrap();
        assert_eq!(leases.len(), 50);
        // The lowest 50 addresses after the gateway, none twice.
        let expected: HashSet<Ipv4Addr> = (2..52).map(|n| Ipv4Addr::new(10, 88, 0, n)).collect();
        assert_eq!(ips, expected);
    }
}
