//! The DNS wire format, the small part of RFC 1035 (and RFC 6891's OPT
//! record) the server needs: a query's header and question, and answers
//! built for it. Pure: bytes in, bytes out.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;

/// A UDP answer without EDNS fits in 512 bytes (RFC 1035 4.2.1).
pub const CLASSIC_UDP_SIZE: usize = 512;
/// What we advertise, and the most we send over UDP (the DNS flag day's
/// 1232: no fragmentation on any common path).
pub const EDNS_UDP_SIZE: u16 = 1232;

const HEADER: usize = 12;
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;

/// A query's header and first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The opcode (0 is QUERY).
    pub opcode: u8,
    pub recursion_desired: bool,
    /// The question's name as sent (its case kept), without the root's dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section's bytes (name, type, class), echoed back.
    question: Vec<u8>,
    /// The client's UDP payload size when it sent an OPT record.
    pub edns_size: Option<u16>,
}

/// Why a message could not be read as a query; `id` when the header was
/// there, so that FORMERR can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub id: Option<u16>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips a name at `at` (labels or a compression pointer) and returns the
/// offset after it, with the name's labels when it had no pointer.
fn read_name(b: &[u8], mut at: usize) -> Option<(usize, Option<Vec<String>>)> {
    let mut labels = Some(Vec::new());
    let mut total = 0usize;
    loop {
        let len = *b.get(at)? as usize;
        match len {
            0 => return Some((at + 1, labels)),
            l if l & 0xC0 == 0xC0 => {
                b.get(at + 1)?;
                // A query's own name never needs a pointer: we do not follow one.
                return Some((at + 2, None));
            }
            l if l > 63 => return None,
            l => {
                let label = b.get(at + 1..at + 1 + l)?;
                total += l + 1;
                if total > 255 {
                    return None;
                }
                if let Some(ls) = labels.as_mut() {
                    ls.push(String::from_utf8_lossy(label).into_owned());
                }
                at += 1 + l;
            }
        }
    }
}

/// Reads a query: the header, exactly one question, and an OPT record
/// among the additional records.
pub fn parse_query(msg: &[u8]) -> Result<Query, Malformed> {
    let id = u16_at(msg, 0).ok_or(Malformed { id: None })?;
    let bad = Malformed { id: Some(id) };
    if msg.len() < HEADER {
        return Err(bad);
    }
    let flags = u16_at(msg, 2).ok_or(bad.clone())?;
    let count = |i: usize| u16_at(msg, 4 + 2 * i).unwrap_or(0);
    let (qd, an, ns, ar) = (count(0), count(1), count(2), count(3));
    if flags & QR != 0 || qd != 1 {
        return Err(bad);
    }
    let (after_name, labels) = read_name(msg, HEADER).ok_or(bad.clone())?;
    let labels = labels.ok_or(bad.clone())?;
    let qtype = u16_at(msg, after_name).ok_or(bad.clone())?;
    let qclass = u16_at(msg, after_name + 2).ok_or(bad.clone())?;
    let question = msg[HEADER..after_name + 4].to_vec();
    // The client's EDNS size, from an OPT record after the question.
    let mut at = after_name + 4;
    let mut edns_size = None;
    for i in 0..(an as usize + ns as usize + ar as usize) {
        let Some((after, _)) = read_name(msg, at) else {
            break;
        };
        let (Some(rtype), Some(class), Some(rdlen)) = (
            u16_at(msg, after),
            u16_at(msg, after + 2),
            u16_at(msg, after + 8),
        ) else {
            break;
        };
        if rtype == TYPE_OPT && i >= an as usize + ns as usize {
            edns_size = Some(class.max(CLASSIC_UDP_SIZE as u16));
        }
        at = after + 10 + rdlen as usize;
    }
    Ok(Query {
        id,
        opcode: ((flags >> 11) & 0xF) as u8,
        recursion_desired: flags & RD != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question,
        edns_size,
    })
}

/// The SOA of the cluster domain, sent with negative answers so that
/// resolvers cache them for its minimum TTL (RFC 2308).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub zone: String,
    pub ttl: u32,
}

/// An SRV record's data (RFC 2782): where a named port is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// What the server says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    pub authoritative: bool,
    pub addresses: Vec<Ipv4Addr>,
    pub srv: Vec<Srv>,
    pub ttl: u32,
    /// For NXDOMAIN and empty answers of our zone.
    pub soa: Option<Soa>,
}

impl Reply {
    pub fn error(rcode: u8) -> Reply {
        Reply {
            rcode,
            authoritative: false,
            addresses: Vec::new(),
            srv: Vec::new(),
            ttl: 0,
            soa: None,
        }
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// One resource record: its owner name (already encoded), type, class,
/// TTL and data.
fn push_record(out: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    push_u16(out, rtype);
    push_u16(out, class);
    push_u32(out, ttl);
    push_u16(out, rdata.len() as u16);
    out.extend_from_slice(rdata);
}

/// The answer to `query`, at most `limit` bytes: past it the answer
/// records are dropped and TC set, so the client asks again over TCP.
pub fn build_reply(query: &Query, reply: &Reply, limit: usize) -> Vec<u8> {
    let mut answers = Vec::new();
    // Each with the question's name, by a pointer to it.
    let question_name = (0xC000 | HEADER as u16).to_be_bytes();
    for addr in &reply.addresses {
        push_record(
            &mut answers,
            &question_name,
            TYPE_A,
            CLASS_IN,
            reply.ttl,
            &addr.octets(),
        );
    }
    for srv in &reply.srv {
        let mut rdata = Vec::new();
        push_u16(&mut rdata, srv.priority);
        push_u16(&mut rdata, srv.weight);
        push_u16(&mut rdata, srv.port);
        push_name(&mut rdata, &srv.target);
        push_record(
            &mut answers,
            &question_name,
            TYPE_SRV,
            CLASS_IN,
            reply.ttl,
            &rdata,
        );
    }
    let answer_count = reply.addresses.len() + reply.srv.len();
    let mut authority = Vec::new();
    if let Some(soa) = &reply.soa {
        let mut zone = Vec::new();
        push_name(&mut zone, &soa.zone);
        let mut rdata = Vec::new();
        push_name(&mut rdata, &format!("ns.dns.{}", soa.zone));
        push_name(&mut rdata, &format!("hostmaster.{}", soa.zone));
        // serial, refresh, retry, expire, minimum (CoreDNS's values)
        for v in [1, 7200, 1800, 86400, soa.ttl] {
            push_u32(&mut rdata, v);
        }
        push_record(&mut authority, &zone, TYPE_SOA, CLASS_IN, soa.ttl, &rdata);
    }
    let mut opt = Vec::new();
    if query.edns_size.is_some() {
        // The root's OPT record: its class is our UDP payload size.
        push_record(&mut opt, &[0], TYPE_OPT, EDNS_UDP_SIZE, 0, &[]);
    }
    let fits = HEADER + query.question.len() + answers.len() + authority.len() + opt.len() <= limit;
    let (answers, answer_count, authority, truncated) = match fits {
        true => (answers, answer_count, authority, false),
        false => (Vec::new(), 0, Vec::new(), true),
    };
    let mut flags = QR | RA | ((query.opcode as u16 & 0xF) << 11) | (reply.rcode as u16 & 0xF);
    if query.recursion_desired {
        flags |= RD;
    }
    if reply.authoritative {
        flags |= AA;
    }
    if truncated {
        flags |= TC;
    }
    let mut out = Vec::with_capacity(HEADER + query.question.len() + answers.len());
    push_u16(&mut out, query.id);
    push_u16(&mut out, flags);
    push_u16(&mut out, 1);
    push_u16(&mut out, answer_count as u16);
    push_u16(&mut out, u16::from(!authority.is_empty()));
    push_u16(&mut out, u16::from(!opt.is_empty()));
    out.extend_from_slice(&query.question);
    out.extend_from_slice(&answers);
    out.extend_from_slice(&authority);
    out.extend_from_slice(&opt);
    out
}

/// The answer to a message that is no query we can read: FORMERR with its
/// id, or nothing without one.
pub fn build_formerr(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    push_u16(&mut out, id);
    push_u16(&mut out, QR | RA | RCODE_FORMERR as u16);
    out.extend_from_slice(&[0; 8]);
    out
}

/// The most a UDP answer to `query` may carry.
pub fn udp_limit(query: &Query) -> usize {
    match query.edns_size {
        Some(size) => (size as usize).min(EDNS_UDP_SIZE as usize),
        None => CLASSIC_UDP_SIZE,
    }
}

/// The id of a message (an upstream's answer is matched to its query by it).
pub fn message_id(msg: &[u8]) -> Option<u16> {
    u16_at(msg, 0)
}

/// Whether a message is an answer (QR set).
pub fn is_response(msg: &[u8]) -> bool {
    u16_at(msg, 2).is_some_and(|f| f & QR != 0)
}

#[cfg(test)]
pub(crate) fn query_bytes(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    push_u16(&mut out, id);
    push_u16(&mut out, RD);
    push_u16(&mut out, 1);
    push_u16(&mut out, 0);
    push_u16(&mut out, 0);
    push_u16(&mut out, u16::from(edns.is_some()));
    push_name(&mut out, name);
    push_u16(&mut out, qtype);
    push_u16(&mut out, CLASS_IN);
    if let Some(size) = edns {
        out.push(0);
        push_u16(&mut out, TYPE_OPT);
        push_u16(&mut out, size);
        push_u32(&mut out, 0);
        push_u16(&mut out, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_read_with_its_question_and_edns_size() {
        let q = parse_query(&query_bytes(
            0x1234,
            "Web.Default.svc.cluster.local",
            TYPE_A,
            None,
        ))
        .unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name, "Web.Default.svc.cluster.local");
        assert_eq!((q.qtype, q.qclass, q.opcode), (TYPE_A, CLASS_IN, 0));
        assert!(q.recursion_desired);
        assert_eq!(q.edns_size, None);
        let q = parse_query(&query_bytes(7, "a.b", TYPE_AAAA, Some(4096))).unwrap();
        assert_eq!(q.edns_size, Some(4096));
        assert_eq!(udp_limit(&q), 1232);
        let small = parse_query(&query_bytes(7, "a.b", TYPE_A, Some(100))).unwrap();
        assert_eq!(small.edns_size, Some(512), "below 512 counts as 512");
    }

    #[test]
    fn malformed_messages_are_told_apart_with_their_id_when_there_is_one() {
        assert_eq!(parse_query(&[1]), Err(Malformed { id: None }));
        let mut two = query_bytes(9, "a", TYPE_A, None);
        two[5] = 2; // qdcount 2
        assert_eq!(parse_query(&two), Err(Malformed { id: Some(9) }));
        let mut cut = query_bytes(9, "abc.def", TYPE_A, None);
        cut.truncate(cut.len() - 3);
        assert_eq!(parse_query(&cut), Err(Malformed { id: Some(9) }));
        let mut long_label = query_bytes(9, "a", TYPE_A, None);
        long_label[12] = 64;
        assert!(parse_query(&long_label).is_err());
        let formerr = build_formerr(9);
        assert_eq!(formerr.len(), 12);
        assert_eq!(formerr[3] & 0xF, RCODE_FORMERR);
        assert!(is_response(&formerr));
    }

    #[test]
    fn an_answer_carries_a_records_after_the_question() {
        let q = parse_query(&query_bytes(
            5,
            "web.default.svc.cluster.local",
            TYPE_A,
            None,
        ))
        .unwrap();
        let reply = Reply {
            rcode: RCODE_NOERROR,
            authoritative: true,
            addresses: vec![Ipv4Addr::new(10, 89, 0, 10), Ipv4Addr::new(10, 89, 0, 11)],
            srv: Vec::new(),
            ttl: 5,
            soa: None,
        };
        let out = build_reply(&q, &reply, CLASSIC_UDP_SIZE);
        assert_eq!(message_id(&out), Some(5));
        assert!(is_response(&out));
        let flags = u16_at(&out, 2).unwrap();
        assert_eq!(flags & (AA | RD | RA | TC), AA | RD | RA);
        assert_eq!(u16_at(&out, 6), Some(2), "two answers");
        let question_end = HEADER + q.question.len();
        assert_eq!(&out[HEADER..question_end], &q.question[..]);
        let first = &out[question_end..question_end + 16];
        assert_eq!(
            first,
            &[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 89, 0, 10]
        );
        assert_eq!(out.len(), question_end + 32);
    }

    #[test]
    fn negative_answers_carry_the_zone_soa_and_edns_gets_an_opt() {
        let q = parse_query(&query_bytes(
            5,
            "x.default.svc.cluster.local",
            TYPE_A,
            Some(1232),
        ))
        .unwrap();
        let reply = Reply {
            rcode: RCODE_NXDOMAIN,
            authoritative: true,
            addresses: Vec::new(),
            srv: Vec::new(),
            ttl: 5,
            soa: Some(Soa {
                zone: "cluster.local".into(),
                ttl: 5,
            }),
        };
        let out = build_reply(&q, &reply, udp_limit(&q));
        assert_eq!(out[3] & 0xF, RCODE_NXDOMAIN);
        assert_eq!(
            (u16_at(&out, 6), u16_at(&out, 8), u16_at(&out, 10)),
            (Some(0), Some(1), Some(1))
        );
        // The SOA's owner name right after the question.
        let at = HEADER + q.question.len();
        assert_eq!(&out[at..at + 9], b"\x07cluster\x05");
        // The OPT record last: root name, type 41, our size.
        let opt = &out[out.len() - 11..];
        assert_eq!(opt[..5], [0, 0, 41, 0x04, 0xD0]);
    }

    #[test]
    fn an_answer_over_the_limit_is_truncated_for_tcp() {
        let q = parse_query(&query_bytes(
            5,
            "many.default.svc.cluster.local",
            TYPE_A,
            None,
        ))
        .unwrap();
        let reply = Reply {
            rcode: RCODE_NOERROR,
            authoritative: true,
            addresses: (0..40).map(|i| Ipv4Addr::new(10, 88, 0, i)).collect(),
            srv: Vec::new(),
            ttl: 5,
            soa: None,
        };
        let udp = build_reply(&q, &reply, CLASSIC_UDP_SIZE);
        assert!(u16_at(&udp, 2).unwrap() & TC != 0);
        assert_eq!(u16_at(&udp, 6), Some(0));
        assert_eq!(udp.len(), HEADER + q.question.len());
        let tcp = build_reply(&q, &reply, 65535);
        assert_eq!(u16_at(&tcp, 6), Some(40));
        assert!(u16_at(&tcp, 2).unwrap() & TC == 0);
    }

    #[test]
    fn an_srv_answer_names_its_target_in_full() {
        let q = parse_query(&query_bytes(
            6,
            "_http._tcp.web.default.svc.cluster.local",
            TYPE_SRV,
            None,
        ))
        .unwrap();
        let reply = Reply {
            rcode: RCODE_NOERROR,
            authoritative: true,
            addresses: Vec::new(),
            srv: vec![Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.default.svc.cluster.local".into(),
            }],
            ttl: 5,
            soa: None,
        };
        let out = build_reply(&q, &reply, CLASSIC_UDP_SIZE);
        assert_eq!(u16_at(&out, 6), Some(1));
        let at = HEADER + q.question.len();
        assert_eq!(&out[at..at + 4], &[0xC0, 12, 0, 33]);
        let rdlen = u16_at(&out, at + 10).unwrap() as usize;
        let rdata = &out[at + 12..];
        assert_eq!(rdata.len(), rdlen);
        assert_eq!(&rdata[..6], &[0, 0, 0, 100, 0, 80]);
        assert_eq!(&rdata[6..10], b"\x03web");
        assert_eq!(rdata.last(), Some(&0));
    }
}
