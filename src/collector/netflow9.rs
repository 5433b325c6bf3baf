//! NetFlow v9 (RFC 3954): a 20-byte header and FlowSets.
//!
//! ```text
//! header:  version(2)=9 count(2) sys_uptime(4) unix_secs(4) sequence(4) source_id(4)
//! flowset: id(2) length(2, header included) body
//!          id 0: templates      {template_id(2) field_count(2) {type(2) length(2)}*}*
//!          id 1: options tmpl   {template_id(2) scope_len(2) option_len(2) {type(2) length(2)}*}
//!          id >= 256: data records of that template, then padding
//! ```
//!
//! `sequence` counts export datagrams per source id (RFC 3954 section 5.1).
//! Templates are keyed by (exporter, source id, template id); data before
//! its template is held (see `template.rs`). FlowSet ids 2..=255 are
//! reserved: skipped and counted. No allocation per record, no panic.

use std::time::Instant;

use super::exporters::SeqUnit;
use super::sequence::{StreamKey, StreamKind};
use super::template::{SetContext, Sets, TemplateKey};
use super::{be32, Collector, DropReason, ExporterId, FlowProtocol, FlowRecord};

pub(crate) const HEADER_LEN: usize = 20;

impl Collector {
    pub(super) fn netflow9(
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
        let h = |at| be32(data, at).unwrap_or(0);
        let ctx = SetContext {
            proto: FlowProtocol::NetflowV9,
            unix_secs: h(8),
            sys_uptime: Some(h(4)),
        };
        let seq = h(12);
        let source_id = h(16);
        let e = self.exporters.get_mut(ex);
        if let Err(r) = e.sequence(
            StreamKey::simple(StreamKind::V9, source_id),
            seq,
            1,
            SeqUnit::Datagrams,
        ) {
            self.stats.drop(r, 1);
        }
        for set in Sets::after(data, HEADER_LEN) {
            let (id, body) = match set {
                Ok(set) => set,
                Err(r) => {
                    self.stats.drop(r, 1);
                    return;
                }
            };
            match id {
                0 | 1 => self.template_set(ex, now, false, source_id, id, body, out),
                2..=255 => self.stats.drop(DropReason::ReservedSet, 1),
                _ => {
                    let key = TemplateKey {
                        exporter: ex,
                        ipfix: false,
                        domain: source_id,
                        id,
                    };
                    self.data_or_hold(key, now, ctx, body, out);
                }
            }
        }
    }
}
