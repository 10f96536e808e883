//! Readiness: the VM is ready when a real SSH round trip succeeds, not when a unit started
//! (upstream bcvk's bug #309 came from trusting a socket unit). Then the manager is told:
//! sd_notify `READY=1` for Quadlet `Notify=true` / `podman run --sdnotify=container`.
//!
//! The probe is cheap first, and it never opens a connection the guest cannot take at once.
//! QEMU's user network (slirp) accepts a TCP connection on a forwarded port at once and then
//! sends the SYN on to the guest. A guest whose TCP stack answers resets it (nothing listens)
//! or takes it (something listens). A guest that cannot answer yet (no address: DHCP not
//! done) gets nothing, and slirp *retransmits the SYN with TCP back-off* (3 s, then 6 s, 12 s)
//! while the connection looks held from outside. So a connection opened before the guest's
//! network is up reaches sshd seconds after it could have, and one closed meanwhile still
//! reaches it later, as a connection closed before authentication (a penalty in OpenSSH 9.8+
//! `PerSourcePenalties`, see [`wait_for_sshd`]).
//!
//! Hence two steps: first, the guest's network. A second forward leads to a guest port where
//! nothing listens ([`NET_PROBE_GUEST_PORT`]): the first knock there that is reset shows the
//! guest's TCP stack answers (its own clock, no back-off involved). Then `ssh true` itself,
//! every [`POLL_INTERVAL`] while the guest resets it (sshd not listening yet: such a
//! connection never reaches sshd), so that the connection that succeeds is the first one
//! sshd can take, and sshd forks no session for a probe connection besides it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How often the knocks are repeated: the guest's network and then sshd are noticed within
/// this much (plus a knock's own time) of answering.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The guest port the network probe is forwarded to: `tcpmux`, where nothing listens on any
/// image bcvk knows, so the guest resets connections to it as soon as its network is up.
pub const NET_PROBE_GUEST_PORT: u16 = 1;

/// True when `bytes` (the first bytes a server sent) are an SSH identification string.
/// RFC 4253 allows other lines before "SSH-", so look at line starts.
pub fn is_ssh_banner(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SSH-") || bytes.windows(5).any(|w| w == b"\nSSH-")
}

/// What one connection to a forwarded port showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knock {
    /// No connection at all: QEMU does not listen (yet).
    NoConnection,
    /// Closed without a banner: the guest answered, and nothing listens there.
    Closed,
    /// Open and silent for the whole hold: either the guest took it (sshd under TCG takes
    /// seconds to send its banner) or the guest cannot be reached yet and slirp still tries.
    Held,
    /// An SSH identification string arrived.
    Banner,
}

/// How long a knock on the SSH port must stay open and silent to count as taken by the guest
/// (once its network answers). slirp closes it within milliseconds when the guest resets it.
pub const HOLD: Duration = Duration::from_millis(500);

/// How long a knock on the network probe port waits for the guest's reset.
pub const NET_HOLD: Duration = Duration::from_millis(300);

/// One knock: connect, read what the server says first, for at most `hold` (`None`: until
/// the server speaks or closes).
pub async fn knock(port: u16, hold: Option<Duration>) -> Knock {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Knock::NoConnection;
    };
    let read = async {
        let mut buf = [0u8; 256];
        let mut got = 0;
        while got < buf.len() {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    if is_ssh_banner(&buf[..got]) {
                        return Knock::Banner;
                    }
                }
            }
        }
        Knock::Closed
    };
    match hold {
        Some(hold) => tokio::time::timeout(hold, read)
            .await
            .unwrap_or(Knock::Held),
        None => read.await,
    }
}

/// What a knock says about the step the probe is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Knock again after [`POLL_INTERVAL`].
    Again,
    /// Go on to the next step.
    Next,
}

/// The network step: the guest answered the probe port (reset, or anything but silence).
pub fn network_verdict(k: Knock) -> Verdict {
    match k {
        Knock::Closed | Knock::Banner => Verdict::Next,
        Knock::NoConnection | Knock::Held => Verdict::Again,
    }
}

/// The sshd step (the guest's network answers): a connection the guest holds, or a banner,
/// is sshd's; a reset is no sshd yet.
pub fn sshd_verdict(k: Knock) -> Verdict {
    match k {
        Knock::Held | Knock::Banner => Verdict::Next,
        Knock::NoConnection | Knock::Closed => Verdict::Again,
    }
}

/// Wait until the guest's network answers on `net_port` (the forward to
/// [`NET_PROBE_GUEST_PORT`]). A knock starts every [`POLL_INTERVAL`], whether the ones before
/// have ended or not: while the guest cannot answer, slirp holds each for its whole
/// [`NET_HOLD`], and knocking only after that (one every 400 ms) noticed the network up to
/// 300 ms late. Held knocks are closed after [`NET_HOLD`]; their late SYNs reach only that
/// port, where the guest resets them.
async fn network_answers(net_port: u16) {
    let t0 = std::time::Instant::now();
    let mut knocks = 0u32;
    let mut inflight = tokio::task::JoinSet::new();
    let mut every = tokio::time::interval(POLL_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                knocks += 1;
                inflight.spawn(knock(net_port, Some(NET_HOLD)));
            }
            Some(Ok(k)) = inflight.join_next() => {
                if network_verdict(k) == Verdict::Next {
                    tracing::debug!(knock = ?k, knocks, ms = t0.elapsed().as_millis() as u64, "ssh probe: the guest's network answers");
                    return;
                }
            }
        }
    }
}

/// One connection to the SSH port at a time, each kept until sshd's banner (returns) or until
/// it is closed (then the next). The fallback when the network probe gets no answer (an image
/// whose firewall drops it): slow, as its SYN may wait on slirp's back-off, but it never adds
/// connections that reach sshd only to be closed.
async fn banner_on_one_connection(port: u16) {
    loop {
        if knock(port, None).await == Knock::Banner {
            tracing::debug!("ssh probe: banner on the waiting connection");
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// How the wait for the guest's network ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Its TCP stack answered the network probe: a new connection reaches the guest at once.
    Network,
    /// sshd's banner came on the one waiting connection (the network probe got no answer).
    Banner,
}

/// Wait until a new connection reaches the guest at once (see the module docs), without piling
/// up connections on sshd.
///
/// sshd counts every connection closed before authentication against its source (OpenSSH
/// 9.8+ `PerSourcePenalties`, noauth: 1 s each, enforced once 15 s have accrued), and behind
/// QEMU's user network every connection comes from the same 10.0.2.2; a connection slirp holds
/// and the probe closes still reaches sshd later. So, until the guest's network answers on
/// `net_port`, the SSH port gets exactly one connection, which waits for the banner (the
/// fallback, should the network probe never be answered).
pub async fn wait_for_network(ssh_port: u16, net_port: u16) -> Reached {
    tokio::select! {
        _ = banner_on_one_connection(ssh_port) => Reached::Banner,
        _ = network_answers(net_port) => Reached::Network,
    }
}

/// Wait until sshd may be there (the guest's network answers): knocks on the SSH port every
/// [`POLL_INTERVAL`], of which resets (nothing listening: no sshd involved, no penalty) are
/// retried and the first that the guest holds for [`HOLD`] ends the wait. Each held knock is
/// one connection closed before authentication: used only where `ssh` itself would be
/// started too often (see [`knock_first`]).
pub async fn wait_for_sshd(ssh_port: u16) {
    let t0 = std::time::Instant::now();
    let mut knocks = 0u32;
    loop {
        knocks += 1;
        let k = knock(ssh_port, Some(HOLD)).await;
        if sshd_verdict(k) == Verdict::Next {
            tracing::debug!(knock = ?k, knocks, ms = t0.elapsed().as_millis() as u64, "ssh probe: sshd takes connections");
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `ssh true` attempts that ended this fast never reached sshd: the guest reset the connection.
pub const QUICK_FAILURE: Duration = Duration::from_secs(1);

/// Quick failures in a row after which the probe knocks before each `ssh true` (cheap, in
/// process) instead of starting ssh every [`POLL_INTERVAL`]: sshd listens within a second or
/// two of the guest's network on every image seen, and an image without sshd must not cost
/// ten ssh processes a second until `--ready-timeout`.
pub const DIRECT_TRIES: u32 = 30;

/// Whether to knock (wait for sshd to hold a connection) before the next `ssh true`.
pub fn knock_first(quick_failures: u32) -> bool {
    quick_failures >= DIRECT_TRIES
}

/// The pause before the next attempt after `ssh true` failed after `took`: a reset (nothing
/// listens yet) is retried at the poll rate; a connection sshd took and then failed (too early
/// in its start, or dropped under load) waits longer, so as not to add to its penalties.
pub fn retry_delay(took: Duration) -> Duration {
    if took < QUICK_FAILURE {
        POLL_INTERVAL
    } else {
        Duration::from_millis(500)
    }
}

/// The manager's notification socket, if one was given (`NOTIFY_SOCKET`).
pub fn notify_socket_present() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Send sd_notify states; a missing socket is not an error (plain `podman run`).
pub fn notify(states: &[sd_notify::NotifyState]) {
    if !notify_socket_present() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn recognises_ssh_banners() {
        assert!(is_ssh_banner(b"SSH-2.0-OpenSSH_10.0p2 Debian-7\r\n"));
        assert!(is_ssh_banner(b"hello\r\nSSH-2.0-x\r\n"));
        assert!(!is_ssh_banner(b""));
        assert!(!is_ssh_banner(b"HTTP/1.1 400 Bad Request"));
    }

    // The only test that touches NOTIFY_SOCKET (process-wide state).
    #[test]
    fn notifies_ready_and_stopping_to_the_manager_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status("VM ready"),
        ]);
        notify(&[sd_notify::NotifyState::Stopping]);
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(first.lines().any(|l| l == "READY=1"), "{first}");
        assert!(first.lines().any(|l| l == "STATUS=VM ready"), "{first}");
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "STOPPING=1");
        // Without a socket nothing is sent and nothing fails.
        notify(&[sd_notify::NotifyState::Stopping]);
    }

    /// What slirp shows for each state of the guest, as local servers.
    mod guest {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        use tokio::net::TcpListener;

        pub struct Port {
            pub port: u16,
            pub accepted: Arc<AtomicUsize>,
        }

        impl Port {
            pub fn count(&self) -> usize {
                self.accepted.load(Ordering::SeqCst)
            }
        }

        /// `banner_after`: None = accept and stay silent (the guest cannot be reached yet:
        /// slirp holds the connection); Some(d) = sshd, banner after d; `reset`: the guest
        /// resets (nothing listens).
        pub async fn port(reset: bool, banner_after: Option<Duration>) -> Port {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let accepted = Arc::new(AtomicUsize::new(0));
            let count = accepted.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                    if reset {
                        drop(s);
                    } else if let Some(d) = banner_after {
                        tokio::spawn(async move {
                            tokio::time::sleep(d).await;
                            let _ = s.write_all(b"SSH-2.0-test\r\n").await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        });
                    } else {
                        held.push(s);
                    }
                }
            });
            Port { port, accepted }
        }
    }

    #[test]
    fn verdicts_tell_the_guests_network_from_slirps_waiting() {
        use Knock::*;
        // The network step: only an answer from the guest counts, never silence.
        assert_eq!(network_verdict(Closed), Verdict::Next);
        assert_eq!(network_verdict(Banner), Verdict::Next);
        assert_eq!(network_verdict(Held), Verdict::Again);
        assert_eq!(network_verdict(NoConnection), Verdict::Again);
        // The sshd step: a held connection is sshd's once the network answers.
        assert_eq!(sshd_verdict(Held), Verdict::Next);
        assert_eq!(sshd_verdict(Banner), Verdict::Next);
        assert_eq!(sshd_verdict(Closed), Verdict::Again);
        assert_eq!(sshd_verdict(NoConnection), Verdict::Again);
    }

    #[test]
    fn ssh_is_started_directly_for_a_while_then_after_knocks() {
        assert!(!knock_first(0));
        assert!(!knock_first(DIRECT_TRIES - 1));
        assert!(knock_first(DIRECT_TRIES));
        assert_eq!(retry_delay(Duration::from_millis(20)), POLL_INTERVAL);
        assert_eq!(
            retry_delay(Duration::from_secs(10)),
            Duration::from_millis(500)
        );
    }

    /// The lost seconds of issue 18: before the guest's network is up, slirp holds every
    /// connection. The probe must not take that for anything, and must keep a single
    /// connection on the SSH port meanwhile (each one closed would reach sshd later as a
    /// penalty).
    #[tokio::test(flavor = "current_thread")]
    async fn a_guest_without_network_gets_one_ssh_connection_and_no_verdict() {
        let net = guest::port(false, None).await;
        let ssh = guest::port(false, None).await;
        let r = tokio::time::timeout(Duration::from_secs(2), wait_for_network(ssh.port, net.port))
            .await;
        assert!(r.is_err(), "held connections say nothing");
        assert_eq!(ssh.count(), 1);
        assert!(net.count() >= 2, "the network probe is retried");
    }

    /// Knocks that slirp holds do not slow the next ones down: a knock starts every poll.
    #[tokio::test(flavor = "current_thread")]
    async fn held_network_knocks_overlap() {
        let net = guest::port(false, None).await;
        let ssh = guest::port(false, None).await;
        let wait = Duration::from_millis(1000);
        let _ = tokio::time::timeout(wait, wait_for_network(ssh.port, net.port)).await;
        // One knock per NET_HOLD + POLL_INTERVAL would be 3 in a second; one per poll is ~10.
        assert!(net.count() >= 8, "{} knocks in {wait:?}", net.count());
    }

    /// The guest resets the probe port: its network is up, whatever sshd does.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reset_on_the_probe_port_is_the_network() {
        let net = guest::port(true, None).await;
        let ssh = guest::port(false, Some(Duration::from_secs(10))).await;
        let r = tokio::time::timeout(Duration::from_secs(2), wait_for_network(ssh.port, net.port))
            .await
            .expect("the network answers");
        assert_eq!(r, Reached::Network);
        assert!(ssh.count() <= 1, "{}", ssh.count());
    }

    /// A guest whose firewall drops the probe port: the one waiting connection's banner ends
    /// the wait.
    #[tokio::test(flavor = "current_thread")]
    async fn a_silent_probe_port_falls_back_to_the_banner() {
        let net = guest::port(false, None).await;
        let ssh = guest::port(false, Some(Duration::from_millis(300))).await;
        let r = tokio::time::timeout(Duration::from_secs(3), wait_for_network(ssh.port, net.port))
            .await
            .expect("the banner ends the wait");
        assert_eq!(r, Reached::Banner);
        assert_eq!(ssh.count(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn banner_probe_against_real_sockets() {
        // A server that speaks SSH first.
        let ssh = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ssh_port = ssh.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = ssh.accept().await.unwrap();
                let _ = s.write_all(b"SSH-2.0-test\r\n").await;
            }
        });
        // What slirp does when the guest is not listening yet: accept, then close.
        let refuse = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refuse_port = refuse.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (s, _) = refuse.accept().await.unwrap();
                drop(s);
            }
        });
        assert_eq!(knock(ssh_port, Some(HOLD)).await, Knock::Banner);
        assert_eq!(knock(ssh_port, None).await, Knock::Banner);
        assert_eq!(knock(refuse_port, Some(HOLD)).await, Knock::Closed);
        tokio::time::timeout(Duration::from_secs(2), wait_for_sshd(ssh_port))
            .await
            .unwrap();
        // Nothing listening at all: refused.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(knock(closed_port, Some(HOLD)).await, Knock::NoConnection);
    }

    /// A slow sshd (TCG): the banner comes 3 s after the connection. The wait ends once the
    /// connection is held, on that one connection, without reconnecting (each connection
    /// closed before authentication counts against the source in sshd).
    #[tokio::test(flavor = "current_thread")]
    async fn a_held_connection_ends_the_wait_without_reconnecting() {
        let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = slow.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = slow.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    let _ = s.write_all(b"SSH-2.0-slow\r\n").await;
                });
            }
        });
        let t = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(2), wait_for_sshd(port))
            .await
            .expect("a held connection ends the wait");
        assert!(t.elapsed() >= HOLD, "{:?}", t.elapsed());
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
