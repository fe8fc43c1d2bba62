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
    let socket = Socket::new(NETLINK_NETFILTER)
        .and_then(|mut s| s.bind(&SocketAddr::new(0, 0)).map(|()| s))
        .context("opening a netfilter netlink socket")
        .with_context(what)?;
    socket.send(&batch.bytes, 0).with_context(what)?;
    // One acknowledgement per message that asked for one.
    let mut acked = 0;
    let mut buf = vec![0u8; 8192];
    while acked < batch.acks {
        let n = socket.recv(&mut &mut buf[..], 0).with_context(what)?;
        for (kind, payload) in messages(&buf[..n]) {
            if kind != NLMSG_ERROR || payload.len() < 4 {
                continue;
            }
            let code = i32::from_ne_bytes(payload[..4].try_into().expect("4 bytes"));
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code)).with_context(what);
            }
            acked += 1;
        }
        if n == 0 {
            bail!("{}: netlink closed the socket", what());
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
}
