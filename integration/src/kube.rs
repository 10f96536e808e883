//! The Kubernetes examples (`examples/kubernetes/`) as `podman kube play` can run them.
//!
//! The examples are written for a cluster; podman 4.3 plays Pods and Deployments only, and
//! knows no device plugins. [`for_podman`] adapts a copy, never the file: a Job becomes its
//! pod template (a Pod named by the test), the images point at local tags, and the
//! `devices.kubevirt.io/kvm` resource becomes a `/dev/kvm` CharDevice hostPath, which podman
//! turns into a device mapping (a cluster would need a privileged pod for that), and the pod's
//! restartPolicy becomes Never (podman would restart the finished init container). Everything
//! else (init container, volumes, args, probe, grace period, security context) is played as
//! written.

use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use crate::examples::repo_root;

/// The bootc image the examples boot, and the bcvk image they run: placeholders for a cluster.
pub const EXAMPLE_TARGET: &str = "quay.io/fedora/fedora-bootc:42";
pub const EXAMPLE_BCVK: &str = "quay.io/example/bcvk:latest";
/// The device-plugin resource that gives a container /dev/kvm.
pub const KVM_RESOURCE: &str = "devices.kubevirt.io/kvm";

pub fn pod_path() -> PathBuf {
    repo_root().join("examples/kubernetes/pod.yaml")
}

pub fn job_path() -> PathBuf {
    repo_root().join("examples/kubernetes/job.yaml")
}

/// What the test changes.
#[derive(Debug, Clone)]
pub struct Adapt<'a> {
    /// The Pod's name (podman names its containers NAME-CONTAINER).
    pub name: &'a str,
    pub target_image: &'a str,
    pub bcvk_image: &'a str,
    /// Map /dev/kvm in (where the host has it) in place of the device-plugin resource.
    pub kvm: bool,
}

/// The pod spec of a Pod, or of a Job's template.
fn pod_spec(doc: &mut Value) -> Result<&mut Value, String> {
    match doc["kind"].as_str() {
        Some("Pod") => Ok(&mut doc["spec"]),
        Some("Job") => Ok(&mut doc["spec"]["template"]["spec"]),
        other => Err(format!("not a Pod or Job: kind {other:?}")),
    }
}

/// The example as a Pod that podman 4.3 plays (see the module doc).
pub fn for_podman(example: &str, a: &Adapt) -> Result<Value, String> {
    let text = example
        .replace(EXAMPLE_TARGET, a.target_image)
        .replace(EXAMPLE_BCVK, a.bcvk_image);
    let mut doc: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let mut spec = pod_spec(&mut doc)?.clone();
    let mut wants_kvm = false;
    let containers = spec["containers"]
        .as_sequence_mut()
        .ok_or("no containers")?;
    for c in containers.iter_mut() {
        let Some(limits) = c["resources"]["limits"].as_mapping_mut() else {
            continue;
        };
        if limits.remove(KVM_RESOURCE).is_none() || !a.kvm {
            continue;
        }
        wants_kvm = true;
        c.as_mapping_mut()
            .ok_or("a container is not a mapping")?
            .entry("volumeMounts".into())
            .or_insert_with(|| Value::Sequence(vec![]))
            .as_sequence_mut()
            .ok_or("volumeMounts is not a list")?
            .push(yaml("{name: dev-kvm, mountPath: /dev/kvm}"));
    }
    if wants_kvm {
        spec.as_mapping_mut()
            .ok_or("spec is not a mapping")?
            .entry("volumes".into())
            .or_insert_with(|| Value::Sequence(vec![]))
            .as_sequence_mut()
            .ok_or("volumes is not a list")?
            .push(yaml(
                "{name: dev-kvm, hostPath: {path: /dev/kvm, type: CharDevice}}",
            ));
    }
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), a.name.into());
    // podman 4.3 gives init containers the pod's restart policy: with Always (the Pod
    // example's default) it restarted the finished copy, which then rewrote the root under the
    // running VM (a guest kernel panic), or raced its own removal of the init container
    // ("cannot remove container ... as it is running"). Kubernetes never restarts a completed
    // init container; Never gives podman that behaviour.
    spec.as_mapping_mut()
        .ok_or("spec is not a mapping")?
        .insert("restartPolicy".into(), "Never".into());
    let mut pod = Mapping::new();
    pod.insert("apiVersion".into(), "v1".into());
    pod.insert("kind".into(), "Pod".into());
    pod.insert("metadata".into(), Value::Mapping(metadata));
    pod.insert("spec".into(), spec);
    Ok(Value::Mapping(pod))
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("a literal")
}

/// The containers of a pod, by name.
pub fn container<'v>(pod: &'v mut Value, name: &str) -> Option<&'v mut Value> {
    pod["spec"]["containers"]
        .as_sequence_mut()?
        .iter_mut()
        .find(|c| c["name"].as_str() == Some(name))
}

/// Replace what follows `--` in a container's args (the guest command) with `command`.
pub fn set_guest_command(container: &mut Value, command: &[&str]) -> Result<(), String> {
    let args = container["args"]
        .as_sequence_mut()
        .ok_or("the container has no args")?;
    let at = args
        .iter()
        .position(|a| a.as_str() == Some("--"))
        .ok_or("no -- in the args")?;
    args.truncate(at + 1);
    args.extend(command.iter().map(|c| Value::from(*c)));
    Ok(())
}

/// The exec command of a container's readiness probe.
pub fn readiness_command(container: &Value) -> Option<Vec<String>> {
    container["readinessProbe"]["exec"]["command"]
        .as_sequence()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}
