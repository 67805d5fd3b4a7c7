//! The `nmap` adapter: runs `nmap -sT -sV --open -oX - -p <ports> <host>` (an unprivileged
//! connect scan with service detection) once per host target and parses its XML report.
//!
//! Targets are hosts and network ranges (`10.0.0.0/24`, `fd00::/120`, `10.0.0.1-20`) of at
//! most [`MAX_NETWORK_ADDRESSES`] addresses, each given to one nmap run. Ports come from the
//! target (`host:22`, `host:1-1024`), else from the `ports` option, else nmap's own
//! `--top-ports 1000`. Option `timing` (0-5) maps to `-T<n>`.
//!
//! Each open port is one `info` finding with rule `open-port`, location `tcp/<port>` (or
//! `udp/<port>`), and a title naming the detected service, product and version; the detail
//! lists everything nmap reported about the service, including CPEs.
//!
//! Fingerprint recipe: `fingerprint("nmap", [host, port, protocol])` where host is the name
//! the user asked for (nmap's `hostname type="user"`) if any, else the scanned address,
//! normalized with [`normalize_host`].

use std::sync::Arc;

use async_trait::async_trait;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use scanplane_core::finding::{fingerprint, normalize_host, Finding, Severity};
use scanplane_core::scanner::{ScannerDef, ScannerKind};
use scanplane_core::target::{NetRange, PortRange, Target, TargetKind};
use tokio::sync::mpsc;

use crate::error::{ParseError, ScanError, ValidationError};
use crate::options::Options;
use crate::parsed::{document_text, Parsed};
use crate::process::{find_program, TargetRun, Tool, ToolOutput};
use crate::registry::{Component, Parser};
use crate::{
    adapter_def, check_network_size, check_target_kinds, RunRequest, ScanOutcome, Scanner,
};

pub const NAME: &str = "nmap";
pub const PROGRAM: &str = "nmap";
const OPTIONS: &[&str] = &["ports", "timing"];
/// The options that change what is scanned (`timing` only how fast).
const SCOPE_OPTIONS: &[&str] = &["ports"];
/// Most addresses of one network target (a /16): nmap handles more, but a wider range is
/// more often a typo than a plan, and one run of it would outlast any scan timeout.
pub const MAX_NETWORK_ADDRESSES: u128 = 65_536;

#[derive(Debug, Default)]
struct Service {
    name: String,
    product: String,
    version: String,
    extrainfo: String,
    cpes: Vec<String>,
}

#[derive(Debug, Default)]
struct Port {
    protocol: String,
    port: String,
    state: String,
    reason: String,
    service: Option<Service>,
}

#[derive(Debug, Default)]
struct Host {
    address: Option<String>,
    user_hostname: Option<String>,
    ports: Vec<Port>,
}

fn attrs(scanner_pos: u64, e: &BytesStart<'_>) -> Result<Vec<(String, String)>, ParseError> {
    e.attributes()
        .map(|a| {
            let a = a.map_err(|err| {
                ParseError::new(
                    NAME,
                    format!("malformed XML attribute at byte {scanner_pos}: {err}"),
                )
            })?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a
                .unescape_value()
                .map_err(|err| {
                    ParseError::new(
                        NAME,
                        format!("malformed XML attribute at byte {scanner_pos}: {err}"),
                    )
                })?
                .into_owned();
            Ok((key, value))
        })
        .collect()
}

fn attr(list: &[(String, String)], name: &str) -> String {
    list.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[derive(Default)]
struct State {
    saw_root: bool,
    finished: bool,
    host: Option<Host>,
    port: Option<Port>,
    in_cpe: bool,
    parsed: Parsed,
}

impl State {
    fn open(&mut self, pos: u64, e: &BytesStart<'_>) -> Result<(), ParseError> {
        let a = attrs(pos, e)?;
        match e.name().as_ref() {
            b"nmaprun" => self.saw_root = true,
            _ if !self.saw_root => {
                return Err(ParseError::new(
                    NAME,
                    format!("not an nmap XML report: unexpected element at byte {pos}"),
                ))
            }
            b"host" => self.host = Some(Host::default()),
            b"address" => {
                if let Some(h) = self.host.as_mut() {
                    if attr(&a, "addrtype") != "mac" && h.address.is_none() {
                        h.address = Some(attr(&a, "addr"));
                    }
                }
            }
            b"hostname" => {
                if let Some(h) = self.host.as_mut() {
                    if attr(&a, "type") == "user" {
                        h.user_hostname = Some(attr(&a, "name"));
                    }
                }
            }
            b"port" => {
                self.port = Some(Port {
                    protocol: attr(&a, "protocol"),
                    port: attr(&a, "portid"),
                    ..Port::default()
                })
            }
            b"state" => {
                if let Some(p) = self.port.as_mut() {
                    p.state = attr(&a, "state");
                    p.reason = attr(&a, "reason");
                }
            }
            b"service" => {
                if let Some(p) = self.port.as_mut() {
                    p.service = Some(Service {
                        name: attr(&a, "name"),
                        product: attr(&a, "product"),
                        version: attr(&a, "version"),
                        extrainfo: attr(&a, "extrainfo"),
                        cpes: Vec::new(),
                    });
                }
            }
            b"cpe" => self.in_cpe = true,
            b"finished" if attr(&a, "exit") == "error" => {
                return Err(ParseError::new(
                    NAME,
                    format!("nmap reported an error: {}", attr(&a, "errormsg")),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self, name: &[u8]) -> Result<(), ParseError> {
        match name {
            b"cpe" => self.in_cpe = false,
            b"nmaprun" => self.finished = true,
            b"port" => {
                if let (Some(p), Some(h)) = (self.port.take(), self.host.as_mut()) {
                    h.ports.push(p);
                }
            }
            b"host" => {
                // A host or port that cannot be reported is dropped alone; the other
                // hosts of the report are still good.
                if let Some(h) = self.host.take() {
                    let Some(name) = h.user_hostname.clone().or_else(|| h.address.clone()) else {
                        self.parsed
                            .rejected
                            .push(ParseError::new(NAME, "a <host> has no address"));
                        return Ok(());
                    };
                    for p in h.ports.iter().filter(|p| p.state == "open") {
                        match port_finding(&name, p) {
                            Ok(f) => self.parsed.findings.push(f),
                            Err(e) => self.parsed.rejected.push(e),
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses nmap's XML report (`-oX`) into one finding per open port. A port or host that
/// cannot be reported (a port number that is not one, a host without an address) is dropped
/// with its reason; malformed or truncated XML, or an error nmap reports, fails the parse.
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::empty(NAME));
    }
    let text = document_text(input);
    let mut reader = Reader::from_str(&text);
    reader.config_mut().trim_text(true);
    let mut st = State::default();
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| ParseError::new(NAME, format!("malformed XML at byte {pos}: {e}")))?;
        match event {
            Event::Eof => break,
            Event::Start(e) => st.open(pos, &e)?,
            Event::Empty(e) => {
                st.open(pos, &e)?;
                st.close(e.name().as_ref())?;
            }
            Event::End(e) => st.close(e.name().as_ref())?,
            Event::Text(t) if st.in_cpe => {
                let text = t.unescape().map_err(|e| {
                    ParseError::new(NAME, format!("malformed XML text at byte {pos}: {e}"))
                })?;
                if let Some(s) = st.port.as_mut().and_then(|p| p.service.as_mut()) {
                    s.cpes.push(text.into_owned());
                }
            }
            _ => {}
        }
    }
    if !st.saw_root {
        return Err(ParseError::new(
            NAME,
            "not an nmap XML report: no <nmaprun> element",
        ));
    }
    if !st.finished {
        return Err(ParseError::new(
            NAME,
            "truncated XML: the report ends before </nmaprun>",
        ));
    }
    st.parsed.unless_all_rejected()
}

fn port_finding(host: &str, p: &Port) -> Result<Finding, ParseError> {
    let number: u16 = p
        .port
        .parse()
        .map_err(|_| ParseError::new(NAME, format!("port number {:?} is not a port", p.port)))?;
    let protocol = if p.protocol.is_empty() {
        "tcp"
    } else {
        p.protocol.as_str()
    };
    let host = normalize_host(host);
    let mut title = format!("Open port {number}/{protocol}");
    let mut detail = format!("nmap reports port {number}/{protocol} open");
    if !p.reason.is_empty() {
        detail.push_str(&format!(" (reason: {})", p.reason));
    }
    detail.push('.');
    if let Some(s) = &p.service {
        let product: Vec<&str> = [s.product.as_str(), s.version.as_str()]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect();
        if !s.name.is_empty() {
            title.push_str(&format!(": {}", s.name));
        }
        if !product.is_empty() {
            title.push_str(&format!(" ({})", product.join(" ")));
        }
        detail.push_str(&format!(" Service: {}", s.name));
        if !product.is_empty() {
            detail.push_str(&format!("; product: {}", product.join(" ")));
        }
        if !s.extrainfo.is_empty() {
            detail.push_str(&format!("; {}", s.extrainfo));
        }
        if !s.cpes.is_empty() {
            detail.push_str(&format!("; CPE: {}", s.cpes.join(", ")));
        }
        detail.push('.');
    }
    let target = Target::Host {
        host: host.clone(),
        ports: None,
    }
    .to_string();
    let mut f = Finding::new(
        NAME,
        target,
        "open-port",
        Severity::Info,
        title,
        format!("{protocol}/{number}"),
    )
    .with_detail(detail);
    f.fingerprint = fingerprint(NAME, &[&host, &number.to_string(), protocol]);
    Ok(f)
}

/// The registry entry of this scanner (see [`crate::BUILTIN`]).
pub const COMPONENT: Component = Component {
    build: || Arc::new(NmapScanner::new()),
    parser: Some(Parser { name: NAME, parse }),
};

/// The nmap adapter.
pub struct NmapScanner {
    def: ScannerDef,
}

impl Default for NmapScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl NmapScanner {
    pub fn new() -> Self {
        NmapScanner {
            def: adapter_def(
                NAME,
                "nmap TCP connect scan with service detection",
                ScannerKind::External {
                    program: PROGRAM.to_string(),
                },
                vec![TargetKind::Host, TargetKind::Network],
                OPTIONS,
                SCOPE_OPTIONS,
            ),
        }
    }
}

struct Settings {
    ports: Option<Vec<PortRange>>,
    timing: Option<u64>,
}

fn settings(options: &serde_json::Value) -> Result<Settings, ValidationError> {
    let o = Options::parse(NAME, options, OPTIONS)?;
    Ok(Settings {
        ports: o.ports("ports")?,
        timing: o.integer("timing", 0, 5)?,
    })
}

/// Builds nmap's argument list for one host.
/// nmap's target specifications for a range: a CIDR block as is, a span as one
/// last-octet range (`10.0.0.250-255`) per /24 it crosses, since nmap has no syntax for a span
/// across octets.
fn range_specs(range: &NetRange) -> Vec<String> {
    let NetRange::Span { first, last } = *range else {
        return vec![range.to_string()];
    };
    let (first, last) = (u32::from(first), u32::from(last));
    let mut specs = Vec::new();
    let mut start = first;
    loop {
        let end = (start | 0xff).min(last);
        let [a, b, c, d] = std::net::Ipv4Addr::from(start).octets();
        specs.push(format!("{a}.{b}.{c}.{d}-{}", end & 0xff));
        if end >= last {
            break specs;
        }
        start = end + 1;
    }
}

fn args(hosts: &[String], ports: Option<&[PortRange]>, timing: Option<u64>) -> Vec<String> {
    let mut args: Vec<String> = ["-sT", "-sV", "--open", "-oX", "-"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(t) = timing {
        args.push(format!("-T{t}"));
    }
    match ports {
        Some(p) => {
            args.push("-p".into());
            args.push(
                p.iter()
                    .map(PortRange::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        None => {
            args.push("--top-ports".into());
            args.push("1000".into());
        }
    }
    if hosts.iter().any(|h| h.contains(':')) {
        args.push("-6".into());
    }
    // `--` keeps a host name from ever being read as an option.
    args.push("--".into());
    args.extend(hosts.iter().cloned());
    args
}

#[async_trait]
impl Scanner for NmapScanner {
    fn definition(&self) -> &ScannerDef {
        &self.def
    }

    fn missing_here(&self, _scan: Option<(&[Target], &serde_json::Value)>) -> Option<String> {
        crate::process::missing_program(
            NAME,
            PROGRAM,
            "install nmap (Debian/Ubuntu: apt-get install nmap)",
        )
    }

    fn validate(
        &self,
        targets: &[Target],
        options: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        check_target_kinds(&self.def, targets)?;
        check_network_size(&self.def, targets, MAX_NETWORK_ADDRESSES)?;
        settings(options).map(|_| ())
    }

    async fn run(
        &self,
        req: &RunRequest,
        findings: mpsc::Sender<Finding>,
    ) -> Result<ScanOutcome, ScanError> {
        self.validate(&req.targets, &req.options)?;
        let s = settings(&req.options)?;
        let tool = Tool::new(NAME, find_program(NAME, PROGRAM)?, req);
        let runs = TargetRun::each(&req.targets, |t| {
            let (hosts, ports) = match t {
                Target::Host { host, ports } => (vec![host.clone()], ports.as_ref()),
                Target::Network(range) => (range_specs(range), None),
                _ => return None,
            };
            let ports = match ports {
                Some(p) => Some(std::slice::from_ref(p)),
                None => s.ports.as_deref(),
            };
            Some(args(&hosts, ports, s.timing))
        });
        // Findings name the host nmap reports, not the scan target.
        let output = ToolOutput::Document(|xml, _target| parse(xml));
        tool.run_per_target(runs, output, &findings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &[u8] = include_bytes!("../tests/data/nmap/open-ssh-http.xml");
    const NONE_OPEN: &[u8] = include_bytes!("../tests/data/nmap/no-open-ports.xml");

    #[test]
    fn parses_real_report() {
        let f = parse(OPEN).and_then(Parsed::strict).unwrap();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].target, "127.0.0.1");
        assert_eq!(f[0].location, "tcp/42022");
        assert_eq!(f[0].rule_id, "open-port");
        assert_eq!(f[0].severity, Severity::Info);
        assert_eq!(
            f[0].title,
            "Open port 42022/tcp: ssh (OpenSSH 9.2p1 Debian 2+deb12u3)"
        );
        assert!(
            f[0].detail.contains("cpe:/a:openbsd:openssh:9.2p1"),
            "{}",
            f[0].detail
        );
        assert_eq!(
            f[0].fingerprint,
            fingerprint("nmap", &["127.0.0.1", "42022", "tcp"])
        );
        assert_eq!(f[1].title, "Open port 42080/tcp: http (nginx 1.22.1)");
        assert!(parse(NONE_OPEN)
            .and_then(Parsed::strict)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn garbage_and_truncation_are_errors_naming_nmap() {
        for bad in [
            &b""[..],
            b"   ",
            b"not xml at all",
            b"{\"json\": true}",
            b"<html></html>",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("nmap: "), "{e}");
        }
        let e = parse(&OPEN[..OPEN.len() / 2]).unwrap_err();
        assert!(e.to_string().starts_with("nmap: "), "{e}");
        crate::testutil::assert_robust(NAME, OPEN, parse);
    }

    #[test]
    fn a_port_that_is_not_one_is_dropped_alone() {
        let text =
            String::from_utf8_lossy(OPEN).replacen("portid=\"42080\"", "portid=\"99999\"", 1);
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].location, "tcp/42022");
        assert_eq!(
            p.rejected.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["nmap: port number \"99999\" is not a port"]
        );
    }

    #[test]
    fn arguments() {
        let p = scanplane_core::target::parse_port_list("22,80-81").unwrap();
        assert_eq!(
            args(&["127.0.0.1".into()], Some(&p), Some(4)).join(" "),
            "-sT -sV --open -oX - -T4 -p 22,80-81 -- 127.0.0.1"
        );
        assert_eq!(
            args(&["::1".into()], None, None).join(" "),
            "-sT -sV --open -oX - --top-ports 1000 -6 -- ::1"
        );
    }

    #[test]
    fn network_ranges_are_nmap_target_specs() {
        let specs = |t: &str| match Target::parse(t).unwrap() {
            Target::Network(r) => range_specs(&r),
            other => panic!("not a network: {other:?}"),
        };
        assert_eq!(specs("127.0.0.0/30"), ["127.0.0.0/30"]);
        assert_eq!(specs("fd00::/120"), ["fd00::/120"]);
        assert_eq!(specs("10.0.0.1-20"), ["10.0.0.1-20"]);
        assert_eq!(
            specs("10.0.0.250-10.0.2.3"),
            ["10.0.0.250-255", "10.0.1.0-255", "10.0.2.0-3"]
        );
        assert_eq!(specs("255.255.255.254-255"), ["255.255.255.254-255"]);
    }

    #[test]
    fn a_network_wider_than_the_limit_is_refused_naming_it() {
        let n = NmapScanner::new();
        let ok = [Target::parse("10.0.0.0/16").unwrap()];
        assert!(n.validate(&ok, &serde_json::Value::Null).is_ok());
        let wide = [
            Target::parse("10.0.0.1").unwrap(),
            Target::parse("10.0.0.0/15").unwrap(),
        ];
        match n.validate(&wide, &serde_json::Value::Null).unwrap_err() {
            ValidationError::Target {
                index,
                target,
                reason,
                ..
            } => {
                assert_eq!((index, target.as_str()), (1, "10.0.0.0/15"));
                assert!(reason.contains("131072 addresses"), "{reason}");
                assert!(reason.contains("at most 65536"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
