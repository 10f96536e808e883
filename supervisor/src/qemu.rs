//! QEMU (10.0, Debian trixie) command line for a direct-kernel-boot q35 VM
//! whose root filesystem is a virtiofs share, and a small async QMP client.
//!
//! The builder is pure: paths arrive resolved, nothing is spawned or read.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::net::Ipv4Addr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The name users see (status file, logs, `--accel`).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsShare {
    pub tag: String,
    pub socket: PathBuf,
}

/// A TCP port forward from the host (QEMU's side) into the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// None listens on every host address.
    pub host_addr: Option<Ipv4Addr>,
    pub host_port: u16,
    pub guest_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// User-mode (slirp) networking. `restrict` cuts the guest off from the
    /// host and the outside; the forwards still work.
    User {
        forwards: Vec<PortForward>,
        restrict: bool,
    },
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub format: DiskFormat,
    /// Shows up in the guest as /dev/disk/by-id/virtio-<serial>.
    pub serial: String,
    pub readonly: bool,
}

/// A virtio-serial port named `name` in the guest
/// (/dev/virtio-ports/<name>); what the guest writes lands in `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialOutSpec {
    pub name: String,
    pub path: PathBuf,
}

/// The guest console (ttyS0) on QEMU's stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleSpec {
    /// `interactive: false`: output only. QEMU still opens stdin, so the
    /// caller should give it /dev/null.
    ///
    /// `interactive: true`: the user types into the console. The chardev is
    /// a mux with no monitor attached, so the one escape that matters is
    /// Ctrl-a x, which quits QEMU (the VM dies, like pulling the plug);
    /// Ctrl-a a sends a literal Ctrl-a to the guest, Ctrl-a c has no monitor
    /// to switch to. `signal=off` sends Ctrl-c to the guest instead of
    /// killing QEMU.
    Stdio { interactive: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    pub accel: Accel,
    pub cpu: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: Vec<String>,
    pub root_share: VirtiofsShare,
    pub extra_shares: Vec<VirtiofsShare>,
    pub net: NetSpec,
    /// Values from `credentials::smbios_args`, already escaped.
    pub smbios: Vec<String>,
    pub disks: Vec<DiskSpec>,
    pub serial_outs: Vec<SerialOutSpec>,
    pub console: ConsoleSpec,
    pub qmp_socket: PathBuf,
    /// virtio-rng: entropy for early sshd key generation.
    pub rng: bool,
}

/// The virtio-fs config space holds the tag in 36 bytes.
pub const MAX_TAG_LEN: usize = 36;
/// VIRTIO_BLK_ID_BYTES: longer serials are cut short by the guest.
pub const MAX_DISK_SERIAL_LEN: usize = 20;
/// sun_path is 108 bytes on Linux, including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Below this, a systemd guest with an initrd does not reliably boot.
pub const MIN_MEMORY_MIB: u64 = 128;
/// q35 without an IOMMU tops out at 255 vCPUs (8-bit APIC IDs).
pub const MAX_VCPUS: u32 = 255;
/// Generous for /dev/virtio-ports/<name> and readable in `ls`.
pub const MAX_SERIAL_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("{vcpus} vCPUs requested; use 1 to 255 (the q35 limit without an IOMMU)")]
    VcpusOutOfRange { vcpus: u32 },
    #[error("{mib} MiB of guest memory is too little; give the VM at least 128 MiB")]
    MemoryTooSmall { mib: u64 },
    #[error("CPU model is empty; pass one such as \"host\" (KVM) or \"max\" (TCG)")]
    EmptyCpu,
    #[error(
        "CPU model \"host\" needs KVM but TCG was chosen; use \"max\" with TCG, or enable KVM"
    )]
    HostCpuNeedsKvm,
    #[error("virtiofs tag {tag:?} is invalid ({reason}); use 1 to 36 bytes without whitespace or control characters")]
    InvalidTag { tag: String, reason: &'static str },
    #[error("virtiofs tag {0:?} is used by two shares; give every share its own tag")]
    DuplicateTag(String),
    #[error(
        "virtio-serial port name {name:?} is invalid ({reason}); use 1 to 64 of [A-Za-z0-9._-]"
    )]
    InvalidSerialName { name: String, reason: &'static str },
    #[error("virtio-serial port name {0:?} is used twice; give every port its own name")]
    DuplicateSerialName(String),
    #[error("host port {0} is forwarded twice; forward each host port once")]
    DuplicateHostPort(u16),
    #[error("port forward uses port 0; pass real host and guest ports")]
    ZeroPort,
    #[error("disk serial {serial:?} is invalid ({reason}); use 1 to 20 of [A-Za-z0-9._-]")]
    InvalidDiskSerial {
        serial: String,
        reason: &'static str,
    },
    #[error("disk serial {0:?} is used twice; give every disk its own serial")]
    DuplicateDiskSerial(String),
    #[error("socket path {path:?} is {len} bytes, over the 107-byte UNIX socket limit; use a shorter directory such as /run/bcvk")]
    SocketPathTooLong { path: PathBuf, len: usize },

    #[error("cannot connect to QMP socket {path:?}: {source}; check that QEMU is running with -qmp on that path")]
    QmpConnect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP I/O failed: {0}; the QEMU process has probably died, check its exit status")]
    QmpIo(#[source] std::io::Error),
    #[error("QMP connection closed by QEMU; it has exited or is exiting, check its exit status")]
    QmpClosed,
    #[error("QMP protocol error: {0}; this QEMU speaks something unexpected, check its version")]
    QmpProtocol(String),
    #[error(
        "QMP command {command:?} failed: {class}: {desc}; fix the command or the VM state it needs"
    )]
    QmpCommand {
        command: String,
        class: String,
        desc: String,
    },
}

fn check_socket_path(path: &Path) -> Result<(), QemuError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(QemuError::SocketPathTooLong {
            path: path.to_owned(),
            len,
        });
    }
    Ok(())
}

/// The CPU model used when `--cpu` is not given.
pub fn default_cpu(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "host",
        // qemu64 boots ~50 s faster than max under TCG here (no AVX emulation).
        Accel::Tcg => "qemu64",
    }
}

/// Whether a line QEMU wrote to stderr says KVM cannot run the guest. Depending on the host
/// kernel and QEMU version this shows as an abort on an MSR write, an internal error after
/// which QEMU pauses (and would sit there), or a vCPU that cannot be created.
pub fn kvm_failure(line: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "KVM internal error",
        "failed to set MSR",
        "kvm_buf_set_msrs",
        "kvm_init_vcpu",
        "kvm run failed",
        "KVM_CREATE_VCPU",
    ];
    MARKERS.iter().any(|m| line.contains(m))
}

/// Names that end up inside paths and QEMU option values.
fn portable_name(s: &str, max: usize) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.len() > max {
        return Err("too long");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("characters outside [A-Za-z0-9._-]");
    }
    Ok(())
}

impl QemuSpec {
    /// All shares, root first, as they appear on the command line.
    pub fn shares(&self) -> impl Iterator<Item = &VirtiofsShare> {
        std::iter::once(&self.root_share).chain(&self.extra_shares)
    }

    /// The same VM under TCG, for `--accel auto` when KVM turned out unable to run the guest;
    /// `None` when there is nothing to fall back to (already TCG, or a `--cpu` that needs KVM).
    pub fn under_tcg(&self, user_cpu: Option<&str>) -> Option<QemuSpec> {
        if self.accel != Accel::Kvm {
            return None;
        }
        let tcg = QemuSpec {
            accel: Accel::Tcg,
            cpu: user_cpu.unwrap_or(default_cpu(Accel::Tcg)).into(),
            ..self.clone()
        };
        tcg.validate().ok().map(|()| tcg)
    }

    pub fn validate(&self) -> Result<(), QemuError> {
        if !(1..=MAX_VCPUS).contains(&self.vcpus) {
            return Err(QemuError::VcpusOutOfRange { vcpus: self.vcpus });
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(QemuError::MemoryTooSmall {
                mib: self.memory_mib,
            });
        }
        if self.cpu.is_empty() {
            return Err(QemuError::EmptyCpu);
        }
        // QEMU refuses "-cpu host" without a hardware accelerator.
        if self.accel == Accel::Tcg && (self.cpu == "host" || self.cpu.starts_with("host,")) {
            return Err(QemuError::HostCpuNeedsKvm);
        }

        let mut tags = HashSet::new();
        for share in self.shares() {
            let bad = |reason| QemuError::InvalidTag {
                tag: share.tag.clone(),
                reason,
            };
            if share.tag.is_empty() {
                return Err(bad("empty"));
            }
            if share.tag.len() > MAX_TAG_LEN {
                return Err(bad("longer than 36 bytes"));
            }
            // The tag is also the first field of an fstab line in the guest.
            if share
                .tag
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad("whitespace or control characters"));
            }
            if !tags.insert(share.tag.as_str()) {
                return Err(QemuError::DuplicateTag(share.tag.clone()));
            }
            check_socket_path(&share.socket)?;
        }

        if let NetSpec::User { forwards, .. } = &self.net {
            let mut ports = HashSet::new();
            for f in forwards {
                if f.host_port == 0 || f.guest_port == 0 {
                    return Err(QemuError::ZeroPort);
                }
                if !ports.insert(f.host_port) {
                    return Err(QemuError::DuplicateHostPort(f.host_port));
                }
            }
        }

        let mut serials = HashSet::new();
        for d in &self.disks {
            portable_name(&d.serial, MAX_DISK_SERIAL_LEN).map_err(|reason| {
                QemuError::InvalidDiskSerial {
                    serial: d.serial.clone(),
                    reason,
                }
            })?;
            if !serials.insert(d.serial.as_str()) {
                return Err(QemuError::DuplicateDiskSerial(d.serial.clone()));
            }
        }

        let mut names = HashSet::new();
        for s in &self.serial_outs {
            portable_name(&s.name, MAX_SERIAL_NAME_LEN).map_err(|reason| {
                QemuError::InvalidSerialName {
                    name: s.name.clone(),
                    reason,
                }
            })?;
            if !names.insert(s.name.as_str()) {
                return Err(QemuError::DuplicateSerialName(s.name.clone()));
            }
        }

        check_socket_path(&self.qmp_socket)?;
        Ok(())
    }
}

/// QemuOpts and keyval (-chardev, -device, -object, -blockdev, -smbios,
/// -qmp ...) split on ',' and read ",," as one literal comma. Paths may be
/// non-UTF-8, so this works on bytes.
fn escape_commas(s: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(s.len());
    for &b in s.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// Concatenates option-string pieces; paths go through `path`, escaped.
struct Opt(OsString);

impl Opt {
    fn new(s: &str) -> Opt {
        Opt(OsString::from(s))
    }
    fn s(mut self, s: &str) -> Opt {
        self.0.push(s);
        self
    }
    fn esc(mut self, s: impl AsRef<OsStr>) -> Opt {
        self.0.push(escape_commas(s.as_ref()));
        self
    }
}

struct Argv(Vec<OsString>);

impl Argv {
    fn opt(&mut self, name: &str, value: OsString) {
        self.0.push(name.into());
        self.0.push(value);
    }
}

/// The argv for qemu-system-x86_64, without the binary itself.
/// Call [`QemuSpec::validate`] first; this does not check again.
pub fn qemu_args(spec: &QemuSpec) -> Vec<OsString> {
    let mut a = Argv(Vec::new());

    // A lean machine: no default NIC, VGA, serial, parallel or monitor
    // (-nodefaults), no /etc/qemu config, no display. -no-reboot turns a
    // guest reboot into QEMU exiting, so "VM done" is simply "QEMU exited";
    // a guest panic ends QEMU too when the kernel reboots on panic (panic=N).
    for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
        a.0.push(flag.into());
    }
    a.opt("-display", "none".into());

    // vhost-user-fs needs guest RAM that virtiofsd can map: a shared memfd
    // backend, handed to the machine as its RAM. Its size must equal -m.
    let mem = format!("{}M", spec.memory_mib);
    a.opt("-machine", "q35,memory-backend=mem".into());
    a.opt(
        "-object",
        format!("memory-backend-memfd,id=mem,size={mem},share=on").into(),
    );
    a.opt(
        "-accel",
        match spec.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg,thread=multi",
        }
        .into(),
    );
    // -cpu has its own parser where ',' separates features: not escaped.
    a.opt("-cpu", spec.cpu.clone().into());
    a.opt("-smp", spec.vcpus.to_string().into());
    a.opt("-m", mem.into());

    // -kernel/-initrd/-append are stored verbatim (no option parsing), so
    // their commas must not be doubled.
    a.opt("-kernel", spec.kernel.clone().into_os_string());
    if let Some(initrd) = &spec.initrd {
        a.opt("-initrd", initrd.clone().into_os_string());
    }
    if !spec.cmdline.is_empty() {
        a.opt("-append", spec.cmdline.join(" ").into());
    }

    for (i, share) in spec.shares().enumerate() {
        let id = format!("vfs{i}");
        a.opt(
            "-chardev",
            Opt::new("socket,id=")
                .s(&id)
                .s(",path=")
                .esc(&share.socket)
                .0,
        );
        // queue-size=1024 (the maximum; the default is 128): the root
        // filesystem carries all guest I/O, so allow more requests in flight.
        a.opt(
            "-device",
            Opt::new("vhost-user-fs-pci,chardev=")
                .s(&id)
                .s(",tag=")
                .esc(&share.tag)
                .s(",queue-size=1024")
                .0,
        );
    }

    if let NetSpec::User { forwards, restrict } = &spec.net {
        let mut netdev = String::from("user,id=net0");
        if *restrict {
            netdev.push_str(",restrict=on");
        }
        for f in forwards {
            let addr = f.host_addr.map(|a| a.to_string()).unwrap_or_default();
            netdev.push_str(&format!(
                ",hostfwd=tcp:{addr}:{}-:{}",
                f.host_port, f.guest_port
            ));
        }
        a.opt("-netdev", netdev.into());
        // romfile= (empty): with a direct kernel boot there is nothing to
        // PXE-boot, and skipping the iPXE option ROM means the VM does not
        // depend on the ipxe-qemu package being installed.
        a.opt("-device", "virtio-net-pci,netdev=net0,romfile=".into());
    }

    for s in &spec.smbios {
        a.opt("-smbios", s.clone().into());
    }

    for (i, d) in spec.disks.iter().enumerate() {
        let driver = match d.format {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        };
        // read-only on the format node is inherited by its file child.
        let mut opt = Opt::new("driver=")
            .s(driver)
            .s(&format!(
                ",node-name=disk{i},file.driver=file,file.filename="
            ))
            .esc(&d.path);
        if d.readonly {
            opt = opt.s(",read-only=on");
        }
        a.opt("-blockdev", opt.0);
        a.opt(
            "-device",
            Opt::new(&format!("virtio-blk-pci,drive=disk{i},serial="))
                .esc(&d.serial)
                .0,
        );
    }

    if !spec.serial_outs.is_empty() {
        a.opt("-device", "virtio-serial-pci,id=vser0".into());
        for (i, s) in spec.serial_outs.iter().enumerate() {
            let id = format!("vport{i}");
            a.opt(
                "-chardev",
                Opt::new("file,id=").s(&id).s(",path=").esc(&s.path).0,
            );
            a.opt(
                "-device",
                Opt::new("virtserialport,bus=vser0.0,chardev=")
                    .s(&id)
                    .s(",name=")
                    .esc(&s.name)
                    .0,
            );
        }
    }

    let ConsoleSpec::Stdio { interactive } = spec.console;
    // See ConsoleSpec for why mux=on only when interactive.
    a.opt(
        "-chardev",
        if interactive {
            "stdio,id=console,mux=on,signal=off"
        } else {
            "stdio,id=console,signal=off"
        }
        .into(),
    );
    a.opt("-serial", "chardev:console".into());

    // wait=off: QEMU starts the guest without waiting for a QMP client.
    // "path=" is spelt out: after "unix:" QEMU takes a first piece holding
    // '=' for a key=value pair, so an implied path "/a=b" would not be a path.
    a.opt(
        "-qmp",
        Opt::new("unix:path=")
            .esc(&spec.qmp_socket)
            .s(",server=on,wait=off")
            .0,
    );

    if spec.rng {
        a.opt("-device", "virtio-rng-pci".into());
    }
    a.0
}

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

    #[test]
    fn kvm_failures_are_recognised_in_qemu_stderr() {
        for line in [
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069",
            "qemu-system-x86_64: target/i386/kvm/kvm.c:3877: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
            "KVM internal error. Suberror: 1",
            "qemu-system-x86_64: kvm_init_vcpu: kvm_arch_init_vcpu failed (0): Operation not permitted",
            "error: kvm run failed Bad address",
        ] {
            assert!(kvm_failure(line), "{line}");
        }
        for line in [
            "qemu-system-x86_64: warning: host doesn't support requested feature",
            "qemu-system-x86_64: -device vhost-user-fs-pci: Failed to read from slave.",
            "",
        ] {
            assert!(!kvm_failure(line), "{line}");
        }
    }

    #[test]
    fn default_cpu_suits_the_accelerator() {
        assert_eq!((Accel::Kvm.name(), Accel::Tcg.name()), ("kvm", "tcg"));
        assert_eq!(default_cpu(Accel::Kvm), "host");
        assert_eq!(default_cpu(Accel::Tcg), "qemu64");
    }

    #[test]
    fn tcg_fallback_keeps_the_vm_and_changes_accelerator_and_cpu() {
        let kvm = spec();
        let tcg = kvm.under_tcg(None).unwrap();
        assert_eq!(tcg.accel, Accel::Tcg);
        assert_eq!(tcg.cpu, "qemu64");
        assert_eq!(
            QemuSpec {
                accel: Accel::Kvm,
                cpu: kvm.cpu.clone(),
                ..tcg.clone()
            },
            kvm
        );
        let a = argv(&tcg);
        assert_eq!(values(&a, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(values(&a, "-cpu"), ["qemu64"]);
        // A CPU model the user chose is kept; one that needs KVM leaves nothing to fall back to.
        assert_eq!(kvm.under_tcg(Some("max")).unwrap().cpu, "max");
        assert_eq!(kvm.under_tcg(Some("host")), None);
        assert_eq!(tcg.under_tcg(None), None);
    }

    fn spec() -> QemuSpec {
        QemuSpec {
            accel: Accel::Kvm,
            cpu: "host".into(),
            vcpus: 2,
            memory_mib: 2048,
            kernel: "/run/bcvk/vmlinuz".into(),
            initrd: Some("/run/bcvk/initrd.img".into()),
            cmdline: vec![
                "rootfstype=virtiofs".into(),
                "root=root".into(),
                "console=ttyS0".into(),
            ],
            root_share: VirtiofsShare {
                tag: "root".into(),
                socket: "/run/bcvk/root.sock".into(),
            },
            extra_shares: vec![],
            net: NetSpec::None,
            smbios: vec![],
            disks: vec![],
            serial_outs: vec![],
            console: ConsoleSpec::Stdio { interactive: false },
            qmp_socket: "/run/bcvk/qmp.sock".into(),
            rng: false,
        }
    }

    fn argv(spec: &QemuSpec) -> Vec<String> {
        qemu_args(spec)
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    /// Every value given to `flag`, in order.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    fn pos(args: &[String], value: &str) -> usize {
        args.iter()
            .position(|a| a == value)
            .unwrap_or_else(|| panic!("{value} missing from {args:?}"))
    }

    #[test]
    fn lean_machine() {
        let a = argv(&spec());
        for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
            assert!(a.contains(&flag.to_owned()), "{flag}");
        }
        assert_eq!(values(&a, "-display"), ["none"]);
        assert!(!a.iter().any(|x| x == "-nographic" || x == "-enable-kvm"));
        assert_eq!(values(&a, "-cpu"), ["host"]);
        assert_eq!(values(&a, "-smp"), ["2"]);
    }

    #[test]
    fn accel() {
        assert_eq!(values(&argv(&spec()), "-accel"), ["kvm"]);
        let tcg = QemuSpec {
            accel: Accel::Tcg,
            cpu: "max".into(),
            ..spec()
        };
        assert_eq!(values(&argv(&tcg), "-accel"), ["tcg,thread=multi"]);
    }

    #[test]
    fn shared_memory_backend() {
        let a = argv(&spec());
        assert_eq!(values(&a, "-machine"), ["q35,memory-backend=mem"]);
        assert_eq!(
            values(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=2048M,share=on"]
        );
        assert_eq!(values(&a, "-m"), ["2048M"]);
    }

    #[test]
    fn direct_kernel_boot() {
        let a = argv(&spec());
        assert_eq!(values(&a, "-kernel"), ["/run/bcvk/vmlinuz"]);
        assert_eq!(values(&a, "-initrd"), ["/run/bcvk/initrd.img"]);
        assert_eq!(
            values(&a, "-append"),
            ["rootfstype=virtiofs root=root console=ttyS0"]
        );
        let no_initrd = argv(&QemuSpec {
            initrd: None,
            cmdline: vec!["a=1,2".into()],
            ..spec()
        });
        assert!(values(&no_initrd, "-initrd").is_empty());
        // Not option-parsed by QEMU: commas stay single.
        assert_eq!(values(&no_initrd, "-append"), ["a=1,2"]);
    }

    #[test]
    fn shares_root_first_chardev_before_device() {
        let s = QemuSpec {
            extra_shares: vec![VirtiofsShare {
                tag: "mnt-work".into(),
                socket: "/run/bcvk/a,b.sock".into(),
            }],
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-chardev")[..2],
            [
                "socket,id=vfs0,path=/run/bcvk/root.sock",
                "socket,id=vfs1,path=/run/bcvk/a,,b.sock"
            ]
        );
        let devs: Vec<_> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("vhost-user-fs-pci"))
            .collect();
        assert_eq!(
            devs,
            [
                "vhost-user-fs-pci,chardev=vfs0,tag=root,queue-size=1024",
                "vhost-user-fs-pci,chardev=vfs1,tag=mnt-work,queue-size=1024"
            ]
        );
        for i in 0..2 {
            let chardev = a
                .iter()
                .position(|x| x.contains(&format!("id=vfs{i},")))
                .unwrap();
            let device = a
                .iter()
                .position(|x| x.contains(&format!("chardev=vfs{i},")))
                .unwrap();
            assert!(chardev < device);
        }
    }

    #[test]
    fn user_network() {
        let s = QemuSpec {
            net: NetSpec::User {
                forwards: vec![
                    PortForward {
                        host_addr: Some(Ipv4Addr::LOCALHOST),
                        host_port: 2222,
                        guest_port: 22,
                    },
                    PortForward {
                        host_addr: None,
                        host_port: 8080,
                        guest_port: 80,
                    },
                ],
                restrict: true,
            },
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-netdev"),
            ["user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp::8080-:80"]
        );
        assert!(values(&a, "-device").contains(&"virtio-net-pci,netdev=net0,romfile="));

        let open = argv(&QemuSpec {
            net: NetSpec::User {
                forwards: vec![],
                restrict: false,
            },
            ..spec()
        });
        assert_eq!(values(&open, "-netdev"), ["user,id=net0"]);
    }

    #[test]
    fn no_network_means_no_nic() {
        let a = argv(&spec());
        assert!(values(&a, "-netdev").is_empty());
        assert!(!a.iter().any(|x| x.contains("virtio-net")));
    }

    #[test]
    fn smbios_passed_verbatim() {
        let creds = [crate::credentials::hostname_credential("vm").unwrap()];
        let s = QemuSpec {
            smbios: crate::credentials::smbios_args(&creds),
            ..spec()
        };
        assert_eq!(
            values(&argv(&s), "-smbios"),
            ["type=11,value=io.systemd.credential.binary:system.hostname=dm0="]
        );
    }

    #[test]
    fn disks() {
        let s = QemuSpec {
            disks: vec![
                DiskSpec {
                    path: "/var/lib/bcvk/swap,1.raw".into(),
                    format: DiskFormat::Raw,
                    serial: "swap0".into(),
                    readonly: false,
                },
                DiskSpec {
                    path: "/images/data.qcow2".into(),
                    format: DiskFormat::Qcow2,
                    serial: "data".into(),
                    readonly: true,
                },
            ],
            ..spec()
        };
        let a = argv(&s);
        assert_eq!(
            values(&a, "-blockdev"),
            [
                "driver=raw,node-name=disk0,file.driver=file,file.filename=/var/lib/bcvk/swap,,1.raw",
                "driver=qcow2,node-name=disk1,file.driver=file,file.filename=/images/data.qcow2,read-only=on",
            ]
        );
        let devs: Vec<_> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("virtio-blk-pci"))
            .collect();
        assert_eq!(
            devs,
            [
                "virtio-blk-pci,drive=disk0,serial=swap0",
                "virtio-blk-pci,drive=disk1,serial=data"
            ]
        );
    }

    #[test]
    fn serial_outs() {
        let s = QemuSpec {
            serial_outs: vec![
                SerialOutSpec {
                    name: "org.bcvk.journal".into(),
                    path: "/run/bcvk/journal,log".into(),
                },
                SerialOutSpec {
                    name: "status".into(),
                    path: "/run/bcvk/status".into(),
                },
            ],
            ..spec()
        };
        let a = argv(&s);
        let devs = values(&a, "-device");
        assert_eq!(
            devs.iter()
                .filter(|d| d.starts_with("virtio-serial-pci"))
                .count(),
            1
        );
        assert_eq!(
            values(&a, "-chardev")[1..3],
            [
                "file,id=vport0,path=/run/bcvk/journal,,log",
                "file,id=vport1,path=/run/bcvk/status"
            ]
        );
        let ports: Vec<_> = devs
            .into_iter()
            .filter(|d| d.starts_with("virtserialport"))
            .collect();
        assert_eq!(
            ports,
            [
                "virtserialport,bus=vser0.0,chardev=vport0,name=org.bcvk.journal",
                "virtserialport,bus=vser0.0,chardev=vport1,name=status"
            ]
        );
        assert!(pos(&a, "virtio-serial-pci,id=vser0") < pos(&a, ports[0]));
        // None requested: no controller either.
        assert!(!argv(&spec()).iter().any(|x| x.contains("virtio-serial")));
    }

    #[test]
    fn console() {
        let a = argv(&spec());
        assert!(values(&a, "-chardev").contains(&"stdio,id=console,signal=off"));
        assert_eq!(values(&a, "-serial"), ["chardev:console"]);
        assert!(!a
            .iter()
            .any(|x| x.contains("mux=on") || x == "-monitor" || x == "-mon"));

        let i = argv(&QemuSpec {
            console: ConsoleSpec::Stdio { interactive: true },
            ..spec()
        });
        // mux=on for the Ctrl-a x escape, but still no monitor behind it.
        assert!(values(&i, "-chardev").contains(&"stdio,id=console,mux=on,signal=off"));
        assert_eq!(values(&i, "-serial"), ["chardev:console"]);
        assert!(!i.iter().any(|x| x == "-monitor" || x == "-mon"));
    }

    #[test]
    fn qmp_and_rng() {
        let a = argv(&QemuSpec {
            qmp_socket: "/run/a,b/qmp.sock".into(),
            ..spec()
        });
        assert_eq!(
            values(&a, "-qmp"),
            ["unix:path=/run/a,,b/qmp.sock,server=on,wait=off"]
        );
        // An '=' in the path must not turn it into an option name.
        let e = argv(&QemuSpec {
            qmp_socket: "/run/wait=on/qmp.sock".into(),
            ..spec()
        });
        assert_eq!(
            values(&e, "-qmp"),
            ["unix:path=/run/wait=on/qmp.sock,server=on,wait=off"]
        );
        assert!(!values(&a, "-device").contains(&"virtio-rng-pci"));
        let r = argv(&QemuSpec {
            rng: true,
            ..spec()
        });
        assert!(values(&r, "-device").contains(&"virtio-rng-pci"));
    }

    #[test]
    fn non_utf8_paths_escaped_bytewise() {
        let s = QemuSpec {
            qmp_socket: PathBuf::from(OsString::from_vec(b"/r/\xff,q".to_vec())),
            ..spec()
        };
        let a = qemu_args(&s);
        let i = a.iter().position(|x| x == "-qmp").unwrap();
        assert_eq!(
            a[i + 1].clone().into_vec(),
            b"unix:path=/r/\xff,,q,server=on,wait=off".to_vec()
        );
    }

    #[test]
    fn validate_accepts_sample() {
        spec().validate().unwrap();
    }

    #[test]
    fn validate_limits() {
        use QemuError as E;
        let check = |s: QemuSpec| s.validate().unwrap_err();
        assert!(matches!(
            check(QemuSpec { vcpus: 0, ..spec() }),
            E::VcpusOutOfRange { .. }
        ));
        assert!(matches!(
            check(QemuSpec {
                vcpus: 256,
                ..spec()
            }),
            E::VcpusOutOfRange { .. }
        ));
        QemuSpec {
            vcpus: 255,
            memory_mib: 128,
            ..spec()
        }
        .validate()
        .unwrap();
        assert!(matches!(
            check(QemuSpec {
                memory_mib: 127,
                ..spec()
            }),
            E::MemoryTooSmall { .. }
        ));
        assert!(matches!(
            check(QemuSpec {
                cpu: String::new(),
                ..spec()
            }),
            E::EmptyCpu
        ));
        assert!(matches!(
            check(QemuSpec {
                accel: Accel::Tcg,
                ..spec()
            }),
            E::HostCpuNeedsKvm
        ));
        let long_sock = PathBuf::from(format!("/{}", "q".repeat(107)));
        assert!(matches!(
            check(QemuSpec {
                qmp_socket: long_sock.clone(),
                ..spec()
            }),
            E::SocketPathTooLong { len: 108, .. }
        ));
        let mut s = spec();
        s.root_share.socket = long_sock;
        assert!(matches!(check(s), E::SocketPathTooLong { .. }));
    }

    #[test]
    fn validate_tags() {
        use QemuError as E;
        let with_extra = |tag: &str| QemuSpec {
            extra_shares: vec![VirtiofsShare {
                tag: tag.into(),
                socket: "/run/bcvk/x.sock".into(),
            }],
            ..spec()
        };
        with_extra(&"t".repeat(36)).validate().unwrap();
        assert!(matches!(
            with_extra(&"t".repeat(37)).validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(
            with_extra("").validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(
            with_extra("a b").validate(),
            Err(E::InvalidTag { .. })
        ));
        assert!(matches!(with_extra("root").validate(), Err(E::DuplicateTag(t)) if t == "root"));
    }

    #[test]
    fn validate_forwards() {
        use QemuError as E;
        let fwd = |host_port, guest_port| PortForward {
            host_addr: None,
            host_port,
            guest_port,
        };
        let net = |forwards| QemuSpec {
            net: NetSpec::User {
                forwards,
                restrict: false,
            },
            ..spec()
        };
        net(vec![fwd(2222, 22), fwd(8080, 22)]).validate().unwrap();
        assert!(matches!(
            net(vec![fwd(2222, 22), fwd(2222, 80)]).validate(),
            Err(E::DuplicateHostPort(2222))
        ));
        assert!(matches!(net(vec![fwd(0, 22)]).validate(), Err(E::ZeroPort)));
        assert!(matches!(net(vec![fwd(22, 0)]).validate(), Err(E::ZeroPort)));
    }

    #[test]
    fn validate_disks_and_serial_ports() {
        use QemuError as E;
        let disk = |serial: &str| DiskSpec {
            path: "/d.raw".into(),
            format: DiskFormat::Raw,
            serial: serial.into(),
            readonly: false,
        };
        let disks = |d| QemuSpec { disks: d, ..spec() };
        disks(vec![disk(&"s".repeat(20))]).validate().unwrap();
        assert!(matches!(
            disks(vec![disk(&"s".repeat(21))]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("")]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("a,b")]).validate(),
            Err(E::InvalidDiskSerial { .. })
        ));
        assert!(matches!(
            disks(vec![disk("a"), disk("a")]).validate(),
            Err(E::DuplicateDiskSerial(_))
        ));

        let port = |name: &str| SerialOutSpec {
            name: name.into(),
            path: "/run/bcvk/out".into(),
        };
        let ports = |p| QemuSpec {
            serial_outs: p,
            ..spec()
        };
        ports(vec![port("org.bcvk.journal")]).validate().unwrap();
        for bad in ["", "a/b", "a b", &"n".repeat(65)] {
            assert!(
                matches!(
                    ports(vec![port(bad)]).validate(),
                    Err(E::InvalidSerialName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ports(vec![port("x"), port("x")]).validate(),
            Err(E::DuplicateSerialName(_))
        ));
    }

    #[test]
    fn error_messages_are_one_line() {
        let errors = [
            QemuError::VcpusOutOfRange { vcpus: 0 },
            QemuError::HostCpuNeedsKvm,
            QemuError::QmpClosed,
            QemuError::QmpCommand {
                command: "cont".into(),
                class: "GenericError".into(),
                desc: "nope".into(),
            },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.contains(';'), "{s}");
        }
    }

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
