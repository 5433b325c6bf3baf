//! Flow input offline: `xdpacct replay` of a capture that holds exporter
//! datagrams. [`Tap`] sits between a capture and its worker: a frame that
//! is a UDP datagram to one of `collector.listen` (address unspecified or
//! equal, same port) goes to the collector, as the live receiver would
//! hand it, and is *not* counted as captured traffic; every other frame
//! goes on to the worker. So a capture of flows gives the flow-fed counts
//! (what `xdpacct run` would show), and a mixed capture gives both.
//!
//! Recognised: Ethernet with up to two VLAN tags, IPv4 (not fragmented)
//! or IPv6 whose next header is UDP. No allocation per frame; no unsafe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use super::input::FlowInput;
use super::socket::ReceiverStats;
use crate::capture::{Capture, CaptureError, Frame};
use crate::shard::worker::now_ms;

/// A capture whose exporter datagrams are diverted to a [`FlowInput`].
pub struct Tap<C> {
    inner: C,
    input: FlowInput,
    listen: Vec<SocketAddr>,
    datagrams: u64,
}

impl<C: Capture> Tap<C> {
    pub fn new(inner: C, input: FlowInput, listen: Vec<SocketAddr>) -> Self {
        Tap {
            inner,
            input,
            listen,
            datagrams: 0,
        }
    }

    /// Datagrams handed to the collector so far.
    pub fn datagrams(&self) -> u64 {
        self.datagrams
    }
}

impl<C> Drop for Tap<C> {
    fn drop(&mut self) {
        self.input.finish();
        self.input.publish(ReceiverStats::default());
    }
}

impl<C: Capture> Capture for Tap<C> {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        let Tap {
            inner,
            input,
            listen,
            datagrams,
        } = self;
        let now = Instant::now();
        input.tick(now_ms());
        let polled = inner.poll(max, |frame| match exporter_datagram(frame.data, listen) {
            Some((from, payload)) => {
                *datagrams += 1;
                input.datagram(from, now, payload);
            }
            None => f(frame),
        });
        if let Err(CaptureError::Closed) = polled {
            input.finish();
        }
        polled
    }
}

/// The source and UDP payload of a frame sent to one of `listen`.
pub fn exporter_datagram<'a>(
    frame: &'a [u8],
    listen: &[SocketAddr],
) -> Option<(SocketAddr, &'a [u8])> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    for _ in 0..2 {
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        at += 4;
        ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    }
    let ip = frame.get(at + 2..)?;
    let (src, dst, udp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl || ip[9] != 17 {
                return None;
            }
            // Fragments (MF set or an offset) are not reassembled.
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(ihl, ip.len());
            let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            (src, dst, &ip[ihl..total])
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 || ip[6] != 17 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let end = (40 + plen).min(ip.len());
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&ip[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (a(8), a(24), &ip[40..end])
        }
        _ => return None,
    };
    if udp.len() < 8 {
        return None;
    }
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]])).clamp(8, udp.len());
    let to_us = listen.iter().any(|l| {
        l.port() == dport
            && (l.ip().is_unspecified() && l.is_ipv4() == dst.is_ipv4() || l.ip() == dst)
    });
    to_us.then(|| (SocketAddr::new(src, sport), &udp[8..ulen]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(vlan: bool, dport: u16, frag: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0, 7]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let payload = [0, 9, 1, 2];
        let total = 20 + 8 + payload.len() as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, if frag { 0x20 } else { 0 }, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[192, 0, 2, 1, 10, 0, 0, 1]);
        f.extend_from_slice(&5000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        // Ethernet padding must not reach the decoder.
        f.resize(f.len().max(60), 0xa5);
        f
    }

    #[test]
    fn finds_datagrams_to_the_listen_ports_only() {
        let listen: Vec<SocketAddr> = vec!["0.0.0.0:2055".parse().unwrap()];
        for vlan in [false, true] {
            let f = frame(vlan, 2055, false);
            let (from, p) = exporter_datagram(&f, &listen).unwrap();
            assert_eq!(from, "192.0.2.1:5000".parse().unwrap());
            assert_eq!(p, [0, 9, 1, 2]);
        }
        assert!(exporter_datagram(&frame(false, 2056, false), &listen).is_none());
        assert!(exporter_datagram(&frame(false, 2055, true), &listen).is_none());
        let other_addr: Vec<SocketAddr> = vec!["10.0.0.2:2055".parse().unwrap()];
        assert!(exporter_datagram(&frame(false, 2055, false), &other_addr).is_none());
        let v6_only: Vec<SocketAddr> = vec!["[::]:2055".parse().unwrap()];
        assert!(exporter_datagram(&frame(false, 2055, false), &v6_only).is_none());
        for n in 0..60 {
            let f = frame(true, 2055, false);
            let _ = exporter_datagram(&f[..n], &listen);
        }
    }
}
