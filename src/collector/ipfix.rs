//! IPFIX (RFC 7011): a 16-byte message header and sets.
//!
//! ```text
//! header: version(2)=10 length(2) export_time(4) sequence(4) observation_domain(4)
//! set:    id(2) length(2, header included) body
//!         id 2: templates       {template_id(2) field_count(2) {ie(2) length(2) [pen(4)]}*}*
//!         id 3: options tmpl    {template_id(2) field_count(2) scope_count(2) fields}*
//!         id >= 256: data records, then padding
//! ```
//!
//! - Field length 65535 is variable length: 1 length byte, or 255 and a
//!   2-byte length (section 7).
//! - An element id with the top bit set is an enterprise field with a
//!   4-byte enterprise number; it is skipped.
//! - A template record with field count 0 withdraws that template; with
//!   the set id (2 or 3) as template id, all data / options templates of
//!   the domain (section 8.1).
//! - `sequence` counts data records (options data records included) sent
//!   before this message, per domain: the message's records are its
//!   advance (softflowd's numbering, which includes the message's own
//!   records, is recognised: see `SeqTracker::observe_records`). When a
//!   data set had to be held (template unknown) the
//!   count is unknown and the stream resynchronises on the next message.
//! - The header length must equal the datagram length (`bad_length`).
//!
//! No allocation per record, no panic on any input.

use std::time::Instant;

use super::exporters::SeqUnit;
use super::sequence::{StreamKey, StreamKind};
use super::template::{SetContext, Sets, TemplateKey};
use super::{be16, be32, Collector, DropReason, ExporterId, FlowProtocol, FlowRecord};

pub(crate) const HEADER_LEN: usize = 16;

impl Collector {
    pub(super) fn ipfix(
        &mut self,
        ex: ExporterId,
        now: Instant,
        data: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) {
        if data.len() < HEADER_LEN {
            self.stats.drop(DropReason::Truncated, 1);
            return;
        }
        let length = usize::from(be16(data, 2).unwrap_or(0));
        if length != data.len() {
            self.stats.drop(
                if length > data.len() {
                    DropReason::Truncated
                } else {
                    DropReason::BadLength
                },
                1,
            );
            return;
        }
        let ctx = SetContext {
            proto: FlowProtocol::Ipfix,
            unix_secs: be32(data, 4).unwrap_or(0),
            sys_uptime: None,
        };
        let seq = be32(data, 8).unwrap_or(0);
        let domain = be32(data, 12).unwrap_or(0);
        let mut records = 0u32;
        let mut unknown = false;
        for set in Sets::after(data, HEADER_LEN) {
            let (id, body) = match set {
                Ok(set) => set,
                Err(r) => {
                    self.stats.drop(r, 1);
                    // A cut last header leaves the records counted; a bad
                    // length leaves them unknown.
                    unknown |= r == DropReason::BadLength;
                    break;
                }
            };
            match id {
                2 | 3 => self.template_set(ex, now, true, domain, id, body, out),
                0..=255 => self.stats.drop(DropReason::ReservedSet, 1),
                _ => {
                    let key = TemplateKey {
                        exporter: ex,
                        ipfix: true,
                        domain,
                        id,
                    };
                    match self.data_or_hold(key, now, ctx, body, out) {
                        Some(n) => records = records.wrapping_add(n),
                        None => unknown = true,
                    }
                }
            }
        }
        let key = StreamKey::simple(StreamKind::Ipfix, domain);
        let e = self.exporters.get_mut(ex);
        if unknown {
            e.resync(key);
        } else if let Err(r) = e.sequence(key, seq, records, SeqUnit::Records) {
            self.stats.drop(r, 1);
        }
    }
}
