//! The one nf_tables rule the uplink netns needs, written over a
//! NETLINK_NETFILTER socket: masquerade what leaves through pasta's tap.
//!
//! Every pod reaches the outside through the holder's uplink netns, where
//! one pasta process carries the traffic out through the host's sockets.
//! pasta expects a single guest address behind its tap, so pod traffic is
//! masqueraded to the uplink's own address on its way out:
//!
//! ```text
//! table ip minipod {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat;
//!         oifname "pasta0" masquerade
//!     }
//! }
//! ```
//!
//! The messages are what `nft` sends for that ruleset (one batch: table,
//! chain, rule), encoded by hand: the format is small and stable (uapi
//! `linux/netfilter/nf_tables.h`), and no maintained crate writes it without
//! libnftnl.

use std::io;

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NFPROTO_IPV4: u8 = 2;
const NF_INET_POST_ROUTING: u32 = 4;
/// `priority srcnat`.
const NF_IP_PRI_NAT_SRC: i32 = 100;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_OIFNAME: u32 = 7;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const IFNAMSIZ: usize = 16;

const TABLE: &str = "minipod";
const CHAIN: &str = "postrouting";

/// Installs the masquerade rule for traffic leaving through `out_ifname`,
/// in the calling thread's netns (which must be ours: CAP_NET_ADMIN).
pub fn masquerade_out_of(out_ifname: &str) -> Result<()> {
    let what = || format!("adding the nftables rule `oifname {out_ifname:?} masquerade`");
    let batch = masquerade_batch(out_ifname);
    send_batch(&batch).with_context(what)
}

/// Sends one batch on a new socket (in the calling thread's netns) and
/// waits for every acknowledgement; the first error the kernel reports
/// fails it (and the kernel applied none of it).
fn send_batch(batch: &Batch) -> Result<()> {
    let socket = Socket::new(NETLINK_NETFILTER)
        .and_then(|mut s| s.bind(&SocketAddr::new(0, 0)).map(|()| s))
        .context("opening a netfilter netlink socket")?;
    socket.send(&batch.bytes, 0)?;
    // One acknowledgement per message that asked for one.
    let mut acked = 0;
    let mut buf = vec![0u8; 65536];
    while acked < batch.acks {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        for (kind, payload) in messages(&buf[..n]) {
            if kind != NLMSG_ERROR || payload.len() < 4 {
                continue;
            }
            let code = i32::from_ne_bytes(payload[..4].try_into().expect("4 bytes"));
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code).into());
            }
            acked += 1;
        }
        if n == 0 {
            bail!("netlink closed the socket");
        }
    }
    Ok(())
}

struct Batch {
    bytes: Vec<u8>,
    /// How many messages asked for an acknowledgement.
    acks: usize,
}

fn masquerade_batch(out_ifname: &str) -> Batch {
    let mut b = Batch {
        bytes: Vec::new(),
        acks: 0,
    };
    let mut seq = 0;
    let mut push = |b: &mut Batch, kind: u16, family: u8, res_id: u16, attrs: Vec<u8>| {
        let batch_marker = kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END;
        let mut flags = NLM_F_REQUEST;
        if !batch_marker {
            flags |= NLM_F_ACK | NLM_F_CREATE;
            b.acks += 1;
        }
        seq += 1;
        message(&mut b.bytes, kind, flags, seq, family, res_id, &attrs);
    };
    let nft = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
    push(
        &mut b,
        NFNL_MSG_BATCH_BEGIN,
        0,
        NFNL_SUBSYS_NFTABLES,
        Vec::new(),
    );

    let mut table = Vec::new();
    attr_str(&mut table, NFTA_TABLE_NAME, TABLE);
    push(&mut b, nft(NFT_MSG_NEWTABLE), NFPROTO_IPV4, 0, table);

    let mut chain = Vec::new();
    attr_str(&mut chain, NFTA_CHAIN_TABLE, TABLE);
    attr_str(&mut chain, NFTA_CHAIN_NAME, CHAIN);
    let mut hook = Vec::new();
    attr(
        &mut hook,
        NFTA_HOOK_HOOKNUM,
        &NF_INET_POST_ROUTING.to_be_bytes(),
    );
    attr(
        &mut hook,
        NFTA_HOOK_PRIORITY,
        &NF_IP_PRI_NAT_SRC.to_be_bytes(),
    );
    nested(&mut chain, NFTA_CHAIN_HOOK, &hook);
    attr_str(&mut chain, NFTA_CHAIN_TYPE, "nat");
    push(&mut b, nft(NFT_MSG_NEWCHAIN), NFPROTO_IPV4, 0, chain);

    let mut meta = Vec::new();
    attr(&mut meta, NFTA_META_DREG, &NFT_REG_1.to_be_bytes());
    attr(&mut meta, NFTA_META_KEY, &NFT_META_OIFNAME.to_be_bytes());
    // oifname compares the whole IFNAMSIZ buffer, NUL-padded.
    let mut name = [0u8; IFNAMSIZ];
    let len = out_ifname.len().min(IFNAMSIZ - 1);
    name[..len].copy_from_slice(&out_ifname.as_bytes()[..len]);
    let mut value = Vec::new();
    attr(&mut value, NFTA_DATA_VALUE, &name);
    let mut cmp = Vec::new();
    attr(&mut cmp, NFTA_CMP_SREG, &NFT_REG_1.to_be_bytes());
    attr(&mut cmp, NFTA_CMP_OP, &NFT_CMP_EQ.to_be_bytes());
    nested(&mut cmp, NFTA_CMP_DATA, &value);
    let mut exprs = Vec::new();
    for (name, data) in [("meta", meta), ("cmp", cmp), ("masq", Vec::new())] {
        let mut e = Vec::new();
        attr_str(&mut e, NFTA_EXPR_NAME, name);
        if !data.is_empty() {
            nested(&mut e, NFTA_EXPR_DATA, &data);
        }
        nested(&mut exprs, NFTA_LIST_ELEM, &e);
    }
    let mut rule = Vec::new();
    attr_str(&mut rule, NFTA_RULE_TABLE, TABLE);
    attr_str(&mut rule, NFTA_RULE_CHAIN, CHAIN);
    nested(&mut rule, NFTA_RULE_EXPRESSIONS, &exprs);
    push(&mut b, nft(NFT_MSG_NEWRULE), NFPROTO_IPV4, 0, rule);

    push(
        &mut b,
        NFNL_MSG_BATCH_END,
        0,
        NFNL_SUBSYS_NFTABLES,
        Vec::new(),
    );
    b
}

/// nlmsghdr + nfgenmsg (family, version 0, big-endian resource id) + attrs.
fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    pad(out);
}

fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    pad(out);
}

fn attr_str(out: &mut Vec<u8>, kind: u16, value: &str) {
    let mut v = value.as_bytes().to_vec();
    v.push(0);
    attr(out, kind, &v);
}

fn nested(out: &mut Vec<u8>, kind: u16, inner: &[u8]) {
    attr(out, kind | NLA_F_NESTED, inner);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The (type, payload) of each netlink message in a datagram.
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        out.push((kind, &buf[16..len]));
        buf = &buf[len.div_ceil(4) * 4..];
    }
    out
}

// ---- The Services' table ------------------------------------------------
//
// ```text
// table ip minipod-services {
//     chain prerouting { type nat hook prerouting priority dstnat;   FORWARDS }
//     chain output     { type nat hook output priority dstnat;       FORWARDS }
//     chain postrouting { type nat hook postrouting priority srcnat; ct status dnat masquerade }
//     chain forward    { type filter hook forward priority filter;   REJECTS }
//     chain reject-out { type filter hook output priority filter;    REJECTS }
// }
// FORWARDS, per Service port with N serving endpoints, rule i < N-1:
//     ip daddr VIP meta l4proto P th dport PORT numgen random mod (N-i) == 0 dnat to EP_i:T_i
// and the last one without numgen (each endpoint is picked with chance 1/N);
// REJECTS, per Service port without one:
//     ip daddr VIP meta l4proto P th dport PORT reject (ICMP port unreachable)
// ```
// The masquerade makes replies come back through the uplink netns (no
// br_netfilter for a rootless user) and lets a pod reach a Service that
// selects itself (hairpin).

const NFT_MSG_DELTABLE: u16 = 2;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
/// `priority dstnat`.
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_FILTER: i32 = 0;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CMP_NEQ: u32 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFT_NG_RANDOM: u32 = 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATUS: u32 = 2;
/// `IPS_DST_NAT`: the connection's destination was rewritten.
const IPS_DST_NAT: u32 = 1 << 5;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFT_REJECT_ICMP_UNREACH: u32 = 0;
const ICMP_PORT_UNREACH: u8 = 3;
const NFT_REG_2: u32 = 2;

/// The Services' table in the uplink netns.
pub const SERVICES_TABLE: &str = "minipod-services";

/// Replaces the Services' table (in the calling thread's netns) with the
/// rules for `forwards`, in one batch: the old rules stay until the new
/// ones are in, and a failure changes nothing. No forwards: the table goes.
pub fn replace_service_rules(forwards: &[crate::net::services::Forward]) -> Result<()> {
    send_batch(&services_batch(forwards)).context("replacing the Services' nftables rules")
}

/// Messages one batch is made of.
struct Builder {
    b: Batch,
    seq: u32,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder {
            b: Batch {
                bytes: Vec::new(),
                acks: 0,
            },
            seq: 0,
        };
        b.marker(NFNL_MSG_BATCH_BEGIN);
        b
    }

    fn marker(&mut self, kind: u16) {
        self.seq += 1;
        message(
            &mut self.b.bytes,
            kind,
            NLM_F_REQUEST,
            self.seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
    }

    fn push(&mut self, msg: u16, flags: u16, attrs: &[u8]) {
        self.seq += 1;
        self.b.acks += 1;
        message(
            &mut self.b.bytes,
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            NFPROTO_IPV4,
            0,
            attrs,
        );
    }

    fn chain(&mut self, name: &str, kind: &str, hooknum: u32, priority: i32) {
        let mut chain = Vec::new();
        attr_str(&mut chain, NFTA_CHAIN_TABLE, SERVICES_TABLE);
        attr_str(&mut chain, NFTA_CHAIN_NAME, name);
        let mut hook = Vec::new();
        attr(&mut hook, NFTA_HOOK_HOOKNUM, &hooknum.to_be_bytes());
        attr(&mut hook, NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
        nested(&mut chain, NFTA_CHAIN_HOOK, &hook);
        attr_str(&mut chain, NFTA_CHAIN_TYPE, kind);
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, &chain);
    }

    fn rule(&mut self, chain: &str, exprs: &[Vec<u8>]) {
        let mut list = Vec::new();
        for e in exprs {
            nested(&mut list, NFTA_LIST_ELEM, e);
        }
        let mut rule = Vec::new();
        attr_str(&mut rule, NFTA_RULE_TABLE, SERVICES_TABLE);
        attr_str(&mut rule, NFTA_RULE_CHAIN, chain);
        nested(&mut rule, NFTA_RULE_EXPRESSIONS, &list);
        self.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &rule);
    }

    fn finish(mut self) -> Batch {
        self.marker(NFNL_MSG_BATCH_END);
        self.b
    }
}

const NLM_F_APPEND: u16 = 0x800;

fn expr(name: &str, data: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    attr_str(&mut e, NFTA_EXPR_NAME, name);
    if !data.is_empty() {
        nested(&mut e, NFTA_EXPR_DATA, data);
    }
    e
}

fn u32_attr(out: &mut Vec<u8>, kind: u16, v: u32) {
    attr(out, kind, &v.to_be_bytes());
}

fn data_value(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let mut v = Vec::new();
    attr(&mut v, NFTA_DATA_VALUE, value);
    nested(out, kind, &v);
}

fn payload(base: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut d = Vec::new();
    u32_attr(&mut d, NFTA_PAYLOAD_DREG, NFT_REG_1);
    u32_attr(&mut d, NFTA_PAYLOAD_BASE, base);
    u32_attr(&mut d, NFTA_PAYLOAD_OFFSET, offset);
    u32_attr(&mut d, NFTA_PAYLOAD_LEN, len);
    expr("payload", &d)
}

fn cmp(op: u32, value: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    u32_attr(&mut d, NFTA_CMP_SREG, NFT_REG_1);
    u32_attr(&mut d, NFTA_CMP_OP, op);
    data_value(&mut d, NFTA_CMP_DATA, value);
    expr("cmp", &d)
}

fn immediate(reg: u32, value: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    u32_attr(&mut d, NFTA_IMMEDIATE_DREG, reg);
    data_value(&mut d, NFTA_IMMEDIATE_DATA, value);
    expr("immediate", &d)
}

/// `ip daddr VIP meta l4proto P th dport PORT`.
fn match_service(f: &crate::net::services::Forward) -> Vec<Vec<u8>> {
    let mut meta = Vec::new();
    u32_attr(&mut meta, NFTA_META_DREG, NFT_REG_1);
    u32_attr(&mut meta, NFTA_META_KEY, NFT_META_L4PROTO);
    vec![
        payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
        cmp(NFT_CMP_EQ, &f.vip.octets()),
        expr("meta", &meta),
        cmp(NFT_CMP_EQ, &[f.protocol]),
        payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
        cmp(NFT_CMP_EQ, &f.port.to_be_bytes()),
    ]
}

fn dnat_to(ip: Ipv4Addr, port: u16) -> Vec<Vec<u8>> {
    let mut nat = Vec::new();
    u32_attr(&mut nat, NFTA_NAT_TYPE, NFT_NAT_DNAT);
    u32_attr(&mut nat, NFTA_NAT_FAMILY, NFPROTO_IPV4 as u32);
    u32_attr(&mut nat, NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
    u32_attr(&mut nat, NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
    vec![
        immediate(NFT_REG_1, &ip.octets()),
        immediate(NFT_REG_2, &port.to_be_bytes()),
        expr("nat", &nat),
    ]
}

/// `numgen random mod M == 0`.
fn one_in(modulus: u32) -> Vec<Vec<u8>> {
    let mut ng = Vec::new();
    u32_attr(&mut ng, NFTA_NG_DREG, NFT_REG_1);
    u32_attr(&mut ng, NFTA_NG_MODULUS, modulus);
    u32_attr(&mut ng, NFTA_NG_TYPE, NFT_NG_RANDOM);
    vec![expr("numgen", &ng), cmp(NFT_CMP_EQ, &0u32.to_ne_bytes())]
}

fn services_batch(forwards: &[crate::net::services::Forward]) -> Batch {
    let mut b = Builder::new();
    let mut table = Vec::new();
    attr_str(&mut table, NFTA_TABLE_NAME, SERVICES_TABLE);
    // Add (a no-op when it exists), delete, add: the old table goes
    // whether it existed or not, in the same transaction.
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table);
    b.push(NFT_MSG_DELTABLE, 0, &table);
    if forwards.is_empty() {
        return b.finish();
    }
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table);
    b.chain("prerouting", "nat", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST);
    b.chain("output", "nat", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST);
    b.chain(
        "postrouting",
        "nat",
        NF_INET_POST_ROUTING,
        NF_IP_PRI_NAT_SRC,
    );
    b.chain("forward", "filter", NF_INET_FORWARD, NF_IP_PRI_FILTER);
    b.chain("reject-out", "filter", NF_INET_LOCAL_OUT, NF_IP_PRI_FILTER);
    for f in forwards {
        let n = f.targets.len();
        for (i, &(ip, port)) in f.targets.iter().enumerate() {
            let mut exprs = match_service(f);
            if i + 1 < n {
                exprs.extend(one_in((n - i) as u32));
            }
            exprs.extend(dnat_to(ip, port));
            b.rule("prerouting", &exprs);
            b.rule("output", &exprs);
        }
        if n == 0 {
            let mut reject = Vec::new();
            u32_attr(&mut reject, NFTA_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
            attr(&mut reject, NFTA_REJECT_ICMP_CODE, &[ICMP_PORT_UNREACH]);
            let mut exprs = match_service(f);
            exprs.push(expr("reject", &reject));
            b.rule("forward", &exprs);
            b.rule("reject-out", &exprs);
        }
    }
    // ct status & dnat != 0 masquerade
    let mut ct = Vec::new();
    u32_attr(&mut ct, NFTA_CT_DREG, NFT_REG_1);
    u32_attr(&mut ct, NFTA_CT_KEY, NFT_CT_STATUS);
    let mut bitwise = Vec::new();
    u32_attr(&mut bitwise, NFTA_BITWISE_SREG, NFT_REG_1);
    u32_attr(&mut bitwise, NFTA_BITWISE_DREG, NFT_REG_1);
    u32_attr(&mut bitwise, NFTA_BITWISE_LEN, 4);
    data_value(&mut bitwise, NFTA_BITWISE_MASK, &IPS_DST_NAT.to_ne_bytes());
    data_value(&mut bitwise, NFTA_BITWISE_XOR, &0u32.to_ne_bytes());
    b.rule(
        "postrouting",
        &[
            expr("ct", &ct),
            expr("bitwise", &bitwise),
            cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes()),
            expr("masq", &[]),
        ],
    );
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_five_aligned_messages_three_acknowledged() {
        let b = masquerade_batch("pasta0");
        assert_eq!(b.acks, 3);
        let msgs = messages(&b.bytes);
        let kinds: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                (10 << 8) | NFT_MSG_NEWTABLE,
                (10 << 8) | NFT_MSG_NEWCHAIN,
                (10 << 8) | NFT_MSG_NEWRULE,
                NFNL_MSG_BATCH_END
            ]
        );
        assert!(b.bytes.len().is_multiple_of(4));
        // The interface name travels NUL-padded to IFNAMSIZ.
        let rule = msgs[3].1;
        let padded = b"pasta0\0\0\0\0\0\0\0\0\0\0";
        assert!(rule.windows(16).any(|w| w == padded));
    }

    #[test]
    fn the_services_batch_replaces_the_table_in_one_transaction() {
        use crate::net::services::Forward;
        let kinds =
            |b: &Batch| -> Vec<u16> { messages(&b.bytes).iter().map(|m| m.0 & 0xff).collect() };
        // Nothing to forward: the table is removed, whether it was there or not.
        let empty = services_batch(&[]);
        assert_eq!(
            kinds(&empty),
            [
                NFNL_MSG_BATCH_BEGIN & 0xff,
                NFT_MSG_NEWTABLE,
                NFT_MSG_DELTABLE,
                NFNL_MSG_BATCH_END & 0xff
            ]
        );
        let vip = Ipv4Addr::new(10, 89, 0, 9);
        let b = services_batch(&[
            Forward {
                vip,
                protocol: 6,
                port: 80,
                targets: vec![
                    (Ipv4Addr::new(10, 88, 0, 2), 8080),
                    (Ipv4Addr::new(10, 88, 0, 3), 8080),
                ],
            },
            Forward {
                vip,
                protocol: 17,
                port: 53,
                targets: vec![],
            },
        ]);
        let k = kinds(&b);
        // begin, table add/del/add, 5 chains, 2x2 dnat, 2 rejects, masquerade, end
        assert_eq!(k.len(), 1 + 3 + 5 + 4 + 2 + 1 + 1);
        assert_eq!(b.acks, k.len() - 2);
        let rules: Vec<&[u8]> = messages(&b.bytes)
            .into_iter()
            .filter(|m| m.0 & 0xff == NFT_MSG_NEWRULE)
            .map(|m| m.1)
            .collect();
        let has = |r: &[u8], what: &[u8]| r.windows(what.len()).any(|w| w == what);
        // The first endpoint is picked one time in two, the second always.
        assert!(has(rules[0], b"numgen\0") && !has(rules[2], b"numgen\0"));
        assert!(has(rules[0], &[10, 88, 0, 2]) && has(rules[2], &[10, 88, 0, 3]));
        assert!(has(rules[4], b"reject\0") && has(rules[4], &53u16.to_be_bytes()));
        assert!(has(rules[6], b"masq\0"));
    }
}
