//! A small async QMP client: line-delimited JSON over QEMU's QMP UNIX socket.

use std::path::Path;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::QemuError;

/// A QMP connection (line-delimited JSON over the QMP UNIX socket).
///
/// Calls are not cancel-safe: if a future is dropped mid-call (e.g. by a
/// timeout) the reply may be half-read, so reconnect afterwards.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    events: Vec<Value>,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities-negotiation mode.
    pub async fn connect(path: &Path) -> Result<Qmp, QemuError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QemuError::QmpConnect {
                path: path.to_owned(),
                source,
            })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(r),
            writer: w,
            next_id: 0,
            events: Vec::new(),
        };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(QemuError::QmpProtocol(format!(
                "expected the QMP greeting, got {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities").await?;
        Ok(qmp)
    }

    async fn read_message(&mut self) -> Result<Value, QemuError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .await
                .map_err(QemuError::QmpIo)?;
            if n == 0 {
                return Err(QemuError::QmpClosed);
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text)
                .map_err(|e| QemuError::QmpProtocol(format!("invalid JSON {text:?}: {e}")));
        }
    }

    /// Runs a command without arguments and returns its "return" value.
    pub async fn execute(&mut self, command: &str) -> Result<Value, QemuError> {
        self.execute_with_arguments(command, None).await
    }

    /// Runs a command; asynchronous events that arrive meanwhile are kept
    /// (see [`Qmp::take_events`]) and replies to other ids are skipped.
    pub async fn execute_with_arguments(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QemuError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .await
            .map_err(QemuError::QmpIo)?;

        loop {
            let reply = self.read_message().await?;
            if reply.get("event").is_some() {
                self.events.push(reply);
                continue;
            }
            // QEMU echoes the id; a reply without one (e.g. to a request it
            // could not parse) can only be ours, one with another id is a
            // leftover from an abandoned call.
            if let Some(reply_id) = reply.get("id") {
                if reply_id != &json!(id) {
                    continue;
                }
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
                return Err(QemuError::QmpCommand {
                    command: command.to_owned(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(QemuError::QmpProtocol(format!(
                "reply to {command:?} has neither \"return\" nor \"error\": {reply}"
            )));
        }
    }

    /// Events (`{"event": ...}` messages) received so far, oldest first.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Presses the ACPI power button. The guest decides what to do; systemd
    /// guests power off via logind, so expect QEMU to exit soon after.
    pub async fn system_powerdown(&mut self) -> Result<(), QemuError> {
        self.execute("system_powerdown").await.map(drop)
    }

    /// Stops QEMU at once. QEMU normally answers before exiting, but the
    /// connection may also close first; both count as success.
    pub async fn quit(&mut self) -> Result<(), QemuError> {
        match self.execute("quit").await {
            Ok(_) | Err(QemuError::QmpClosed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The run state: "running", "paused", "internal-error", "shutdown", ...
    pub async fn query_status(&mut self) -> Result<String, QemuError> {
        let ret = self.execute("query-status").await?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                QemuError::QmpProtocol(format!("query-status returned no status: {ret}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    // --- QMP against a fake server ---

    use tokio::net::UnixListener;

    /// One step of the fake server: the command it expects, then the lines
    /// it sends back, with `{id}` replaced by the request's id.
    type Step = (&'static str, Vec<&'static str>);

    async fn fake_qemu(
        greeting: &'static str,
        steps: Vec<Step>,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        tokio::task::JoinHandle<Vec<Value>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            w.write_all(format!("{greeting}\r\n").as_bytes())
                .await
                .unwrap();
            let mut seen = Vec::new();
            for (expected, replies) in steps {
                let Some(line) = lines.next_line().await.unwrap() else {
                    break;
                };
                let req: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(req["execute"], expected);
                let id = req["id"].to_string();
                seen.push(req);
                for reply in replies {
                    let reply = reply.replace("{id}", &id);
                    w.write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .unwrap();
                }
            }
            seen
        });
        (dir, path, task)
    }

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}"#;
    const OK: &str = r#"{"return": {}, "id": {id}}"#;

    #[tokio::test]
    async fn qmp_handshake_status_and_events() {
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![
                ("qmp_capabilities", vec![OK]),
                (
                    "query-status",
                    vec![
                        r#"{"event": "RTC_CHANGE", "data": {"offset": 1}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
                        "",
                        r#"{"return": {"status": "running", "running": true}, "id": {id}}"#,
                    ],
                ),
                (
                    "system_powerdown",
                    vec![
                        OK,
                        r#"{"event": "POWERDOWN", "timestamp": {"seconds": 2, "microseconds": 0}}"#,
                    ],
                ),
                (
                    "query-status",
                    vec![r#"{"return": {"status": "shutdown", "running": false}, "id": {id}}"#],
                ),
            ],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        assert_eq!(qmp.query_status().await.unwrap(), "running");
        qmp.system_powerdown().await.unwrap();
        assert_eq!(qmp.query_status().await.unwrap(), "shutdown");
        let events: Vec<_> = qmp
            .take_events()
            .into_iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["RTC_CHANGE", "POWERDOWN"]);
        assert!(qmp.take_events().is_empty());

        let seen = server.await.unwrap();
        assert_eq!(seen[0], json!({"execute": "qmp_capabilities", "id": 1}));
        assert_eq!(seen[3], json!({"execute": "query-status", "id": 4}));
    }

    #[tokio::test]
    async fn qmp_error_reply_and_stale_ids() {
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![
                ("qmp_capabilities", vec![OK]),
                (
                    "cont",
                    vec![
                        r#"{"return": {}, "id": 999}"#,
                        r#"{"error": {"class": "GenericError", "desc": "guest is shut down"}, "id": {id}}"#,
                    ],
                ),
                ("query-name", vec![r#"{"return": {"name": "bcvk"}, "id": {id}}"#]),
            ],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        match qmp.execute("cont").await {
            Err(QemuError::QmpCommand {
                command,
                class,
                desc,
            }) => {
                assert_eq!(command, "cont");
                assert_eq!(class, "GenericError");
                assert_eq!(desc, "guest is shut down");
            }
            other => panic!("{other:?}"),
        }
        // The connection stays usable after an error reply.
        assert_eq!(
            qmp.execute("query-name").await.unwrap(),
            json!({"name": "bcvk"})
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn qmp_arguments_are_sent() {
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![
                ("qmp_capabilities", vec![OK]),
                ("human-monitor-command", vec![OK]),
            ],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        qmp.execute_with_arguments(
            "human-monitor-command",
            Some(json!({"command-line": "info status"})),
        )
        .await
        .unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen[1]["arguments"], json!({"command-line": "info status"}));
    }

    #[tokio::test]
    async fn qmp_quit_tolerates_close_without_reply() {
        // The server expects "quit", then ends and drops the connection.
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![("qmp_capabilities", vec![OK]), ("quit", vec![])],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        qmp.quit().await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn qmp_quit_with_reply() {
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![("qmp_capabilities", vec![OK]), ("quit", vec![OK])],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        qmp.quit().await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn qmp_closed_mid_command() {
        let (_dir, path, server) = fake_qemu(
            GREETING,
            vec![("qmp_capabilities", vec![OK]), ("query-status", vec![])],
        )
        .await;
        let mut qmp = Qmp::connect(&path).await.unwrap();
        assert!(matches!(
            qmp.query_status().await,
            Err(QemuError::QmpClosed)
        ));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn qmp_rejects_non_qmp_greeting_and_missing_socket() {
        let (_dir, path, _server) = fake_qemu(r#"{"hello": 1}"#, vec![]).await;
        assert!(matches!(
            Qmp::connect(&path).await,
            Err(QemuError::QmpProtocol(_))
        ));

        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Qmp::connect(&dir.path().join("absent.sock")).await,
            Err(QemuError::QmpConnect { .. })
        ));
    }
}
