//! The commands that impose a [`Conditions`] on the server side's veth: iptables rules (loss,
//! outage, the NFQUEUE hook of the delay program) and the tc token bucket (rate). Pure, so the
//! command lines are unit-tested here.

use super::delay::Delay;

/// The chain the namespace's OUTPUT chain sends packets leaving through the veth to.
pub const CHAIN_OUT: &str = "RF_OUT";
/// The chain the namespace's INPUT chain sends packets arriving through the veth to.
pub const CHAIN_IN: &str = "RF_IN";
/// The NFQUEUE queue of the egress (worker → player) delay.
pub const QUEUE_OUT: u16 = 0;
/// The NFQUEUE queue of the ingress (player → worker) delay.
pub const QUEUE_IN: u16 = 1;

/// What the link does to traffic now. The default is a clean link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Conditions {
    /// A bottleneck on the way to the player, kbit/s (tc tbf on the veth's egress).
    pub rate_kbit: Option<u32>,
    /// UDP packets to the player dropped at random, percent.
    pub loss_percent: f64,
    /// Delay of UDP packets to the player.
    pub delay: Delay,
    /// Delay of UDP packets from the player.
    pub ingress_delay: Delay,
    /// Every packet dropped, both ways.
    pub outage: bool,
}

/// The `iptables-restore --noflush` input that sets the namespace's chains for `c`.
///
/// Rules run in order and the NFQUEUE rule is terminal (the delay program's verdict accepts
/// the packet), so the drops come first: an outage drops everything, loss drops at random,
/// then what is left is queued for delay. `--queue-bypass` lets packets through whenever the
/// delay program is not listening. Only UDP is lost or delayed (the media); an outage and the
/// rate cap also hit the signaling (TCP), as a real network's would.
pub fn iptables_restore(c: &Conditions) -> String {
    let mut s = format!("*filter\n-F {CHAIN_OUT}\n-F {CHAIN_IN}\n");
    if c.outage {
        s += &format!("-A {CHAIN_OUT} -j DROP\n-A {CHAIN_IN} -j DROP\n");
    }
    if c.loss_percent > 0.0 {
        let p = (c.loss_percent / 100.0).clamp(0.0, 1.0);
        s += &format!("-A {CHAIN_OUT} -p udp -m statistic --mode random --probability {p:.6} -j DROP\n");
    }
    if !c.delay.is_zero() {
        s += &format!("-A {CHAIN_OUT} -p udp -j NFQUEUE --queue-num {QUEUE_OUT} --queue-bypass\n");
    }
    if !c.ingress_delay.is_zero() {
        s += &format!("-A {CHAIN_IN} -p udp -j NFQUEUE --queue-num {QUEUE_IN} --queue-bypass\n");
    }
    s + "COMMIT\n"
}

/// The `iptables-restore` input that creates the chains and sends the veth's traffic to them
/// (a fresh namespace: its filter table is empty).
pub fn iptables_setup(ns_if: &str) -> String {
    format!(
        "*filter\n:{CHAIN_OUT} - [0:0]\n:{CHAIN_IN} - [0:0]\n-A OUTPUT -o {ns_if} -j {CHAIN_OUT}\n\
         -A INPUT -i {ns_if} -j {CHAIN_IN}\nCOMMIT\n"
    )
}

/// The token bucket's size for `kbit`/s: a dozen full-size packets, or 10 ms at the rate when
/// that is more (tbf needs at least one packet and rate/HZ).
pub fn tbf_burst_bytes(kbit: u32) -> u32 {
    (kbit * 1000 / 8 / 100).max(12_000)
}

/// How long a packet may wait in the bottleneck's queue before tbf drops it, ms: a modest home
/// router's buffer.
pub const TBF_LATENCY_MS: u32 = 80;

/// `tc` arguments that cap `dev`'s egress at `kbit`/s, or remove the cap (`None`).
pub fn tc_rate(dev: &str, kbit: Option<u32>) -> Vec<String> {
    let mut a: Vec<String> = ["qdisc", if kbit.is_some() { "replace" } else { "del" }, "dev", dev, "root"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(k) = kbit {
        a.extend([
            "tbf".to_string(),
            "rate".into(),
            format!("{k}kbit"),
            "burst".into(),
            tbf_burst_bytes(k).to_string(),
            "latency".into(),
            format!("{TBF_LATENCY_MS}ms"),
        ]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_only_flushes() {
        assert_eq!(iptables_restore(&Conditions::default()), "*filter\n-F RF_OUT\n-F RF_IN\nCOMMIT\n");
    }

    #[test]
    fn drops_come_before_the_terminal_queue_rule() {
        let c = Conditions {
            loss_percent: 5.0,
            delay: Delay::ms(100, 20),
            ingress_delay: Delay::ms(10, 0),
            outage: true,
            rate_kbit: Some(1000),
        };
        let r = iptables_restore(&c);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(
            lines,
            [
                "*filter",
                "-F RF_OUT",
                "-F RF_IN",
                "-A RF_OUT -j DROP",
                "-A RF_IN -j DROP",
                "-A RF_OUT -p udp -m statistic --mode random --probability 0.050000 -j DROP",
                "-A RF_OUT -p udp -j NFQUEUE --queue-num 0 --queue-bypass",
                "-A RF_IN -p udp -j NFQUEUE --queue-num 1 --queue-bypass",
                "COMMIT",
            ]
        );
        let over = iptables_restore(&Conditions { loss_percent: 250.0, ..Default::default() });
        assert!(over.contains("--probability 1.000000 "));
    }

    #[test]
    fn setup_hooks_the_veth_only() {
        let s = iptables_setup("rf12s");
        assert!(s.contains(":RF_OUT - [0:0]\n:RF_IN - [0:0]\n"));
        assert!(s.contains("-A OUTPUT -o rf12s -j RF_OUT\n-A INPUT -i rf12s -j RF_IN\nCOMMIT\n"));
    }

    #[test]
    fn tbf_command_lines() {
        assert_eq!(
            tc_rate("rf1s", Some(1000)).join(" "),
            "qdisc replace dev rf1s root tbf rate 1000kbit burst 12000 latency 80ms"
        );
        assert_eq!(tc_rate("rf1s", Some(50_000)).join(" ").split(' ').nth(9), Some("62500"));
        assert_eq!(tc_rate("rf1s", None).join(" "), "qdisc del dev rf1s root");
    }
}
