//! pcap / pcapng replay backend.
