//! IP prefixes as the settings give them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP prefix such as `198.51.100.0/24` or `2001:db8::/32`, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// First and last address of the prefix as integers (IPv4 in the low 32 bits).
    pub fn bounds(&self) -> (u128, u128) {
        let (bits, value) = match self.addr {
            IpAddr::V4(a) => (32, u32::from(a) as u128),
            IpAddr::V6(a) => (128, u128::from(a)),
        };
        (value, value | host_mask(bits - u32::from(self.len)))
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

/// The low `host_bits` bits set (all of them for 128).
fn host_mask(host_bits: u32) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

impl FromStr for IpPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP prefix"))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        let p = IpPrefix { addr, len };
        let (first, _) = p.bounds();
        let masked = first & !host_mask(u32::from(max - len));
        if first != masked {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}/{len}?)",
                int_to_ip(masked, addr.is_ipv6())
            ));
        }
        Ok(p)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Turns an integer back into an address (IPv4 from the low 32 bits).
pub fn int_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rejects_host_bits_and_bad_lengths() {
        assert!("198.51.100.0/24".parse::<IpPrefix>().is_ok());
        assert!("198.51.100.1/24"
            .parse::<IpPrefix>()
            .unwrap_err()
            .contains("host bits"));
        assert!("198.51.100.0/33".parse::<IpPrefix>().is_err());
        assert!("2001:db8::/129".parse::<IpPrefix>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<IpPrefix>().unwrap().bounds(),
            (0, u32::MAX as u128)
        );
        assert_eq!("::/0".parse::<IpPrefix>().unwrap().bounds(), (0, u128::MAX));
        assert_eq!(
            "10.0.0.7".parse::<IpPrefix>().unwrap().bounds(),
            (0x0a00_0007, 0x0a00_0007)
        );
    }
}
