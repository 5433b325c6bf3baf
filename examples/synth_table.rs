//! Writes the synthetic full BGP table of the benches (1,000,000 IPv4 +
//! 250,000 IPv6 prefixes with the DFZ's prefix-length shares, see
//! `xdpacct::prefix::synth`) and a config that turns every table feature on
//! over it, for the end-to-end bench (`FEATURES=all bench/e2e.sh`):
//!
//! ```text
//! cargo run --release --example synth_table -- DIR [COLLECTOR]
//! ```
//!
//! DIR/routes.txt: `prefix asn` lines; DIR/features.toml: `as_file` on it,
//! 100 named networks of 20 prefixes each (10 IPv4, 10 IPv6, taken from the
//! table), and flow export to COLLECTOR (default 127.0.0.1:9995).

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use xdpacct::prefix::synth;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let collector = args.next().unwrap_or_else(|| "127.0.0.1:9995".into());
    let v4 = synth::v4_prefixes(synth::FULL_V4, 1);
    let v6 = synth::v6_prefixes(synth::FULL_V6, 2);
    let routes = dir.join("routes.txt");
    synth::write_prefix_asn(
        std::io::BufWriter::new(std::fs::File::create(&routes)?),
        &v4,
        &v6,
    )?;
    let mut c = std::io::BufWriter::new(std::fs::File::create(dir.join("features.toml"))?);
    writeln!(c, "# Every table feature on (examples/synth_table.rs).")?;
    writeln!(c, "[accounting]")?;
    writeln!(c, "as_file = {:?}", routes.display().to_string())?;
    writeln!(c, "as_file_format = \"prefix_asn\"")?;
    for k in 0..100 {
        writeln!(c, "[[accounting.networks]]")?;
        writeln!(c, "name = \"net{k}\"")?;
        let mut p = Vec::new();
        for j in 0..10 {
            let (a, l, _) = v4[k + 100 * j];
            p.push(format!("\"{}/{l}\"", Ipv4Addr::from(a)));
            let (a, l, _) = v6[k + 100 * j];
            p.push(format!("\"{}/{l}\"", Ipv6Addr::from(a)));
        }
        writeln!(c, "prefixes = [{}]", p.join(", "))?;
    }
    writeln!(c, "[netflow]")?;
    writeln!(c, "collectors = [{collector:?}]")?;
    c.flush()
}
