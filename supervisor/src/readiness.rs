//! Readiness: the VM is ready when a real SSH round trip succeeds, not when a unit started
//! (upstream bcvk's bug #309 came from trusting a socket unit). Then the manager is told:
//! sd_notify `READY=1` for Quadlet `Notify=true` / `podman run --sdnotify=container`.
//!
//! The probe is cheap first: QEMU's user-mode network accepts TCP on the forwarded port at
//! once, whether or not the guest listens, and drops the connection when the guest refuses.
//! So "ready to try ssh" is: a connection the guest keeps open (or its SSH banner). Only then
//! is `ssh true` spent.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How often the banner is polled: sshd is noticed within this much of listening.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// True when `bytes` (the first bytes a server sent) are an SSH identification string.
/// RFC 4253 allows other lines before "SSH-", so look at line starts.
pub fn is_ssh_banner(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SSH-") || bytes.windows(5).any(|w| w == b"\nSSH-")
}

/// What one connection to the forwarded SSH port showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knock {
    /// No connection, or closed without a banner: nothing listens in the guest yet.
    Refused,
    /// Open, but silent for [`HOLD`]: something accepted it (sshd under TCG takes seconds
    /// to send its banner).
    Held,
    /// An SSH identification string arrived.
    Banner,
}

/// How long a connection must stay open and silent to count as accepted by the guest. QEMU's
/// user network closes it within milliseconds when the guest refuses.
pub const HOLD: Duration = Duration::from_millis(500);

/// One knock: connect, read what the server says first, for at most `hold`.
pub async fn knock(port: u16, hold: Duration) -> Knock {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Knock::Refused;
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
        Knock::Refused
    };
    tokio::time::timeout(hold, read)
        .await
        .unwrap_or(Knock::Held)
}

/// Wait until sshd may be there: a banner, or a connection the guest holds open.
///
/// One connection at a time, and no more than needed: sshd counts every connection closed
/// before authentication against its source (OpenSSH 9.8+ `PerSourcePenalties`, noauth: 1 s
/// each, enforced from 15 s), and behind QEMU's user network every connection comes from the
/// same 10.0.2.2. An earlier probe that waited 2 s for a banner and reconnected piled up
/// penalties under TCG (where sshd needs seconds per connection) until sshd dropped every
/// connection, bcvk's own ssh included, for tens of seconds. Now quick refusals (nothing
/// listening: no sshd involved, no penalty) are retried every [`POLL_INTERVAL`], and the
/// first connection the guest accepts ends the wait, so `ssh true` starts while sshd is still
/// preparing that connection's banner.
pub async fn wait_for_sshd(port: u16) {
    while knock(port, HOLD).await == Knock::Refused {
        tokio::time::sleep(POLL_INTERVAL).await;
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
        assert_eq!(knock(ssh_port, HOLD).await, Knock::Banner);
        assert_eq!(knock(refuse_port, HOLD).await, Knock::Refused);
        tokio::time::timeout(Duration::from_secs(2), wait_for_sshd(ssh_port))
            .await
            .unwrap();
        // Nothing listening at all: refused.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(knock(closed_port, HOLD).await, Knock::Refused);
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
